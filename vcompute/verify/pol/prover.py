"""Deprecated: the prover moved to :mod:`vcompute.workloads.training.pol.prover` and the
challenge context to :mod:`vcompute.verify.pol.context`; this path re-exports both for outside code.

vcompute itself imports the new paths (``tests/test_layers.py`` checks).
"""

import warnings

from vcompute.verify.pol.context import derive_challenge_seed, pol_context
from vcompute.workloads.training.pol.prover import (TranscriptRecorder, build_transcript, challenge_channel, prove,
                                                    sign_claim)

__all__ = ["TranscriptRecorder", "build_transcript", "sign_claim", "prove", "challenge_channel",
           "pol_context", "derive_challenge_seed"]

warnings.warn("vcompute.verify.pol.prover is deprecated: import vcompute.workloads.training.pol.prover "
              "(prover) or vcompute.verify.pol.context (challenges)", DeprecationWarning, stacklevel=2)
