"""The stacked linear check of the sampled-glue scheme agrees with Freivalds layer by layer (proofs/inference-glue.md)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vcompute.verify.freivalds import Freivalds, fused  # noqa: E402
from vcompute.verify.inference.glue_linear import LinearStacks  # noqa: E402

L, T, K, N = 3, 40, 24, 16


def _stack(seed=0):
    torch.manual_seed(seed)
    mods = [torch.nn.Linear(K, N) for _ in range(L)]
    a = np.random.default_rng(seed).standard_normal((L, T, K)).astype(np.float32)
    with torch.no_grad():
        c = np.stack([m(torch.from_numpy(a[i])).numpy() for i, m in enumerate(mods)])
    return mods, a, c


def _lies():
    def entry(c):  # one entry of one row of the middle block, off far beyond the tolerance
        c[1, 7, 3] += 1e-3
    def cancelling(c):  # +d, -d in one row of the last block: escapes a round exactly half the time
        c[2, 5, 0] += 1e-3
        c[2, 5, 1] -= 1e-3
    def nan(c):
        c[1, 0, 0] = np.nan
    def inf(c):
        c[0, 3, 2] = np.inf
    return [(entry, 1), (cancelling, 2), (nan, 1), (inf, 0)]


@pytest.mark.parametrize("numba", [True, False], ids=["fused", "one-by-one"])
def test_stacked_check_accepts_honest_and_names_the_first_wrong_block(numba, monkeypatch):
    if not numba:
        monkeypatch.setenv("VCOMPUTE_NO_NUMBA", "1")
    elif not fused.available():
        pytest.skip("numba not installed")
    mods, a, c = _stack()
    st = LinearStacks(Freivalds(rounds=10))
    ok = st.check("c_fc", a, mods, c, np.random.default_rng(1))
    assert ok.layer == -1 and ok.reason == "" and ok.flops > 0
    for lie, layer in _lies():
        bad = c.copy()
        lie(bad)
        res = st.check("c_fc", a, mods, bad, np.random.default_rng(2))
        assert res.layer == layer and f"layer {layer} c_fc: Freivalds" in res.reason, res.reason


def test_stacked_check_matches_freivalds_per_layer_on_the_cancelling_pair():
    # the per-layer bound of proofs/freivalds.md S1 (2^-k per layer) holds with one block of signs per stack:
    # at k = 1 the cancelling pair escapes about half the challenges, as with Freivalds.check
    if not fused.available():
        pytest.skip("numba not installed")
    mods, a, c = _stack(3)
    c = c.copy()
    c[2, 5, 0] += 1e-3
    c[2, 5, 1] -= 1e-3
    st = LinearStacks(Freivalds(rounds=1))
    escaped = sum(st.check("mlp_proj", a, mods, c, np.random.default_rng(s)).layer == -1 for s in range(300))
    assert abs(escaped / 300 - 0.5) < 4 * (0.25 / 300) ** 0.5  # binomial, 4 standard errors


def test_weights_changed_in_place_are_restacked():
    mods, a, c = _stack(4)
    st = LinearStacks(Freivalds(rounds=4))
    assert st.check("c_attn", a, mods, c, np.random.default_rng(0)).layer == -1
    with torch.no_grad():
        mods[1].weight.mul_(1.01)  # the job's weights changed: the trace no longer matches them
    assert st.check("c_attn", a, mods, c, np.random.default_rng(0)).layer == 1
