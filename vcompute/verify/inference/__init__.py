"""Verified LLM generation: re-execution, activation commitments and token checks.

- :class:`GenerationVerifier`: one prefill pass over prompt + tokens checks
  every token against the job's sampler and every chunk's activation
  commitment at the job's precision (``proofs/inference.md``).
- :class:`Reexecution`: the baseline, bitwise (regenerate and compare) or
  with tolerance (prefill and the token checks alone).

Torch or JAX load only when a check runs.
"""

from vcompute.verify.inference.reexecution import Reexecution
from vcompute.verify.inference.tolerance import TOLERANCES, Tolerance, tolerance_for
from vcompute.verify.inference.verifier import GenerationVerifier, provider_public_key, read_proof

__all__ = ["GenerationVerifier", "Reexecution", "TOLERANCES", "Tolerance", "provider_public_key", "read_proof",
           "tolerance_for"]
