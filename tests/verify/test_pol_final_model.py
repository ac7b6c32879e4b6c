"""Proof-of-learning: the final model is bound, delta separates honest from cheap-precision replays,
beacon-derived challenges, and the caller's mistakes raise instead of rejecting.

Each test names the claim of proofs/pol.md it checks (C6-C9).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vcompute.core.types import Claim, Job
from vcompute.verify.base import VerifyContext
from vcompute.verify.pol import DEFAULT_DELTA, PoLVerifier, Transcript, pol_context, prove, sign_claim
from vcompute.workloads.training.pol.adversaries import run_adversary
from vcompute.verify.pol.calibrate import calibrate
from vcompute.workloads.training import TrainSpec, make_training_job

SMALL = dict(dataset="synthetic", steps=40, checkpoint_every=2, hidden=16)  # 20 segments

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BEFORE = dict(final_segments=0, chain_check=False)  # the scheme before the final-model rule


def _job(fw="torch", **kw):
    return make_training_job(TrainSpec(framework=fw, **{**SMALL, **kw}))


def _verify(verifier, job, claim, tr, seed=0, **ctx_kw):
    return verifier.verify(job, [claim], pol_context([claim], {claim.provider: tr}, seed=seed, **ctx_kw))


def _rejections(verifier, job, spoof, trials):
    return sum(not _verify(verifier, job, spoof.claim, spoof.transcript, seed=s).accepted for s in range(trials))


# -- C6: the final model is bound ------------------------------------------------
@pytest.fixture(scope="module")
def swaps():
    job = _job()
    return job, {d: run_adversary("swap_final", job, "mallory", rng=np.random.default_rng(0), depth=d)
                 for d in (1, 2, 5)}


def test_swapped_final_model_escapes_sampling_but_not_the_final_segment_rule(swaps):
    job, spoofs = swaps
    spoof, trials = spoofs[1], 40
    # before: the lie keeps the broken last segment out of top-Q; R = 3 of the other ~16 often miss it
    assert _rejections(PoLVerifier(random_segments=3, replay_cache={}, **BEFORE), job, spoof, trials) < trials
    v = PoLVerifier(random_segments=3, replay_cache={}, chain_check=False)
    assert _rejections(v, job, spoof, trials) == trials
    r = _verify(PoLVerifier(random_segments=3), job, spoof.claim, spoof.transcript)
    assert not r.accepted and "segment 19" in r.reason and r.details["forced"] == [19]


@pytest.mark.parametrize("depth", [2, 5])
def test_a_break_before_the_last_segment_is_caught_by_the_chain_check(swaps, depth):
    job, spoofs = swaps
    spoof, trials = spoofs[depth], 40
    final_only = PoLVerifier(random_segments=3, replay_cache={}, chain_check=False)
    assert _rejections(final_only, job, spoof, trials) < trials  # the last segment itself reproduces
    assert _rejections(PoLVerifier(random_segments=3, replay_cache={}), job, spoof, trials) == trials
    reasons = {_verify(PoLVerifier(random_segments=3), job, spoof.claim, spoof.transcript, seed=s).reason
               for s in range(5)}
    assert any("hides a jump" in r for r in reasons)


def test_honest_transcripts_satisfy_the_chain_check_with_few_or_many_anchors():
    for fw in ("torch", "jax"):
        job = _job(fw, seed=3)
        claim, tr = prove(job, "alice")
        cache: dict = {}
        for r in (1, 3, 8, 100):
            for s in range(3):
                v = _verify(PoLVerifier(random_segments=r, replay_cache=cache), job, claim, tr, seed=s)
                assert v.accepted, (fw, r, v.reason)


def test_the_delivered_model_must_be_the_last_committed_checkpoint(honest):
    job, claim, tr = honest
    from vcompute.workloads.training import decode_state

    ok = dataclasses.replace(claim, output=tr.checkpoints[-1])
    assert _verify(PoLVerifier(random_segments=2), job, ok, tr).accepted
    as_state = dataclasses.replace(claim, output=decode_state(tr.checkpoints[-1])[1])
    assert _verify(PoLVerifier(random_segments=2), job, as_state, tr).accepted
    for other in (tr.checkpoints[-2], b"junk", 7, {"w": "x"}):
        v = _verify(PoLVerifier(random_segments=2), job, dataclasses.replace(claim, output=other), tr)
        assert not v.accepted and "delivered model" in v.reason


@pytest.fixture(scope="module")
def honest():
    job = _job()
    claim, tr = prove(job, "alice")
    return job, claim, tr


# -- C7: delta from calibration ----------------------------------------------------
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cheap_precision_training_claimed_as_fp32_is_rejected_by_default(dtype):
    job = _job(steps=16)
    spoof = run_adversary("low_precision", job, "mallory", rng=np.random.default_rng(0), dtype=dtype)
    default = PoLVerifier(random_segments=2, replay_cache={})
    assert _rejections(default, job, spoof, 10) == 10
    v = _verify(default, job, spoof.claim, spoof.transcript)
    assert "does not reproduce" in v.reason
    if dtype == "float16":  # the round delta = 1e-3 used before calibration accepts fp16 training
        assert _rejections(PoLVerifier(random_segments=2, replay_cache={}, delta=1e-3), job, spoof, 10) < 10


def test_honest_cross_thread_and_cross_framework_replays_are_accepted():
    import torch

    job = _job(model="cnn", steps=16)  # the CNN's conv kernels split work differently on 2 threads
    claim, tr = prove(job, "alice")  # one thread (the module fixture)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        v = _verify(PoLVerifier(random_segments=100), job, claim, tr)
    finally:
        torch.set_num_threads(old)
    assert v.accepted, v.reason
    jx = _verify(PoLVerifier(random_segments=100, replay_framework="jax"), job, claim, tr)
    assert jx.accepted and 0 < jx.details["max_error"] < DEFAULT_DELTA / 5


def test_default_delta_lies_between_honest_and_cheap_precision_errors():
    out = calibrate(frameworks=["torch"], models=["mlp"], seeds=[1], segments=3, dataset="synthetic", steps=16,
                    hidden=16, conditions=["same", "threads", "cross_framework", "float16", "bfloat16"])
    assert out["honest_max"] * 5 < DEFAULT_DELTA < out["cheap_min"] / 5
    assert out["separation"] > 25 and out["honest_max"] < out["delta"] < out["cheap_min"]


# -- C8: beacon-derived challenges --------------------------------------------------
def test_beacon_challenges_are_reproducible_and_differ_per_beacon(honest):
    job, claim, tr = honest

    def opened(beacon, seed=0):
        v = _verify(PoLVerifier(random_segments=4, beacon=beacon), job, claim, tr, seed=seed)
        assert v.accepted
        return tuple(v.details["opened"])

    b1, b2 = b"\x01" * 32, b"\x02" * 32
    assert opened(b1) == opened(b1) == opened(b1, seed=99)  # the beacon, not ctx.rng, decides
    assert len({opened(bytes([i]) * 16) for i in range(6)}) > 1
    ctx = [pol_context([claim], {"alice": tr}, beacon=b) for b in (b1, b1, b2)]
    draws = [c.rng.integers(1 << 40) for c in ctx]
    assert draws[0] == draws[1] != draws[2]


def test_beacon_misuse_raises_naming_it():
    with pytest.raises(TypeError, match="beacon"):
        PoLVerifier(beacon="0123456789abcdef")
    with pytest.raises(ValueError, match="beacon"):
        PoLVerifier(beacon=b"short")
    with pytest.raises(TypeError, match="beacon"):
        pol_context([], {}, beacon=12345)
    with pytest.raises(ValueError, match="seed or a beacon"):
        pol_context([], {})


# -- C9: caller misuse raises, provider evidence rejects ----------------------------
def test_caller_misuse_raises_naming_the_argument(honest):
    job, claim, tr = honest
    ctx = pol_context([claim], {"alice": tr}, seed=0)
    v = PoLVerifier(random_segments=1)
    with pytest.raises(TypeError, match="claims"):
        v.verify(job, claim, ctx)
    with pytest.raises(ValueError, match="claims"):
        v.verify(job, [claim, claim], ctx)
    with pytest.raises(TypeError, match=r"claims\[0\]"):
        v.verify(job, [dict(claim=1)], ctx)
    with pytest.raises(TypeError, match="ctx"):
        v.verify(job, [claim], None)
    with pytest.raises(TypeError, match="job"):
        v.verify(job.spec, [claim], ctx)
    with pytest.raises(ValueError, match="job"):
        v.verify(Job("matmul", {}, {}), [claim], ctx)
    for name, bad, err in (("top_q", "1", TypeError), ("top_q", True, TypeError), ("random_segments", -1, ValueError),
                           ("final_segments", 1.0, TypeError), ("delta", "1e-5", TypeError),
                           ("max_segments", 2, ValueError), ("metrics", "l2", TypeError)):
        with pytest.raises(err, match=name):
            PoLVerifier(**{name: bad})


def test_hostile_numbers_are_taken_at_their_real_value():
    class Liar(int):
        def __int__(self):
            return 10**6

        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    v = PoLVerifier(random_segments=Liar(2), max_segments=Liar(7))
    assert type(v.random_segments) is int and v.random_segments == 2 and v.max_segments == 7


def test_malformed_or_lying_evidence_is_rejected_with_a_reason(honest):
    job, claim, tr = honest

    class LyingStr(str):
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        __hash__ = str.__hash__

    class LyingInt(int):
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        __hash__ = int.__hash__

    cases = {
        "lying commitment": dataclasses.replace(claim, commitment=LyingStr("00" * 32)),
        "lying provider": dataclasses.replace(claim, provider=LyingStr("mallory")),
        "lying leaf count": Claim(job_id=claim.job_id, provider=claim.provider, commitment=claim.commitment,
                                  evidence={**claim.evidence, "n_leaves": LyingInt(5)}, signature=claim.signature,
                                  meta=claim.meta),
    }
    for what, bad in cases.items():
        v = PoLVerifier(random_segments=1).verify(job, [bad], pol_context([bad], {"alice": tr}, seed=0))
        assert not v.accepted and v.reason, what
    # the Scheme base reads a str subclass as its exact value (its __eq__ never runs): "alice" is alice's claim
    same = dataclasses.replace(claim, provider=LyingStr("alice"))
    assert PoLVerifier(random_segments=1).verify(job, [same], pol_context([same], {"alice": tr}, seed=0)).accepted
    for header_change in ({"segment_metrics": "big"}, {"segment_metrics": [[1, 2]] * 20},
                          {"segment_metrics": [[-1.0] * 4] * 20}, {"seeds": {"init": "0", "data": 1, "aug": 2}},
                          {"n_checkpoints": 3}, {"layout": None}, {"version": None}):
        spoof = Transcript(dict(tr.header, **header_change), tr.checkpoints, dataset=tr.dataset)
        bad = sign_claim(job, "alice", spoof)
        v = _verify(PoLVerifier(random_segments=1), job, bad, spoof)
        assert not v.accepted and v.reason, header_change
    # a declared table inflated everywhere passes the chain check but not the opened segments' own check
    inflated = Transcript(dict(tr.header, segment_metrics=[[2 * m for m in row] for row in tr.header["segment_metrics"]]),
                          tr.checkpoints, dataset=tr.dataset)
    v = _verify(PoLVerifier(random_segments=1), job, sign_claim(job, "alice", inflated), inflated)
    assert not v.accepted and "declared update sizes" in v.reason
    # no channel at all is the caller's context, not the prover's doing (an unreachable prover answers
    # {"error": ...} through its channel): a rejection here would slash an honest prover
    with pytest.raises(ValueError, match="challenge="):
        PoLVerifier(random_segments=1).verify(job, [claim], VerifyContext(seed=0))
    unreachable = pol_context([claim], {}, seed=0)
    v = PoLVerifier(random_segments=1).verify(job, [claim], unreachable)
    assert not v.accepted and "not reachable" in v.reason


def test_anchor_checkpoints_catch_a_swap_close_to_the_provers_own_model():
    """A swap 0.3% of the way to another model hides in the gaps between opened segments (proofs/pol.md,
    'Swaps within the honest envelope'); downloading every other checkpoint as an anchor closes the gaps."""
    job = _job()
    spoof = run_adversary("swap_final", job, "mallory", rng=np.random.default_rng(0), depth=3, blend=0.003)
    trials = 20
    assert _rejections(PoLVerifier(random_segments=3, replay_cache={}), job, spoof, trials) < trials
    assert _rejections(PoLVerifier(random_segments=3, anchors=18, replay_cache={}), job, spoof, trials) == trials
    with pytest.raises(ValueError, match="anchors"):
        PoLVerifier(anchors=-1)
