"""Proof-of-learning: committed training transcripts and a verifier that replays a few segments.

``import vcompute.verify.pol`` needs numpy only; torch and JAX load when a
segment is trained or replayed. The claims, the argument and the tests that
check them are in ``proofs/pol.md``.

Example:
    >>> from vcompute.workloads.training import make_training_job
    >>> job = make_training_job(dataset="synthetic", steps=8, checkpoint_every=2)
    >>> claim, transcript = prove(job, "alice")
    >>> ctx = pol_context([claim], {"alice": transcript}, seed=1)
    >>> PoLVerifier(random_segments=2).verify(job, [claim], ctx).accepted
    True
"""

from vcompute.workloads.training.pol.prover import (
    TranscriptRecorder,
    build_transcript,
    challenge_channel,
    prove,
    sign_claim,
)
from vcompute.verify.pol.context import derive_challenge_seed, pol_context
from vcompute.verify.pol.replay import reexecute_segment
from vcompute.verify.pol.selection import beacon_rng, escape_probability, select_segments
from vcompute.workloads.training.pol.transcript import METRICS, Transcript, TranscriptError, update_metrics
from vcompute.verify.pol.verifier import DEFAULT_DELTA, PoLVerifier
from vcompute.workloads.training.pol.wrappers import make_provable, provable_step

__all__ = [
    "DEFAULT_DELTA",
    "METRICS",
    "PoLVerifier",
    "Transcript",
    "TranscriptError",
    "TranscriptRecorder",
    "beacon_rng",
    "build_transcript",
    "challenge_channel",
    "derive_challenge_seed",
    "escape_probability",
    "make_provable",
    "pol_context",
    "provable_step",
    "prove",
    "reexecute_segment",
    "select_segments",
    "sign_claim",
    "update_metrics",
]
