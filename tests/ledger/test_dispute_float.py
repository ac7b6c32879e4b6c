"""Float32 last steps of protocols/Dispute.vy (FloatStep.vy) against the float players on revm
(protocols/Dispute.md, "Float steps"; proofs/dispute.md C6, C7)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.ledger.dispute_client import ContractRevert, DisputeChain, play  # noqa: E402
from vcompute.ledger.dispute_escrow import play_job  # noqa: E402
from vcompute.verify.dispute.float_players import FLOAT_LYING, make_float_player  # noqa: E402
from vcompute.verify.dispute.float_trace import FloatNet, float_job_id, pack_float32, within  # noqa: E402
from vcompute.verify.dispute.players import make_player  # noqa: E402
from vcompute.verify.dispute.trace import QuantNet  # noqa: E402

BOND = 10**18
MOVE = 100


@pytest.fixture(scope="module")
def job():
    net = FloatNet.random(dims=(32,) * 6, rows=2, seed=0)
    return net, net.random_input(seed=1)


@pytest.fixture(scope="module")
def chain():
    return DisputeChain(move_timeout=MOVE)


def _bits(v) -> int:
    return int(np.array([v], dtype=np.float32).view("<u4")[0])


def _claims(rng, x, w, u_bits):
    """Claimed values around the bound: exact, inside, just outside, far off, non-finite, signed zero."""
    exact = float(x.astype(np.float64) @ w.astype(np.float64))
    n, u = x.size + 2, 2.0 ** -u_bits
    bound = n * u / (1 - n * u) * float(np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)))
    out = [exact, exact + 0.5 * bound, exact - 0.999 * bound, exact + 1.001 * bound, exact - 1.5 * bound,
           exact * 2 + 1, 0.0, -0.0, np.inf, np.nan, float(np.float32(exact) + rng.standard_normal() * bound)]
    return [_bits(v) for v in out]


def test_the_python_mirror_decides_exactly_as_the_contract(chain):
    """within() is what FloatStep.vy computes, on values at and around the bound, subnormals and extremes."""
    rng = np.random.default_rng(0)
    cases = 0
    for trial in range(24):
        k = int(rng.choice([8, 16, 64, 256]))
        u_bits = int(rng.choice([24, 11]))
        scale = float(rng.choice([1.0, 1e-20, 1e20, 1e-40]))
        x = (rng.standard_normal(k) * scale).astype(np.float32)
        w = rng.standard_normal(k).astype(np.float32)
        if trial % 6 == 0:
            x[: k // 2] = 0
        zs = _claims(rng, x, w, u_bits)
        for a, b in zip(zs, zs[1:] + zs[:1]):
            got = chain.view("within", pack_float32(x), pack_float32(w), k, u_bits, a, b, on="float_step")
            assert list(got) == within(x, w, u_bits, [a, b]), (trial, a, b)
            cases += 1
    assert cases > 200


def test_a_non_finite_input_has_no_bound(chain):
    x = np.ones(8, np.float32)
    x[3] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        within(x, np.ones(8, np.float32), 24, [0])
    with pytest.raises(Exception):
        chain.view("within", pack_float32(x), pack_float32(np.ones(8, np.float32)), 8, 24, 0, 0, on="float_step")


def _play(net, x0, a, b, *, seed=3, chain=None):
    chain = chain or DisputeChain(move_timeout=MOVE)
    p = make_float_player(a, net, x0, seed=seed, name="claimant")
    q = make_float_player(b, net, x0, seed=seed + 1, name="challenger")
    return chain, play(chain, p, q, ops_root=net.ops_tree.root, input_state=p.honest_trace.leaves[0], bond=BOND)


@pytest.mark.parametrize("seed", [3, 8])
@pytest.mark.parametrize("liar", FLOAT_LYING)
def test_an_honest_float_claimant_beats_every_liar(job, liar, seed):
    net, x0 = job
    chain, r = _play(net, x0, "honest", liar, seed=seed)
    assert r.winner == "claimant"
    assert chain.contract_balance() == chain.view("held") + chain.view("burned")


@pytest.mark.parametrize("seed", [3, 8])
@pytest.mark.parametrize("liar", FLOAT_LYING)
def test_an_honest_float_challenger_beats_every_lying_claimant(job, liar, seed):
    net, x0 = job
    _, r = _play(net, x0, liar, "honest", seed=seed)
    assert r.winner == "challenger"
    if liar.startswith("lie_"):  # the others are refused or absent before the last step
        assert r.how == "step"


def test_a_valid_result_with_other_bits_wins_and_is_never_disputed(job):
    """Another machine's float32 bits (within the bound everywhere): as a griefing challenger it loses the
    game at a step nobody can show out of bound; as a claimant the honest challenger adopts it."""
    net, x0 = job
    _, r = _play(net, x0, "honest", "drift")
    assert r.winner == "claimant" and r.how == "timeout" and r.decide_gas == 0
    drift = make_float_player("drift", net, x0, seed=5, name="claimant")
    honest = make_float_player("honest", net, x0, seed=0, name="challenger")
    assert drift.trace.leaves[-1] != honest.trace.leaves[-1]
    honest.prepare(drift)
    assert honest.trace.leaves == drift.trace.leaves  # nothing to dispute


def test_decide_float_refuses_forged_openings(job):
    net, x0 = job
    chain = DisputeChain(move_timeout=MOVE)
    liar = make_float_player("lie_one", net, x0, seed=4, name="l")
    honest = make_float_player("honest", net, x0, seed=0, name="h")
    for who in ("l", "h"):
        chain.fund(who, 10 * BOND)
    cid = chain.call("l", "commit_float", net.ops_tree.root, honest.trace.leaves[0], net.n_layers,
                     *liar.commitment(), 1000, value=BOND)
    honest.prepare(liar)
    chain.call("h", "dispute", cid, *honest.commitment(), value=BOND)
    while chain.record("games", cid)["phase"] != 3:
        g = chain.record("games", cid)
        mover = liar if g["phase"] == 1 else honest
        pts = list(chain.view("points", cid))
        chain.call(mover.name, "reveal", cid, *mover.reveal(pts)[0])
    hi = chain.record("games", cid)["hi"]
    good = honest.prove_step(hi, opponent=liar, claimant=False)
    assert good is not None
    cases = {
        "x_row": ("x_row", lambda v: [v[0] ^ 1, *v[1:]], "value: x_row opening"),
        "x_root": ("x_root", lambda v: b"\x01" * 32, "value: x is not agreed"),
        "w_col": ("w_col", lambda v: [v[0] ^ 1, *v[1:]], "value: w_col opening"),
        "u_bits": ("u_bits", lambda v: 11, "value: w is not the operator"),
        "c_row": ("c_row", lambda v: [v[0] ^ 1, *v[1:]], "value: c_row opening"),
        "d_row": ("d_row", lambda v: [v[0] ^ 1, *v[1:]], "value: d_row opening"),
        "j": ("j", lambda v: net.weights[hi - 1].shape[1], "value: no such element"),
    }
    for key, fix, reason in cases.values():
        bad = dict(good)
        bad[key] = fix(bad[key])
        with pytest.raises(ContractRevert) as e:
            chain.call("h", "decide_float", cid, *bad.values())
        assert e.value.reason.startswith(reason), (key, e.value.reason)
    # an element where both values are within the bound proves nothing
    lied = liar.trace.states[hi - 1] != honest.trace.states[hi - 1]
    i, j = [(i, j) for i, j in zip(*np.nonzero(~lied))][0]
    other = dict(good)
    other.update(i=int(i), j=int(j))
    x = honest.trace.state(hi - 1)
    from vcompute.verify.dispute.float_trace import rows_tree

    for key, a in (("x", x), ("c", liar.trace.states[hi - 1]), ("d", honest.trace.states[hi - 1])):
        t = rows_tree(a)
        other[f"{key}_row"], other[f"{key}_proof"] = pack_float32(np.ascontiguousarray(a[i])), t.proof(int(i))
    wt = net.cols_tree(hi)
    other["w_col"], other["w_proof"] = pack_float32(np.ascontiguousarray(net.weights[hi - 1][:, j])), wt.proof(int(j))
    with pytest.raises(ContractRevert, match="value: both within bound"):
        chain.call("h", "decide_float", cid, *other.values())
    with pytest.raises(ContractRevert, match="value: float claim; call decide_float"):
        chain.call("h", "decide", cid, 1, 32, 32, 0, [0], [0] * 32, [0] * 4, [0], b"\x00" * 32, [])
    chain.call("h", "decide_float", cid, *good.values())
    assert chain.record("claims", cid)["state"] == 4  # slashed


def test_the_kinds_cannot_pass_for_each_other(job):
    """A float job id differs from an int8 one on the same roots; decide_float refuses an int8 claim."""
    net, x0 = job
    chain = DisputeChain(move_timeout=MOVE)
    leaf = make_float_player("honest", net, x0, seed=0).trace.leaves[0]
    assert chain.view("float_job_id_of", net.ops_tree.root, leaf, 5) == float_job_id(net.ops_tree.root, leaf, 5)
    assert chain.view("float_job_id_of", net.ops_tree.root, leaf, 5) != chain.view("job_id_of", net.ops_tree.root,
                                                                                   leaf, 5)
    qnet = QuantNet.random(dims=(32, 32), rows=1, seed=0)
    qx = qnet.random_input(seed=0)
    h, l = make_player("honest", qnet, qx, seed=0, name="h"), make_player("lie_one", qnet, qx, seed=1, name="l")
    for who in ("h", "l"):
        chain.fund(who, 10 * BOND)
    cid = chain.call("l", "commit", qnet.ops_tree.root, h.trace.leaves[0], 1, *l.commitment(), 1000, value=BOND)
    chain.call("h", "dispute", cid, *h.commitment(), value=BOND)
    fake = {k: 0 for k in ("rows", "k", "m", "u_bits", "i", "j")}
    with pytest.raises(ContractRevert, match="value: int8 claim; call decide"):
        chain.call("h", "decide_float", cid, *fake.values(), [], b"\x00" * 32, [], [], b"\x00" * 32, [], [], [],
                   b"\x00" * 32, [], [], b"\x00" * 32, [])


def test_a_lying_float_provider_loses_its_escrowed_stake(job):
    net, x0 = job
    chain = DisputeChain(move_timeout=MOVE)
    p = make_float_player("lie_edge", net, x0, seed=2, name="provider")
    w = make_float_player("honest", net, x0, seed=0, name="watcher")
    out = play_job(chain, p, w, ops_root=net.ops_tree.root, input_state=w.honest_trace.leaves[0],
                   payment=BOND, stake=BOND, bond=BOND, challenge_window=1000)
    assert out.game.winner == "challenger" and out.job_state == "slashed"
    assert out.escrow_credits["watcher"] == BOND - BOND // 10 and out.escrow_credits["consumer"] == BOND
