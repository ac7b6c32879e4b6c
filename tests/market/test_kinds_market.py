"""Real mode over every job kind: cheaters on each kind are blamed and slashed; a plugin kind runs unchanged."""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest

from vcompute.market.fidelity import RealWork
from vcompute.market.sim import run_market
from vcompute.verify import VERIFIERS
from vcompute.workloads.kinds import get_kind

pytest.importorskip("torch")

KINDS_AND_SIZES = [("matmul", 16), ("forward", "tiny"), ("generate", "tiny"), ("train", "tiny")]


@pytest.mark.parametrize("kind,size", KINDS_AND_SIZES)
def test_real_work_blames_exactly_the_cheating_claim_on_each_kind(kind, size):
    jk = get_kind(kind)
    work = RealWork(VERIFIERS.create(jk.verifiers[0]), kind=kind, size=size, seed=3)
    assert work.run(job_key=1, n=16, cheats=[None], audit=True).blame == frozenset()
    for i, cheat in enumerate(("random_output", "skip_k", "low_precision")):
        out = work.run(job_key=10 + i, n=16, cheats=[cheat], audit=True)
        assert out.accepted is False and out.blame == frozenset({0}), (kind, cheat, out.reason)
    st = work.stats
    assert (st.jobs, st.checked, st.cheats_checked, st.caught, st.false_rejects) == (4, 4, 3, 3, 0)
    assert work.run(job_key=20, n=16, cheats=["skip_k"], audit=False).blame == frozenset()
    assert work.stats.wrong_accepted == 1  # the unaudited cheat stood


def test_replicated_forward_jobs_blame_the_dissenting_replica():
    work = RealWork(VERIFIERS.create("replication"), kind="forward", size="tiny", seed=0)
    out = work.run(job_key=5, n=0, cheats=[None, "random_output", None], audit=True)
    assert out.blame == frozenset({1})


@pytest.mark.parametrize("kind,size", KINDS_AND_SIZES)
def test_a_cheating_provider_on_each_kind_is_caught_and_slashed(kind, size):
    mix = [{"name": kind, "kind": kind, "pflop": 30.0, "memory_gb": 8, "size": size}]
    out = run_market({"mode": "real", "jobs": 12, "providers": {"count": 4}, "consumers": {"count": 2, "mix": mix,
                      "audit_p": 1.0}, "adversary": {"behaviour": "lazy", "fraction": 0.5, "cheat_rate": 1.0}}, seed=1)
    assert out["caught"] > 0 and out["slashed_usd"] > 0, out
    assert out["wrong_accepted"] == 0 and out["false_rejects"] == 0
    assert out[f"detection_{kind}"] == 1.0 and out[f"real_jobs_{kind}"] == out["jobs_completed"]
    assert out["profit_adversary"] < out["profit_honest"]


def test_old_kind_names_are_aliases_and_real_mode_picks_each_kinds_own_verifier():
    from vcompute.market.config import MarketParams
    from vcompute.market.sim import Market

    p = {"mode": "real", "jobs": 4, "consumers": {"verifier": "freivalds", "mix": [
        {"name": "i", "kind": "inference", "pflop": 1.0, "size": "tiny"},
        {"name": "t", "kind": "training", "pflop": 1.0, "size": "tiny"},
        {"name": "m", "kind": "matmul", "pflop": 1.0, "size": 16}]}}
    m = Market(MarketParams.model_validate(p), 0)
    assert {k: (c.kind, c.scheme) for k, c in m.checks.items()} == {
        "inference": ("forward", "model"), "training": ("train", "pol"), "matmul": ("matmul", "freivalds")}
    with pytest.raises(ValueError, match="unknown job kind 'nope'"):
        run_market({"consumers": {"mix": [{"name": "x", "kind": "nope", "pflop": 1.0}]}})
    with pytest.raises(ValueError, match="unknown forward job size"):
        run_market({"consumers": {"mix": [{"name": "x", "kind": "forward", "pflop": 1.0, "size": 48}]}})


_PLUGIN = '''
import numpy as np
from vcompute.core import Blame, Verdict
from vcompute.core.types import Job
from vcompute.workloads.kinds import JobKind


class NegateKind(JobKind):
    """A toy third-party kind: negate a vector."""
    name = "negate"
    sizes = {"tiny": 8}
    default_size = "tiny"
    verifiers = ("negcheck",)
    cheats = {"random_output": "noise", "skip_k": "half", "low_precision": "noise"}

    def make_job(self, size=None, *, seed, backend="numpy"):
        n = self.sizes[self.size(size)]
        return Job("negate", {"n": n, "seed": int(seed)}, {"x": np.random.default_rng(seed).standard_normal(n)})

    def flops(self, job):
        return float(job.spec["n"])


def honest(job, rng):
    return -job.inputs["x"]


def noise(job, rng):
    return rng.standard_normal(job.spec["n"])


def half(job, rng):
    out = -job.inputs["x"].copy()
    out[len(out) // 2:] = 0.0
    return out


class NegCheck:
    name = "negcheck"
    def replicas(self, job): return 1
    def evidence(self, job): return None
    def verify(self, job, claims, ctx):
        bad = [Blame(i, c.provider, "not -x") for i, c in enumerate(claims)
               if not np.array_equal(np.asarray(c.output), -job.inputs["x"])]
        return Verdict(not bad, "checked", scheme=self.name, blame=tuple(bad))
'''


def test_a_third_party_kind_plugged_in_by_entry_point_runs_in_the_market(tmp_path, monkeypatch):
    import vcompute.workloads.kinds as kinds_mod
    from vcompute.workloads.kinds import KINDS
    from vcompute.workloads.kinds.behaviours import BEHAVIOURS

    pkg = tmp_path / "vc_kind_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(_PLUGIN))
    dist = tmp_path / "vc_kind_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vc-kind-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[vcompute.job_kinds]\nnegate = vc_kind_demo:NegateKind\n"
        "[vcompute.verifiers]\nnegcheck = vc_kind_demo:NegCheck\n"
        "[vcompute.behaviours]\nnegate/honest = vc_kind_demo:honest\nnegate/noise = vc_kind_demo:noise\n"
        "negate/half = vc_kind_demo:half\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    for reg in (KINDS, VERIFIERS, BEHAVIOURS):  # a fresh process would scan the entry points at first use
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
        monkeypatch.setattr(reg, "_scanned", False)
    monkeypatch.setattr(kinds_mod, "_INSTANCES", {})

    assert get_kind("negate").behaviours == ["honest", "half", "noise"]
    mix = [{"name": "neg", "kind": "negate", "pflop": 10.0}]
    out = run_market({"mode": "real", "jobs": 20, "providers": {"count": 4}, "consumers": {"count": 2, "mix": mix,
                      "audit_p": 1.0}, "adversary": {"behaviour": "lazy", "fraction": 0.5}}, seed=0)
    assert out["caught"] > 0 and out["slashed_usd"] > 0 and out["wrong_accepted"] == 0
    assert out["detection_negate"] == 1.0 and out["false_rejects"] == 0
    sys.modules.pop("vc_kind_demo", None)


def test_modelled_mode_reads_the_kinds_own_row_and_falls_back_to_the_schemes():
    from vcompute.market.calibration import calibrate_kind, default_table
    from vcompute.market.checks import build_check

    table = default_table()
    rng = np.random.default_rng(0)
    fw = build_check("model", {}, mode="modelled", table=table, seed=0, rng=rng, kind="forward", size="small")
    row = table.kinds["forward"]["model"]
    assert fw.frac_est(48, 0.0) == row["verify_fraction"]["small"]
    assert fw.detect_est("skip_k") == row["detect"]["skip_k"][0] / row["detect"]["skip_k"][1]
    old = build_check("freivalds", {}, mode="modelled", table=table, seed=0, rng=rng, kind="forward")
    assert old.frac_est(48, 0.0) == table.verify_fraction("freivalds", 48)  # no (forward, freivalds) row
    with pytest.raises(ValueError, match="--kinds matmul:model"):
        build_check("model", {}, mode="modelled", table=table, seed=0, rng=rng, kind="matmul")
    measured = calibrate_kind("forward", trials=2, fraction_trials=1)
    assert measured["detect"]["honest"] == [0, 2] and measured["detect"]["random_output"] == [2, 2]
    assert set(measured["verify_fraction"]) == {"small"} and measured["standins"]["skip_k"] == "skip_layer"


def test_wall_clock_metrics_only_on_request_so_runs_stay_reproducible():
    mix = [{"name": "m", "kind": "matmul", "pflop": 30.0, "size": 16}]
    base = {"mode": "real", "jobs": 20, "providers": {"count": 4}, "consumers": {"mix": mix, "audit_p": 1.0},
            "adversary": {"behaviour": "lazy", "fraction": 0.5}}
    a, b = run_market(base, seed=2), run_market(base, seed=2)
    assert repr(a) == repr(b) and "jobs_per_s_matmul" not in a  # repr: nan == nan
    assert a["verify_flops_share_matmul"] > 0 and a["detection_matmul"] == 1.0
    timed = run_market({**base, "real_timing": True}, seed=2)
    assert timed["jobs_per_s_matmul"] > 0 and timed["verify_over_compute_matmul"] > 0
    assert repr({k: v for k, v in timed.items() if k in a}) == repr(a)  # timing changes nothing else
