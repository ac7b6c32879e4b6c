"""The verifier's side of a PoL exchange: challenge randomness fixed after the commitments.

:func:`derive_challenge_seed` hashes the posted commitments (and a public
beacon, when there is one) into the seed of the verifier's generator, and
:func:`pol_context` builds the metered :class:`~vcompute.verify.VerifyContext`
a :class:`~vcompute.verify.pol.PoLVerifier` opens transcripts through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vcompute.core.hashing import content_hash
from vcompute.core.types import Claim, Job
from vcompute.verify.base import VerifyContext
from vcompute.workloads.training.pol.prover import challenge_channel
from vcompute.workloads.training.pol.transcript import Transcript

__all__ = ["derive_challenge_seed", "pol_context"]


def derive_challenge_seed(seed: int | None, claims: Sequence[Claim], *, beacon: bytes | None = None) -> int:
    """A verifier seed hashed with the posted commitments (so it is fixed only after them).

    With ``beacon`` (public randomness revealed after the claims are on the
    ledger: a randomness beacon or a later block hash), the seed is the
    beacon hashed with the commitments and ``seed`` may be ``None``. Without
    one, ``seed`` must be unpredictable to the prover when it commits: a
    prover that knows it can re-roll its transcript until the challenges
    miss what it fabricated (grinding; see proofs/pol.md).

    Raises:
        TypeError: if ``beacon`` is not bytes or ``seed`` is not an integer.
        ValueError: if neither is given, or the beacon is shorter than 16 bytes.

    Example:
        >>> a = derive_challenge_seed(None, [], beacon=bytes(16))
        >>> a == derive_challenge_seed(None, [], beacon=bytes(16)), a == derive_challenge_seed(None, [], beacon=b"1" * 16)
        (True, False)
    """
    from vcompute.verify.pol.arguments import check_beacon, count

    commitments = [c.commitment if type(c.commitment) is str else "" for c in claims]
    if beacon is not None:
        h = content_hash({"beacon": check_beacon(beacon).hex(), "commitments": commitments})
        return int(h[:15], 16)
    if seed is None:
        raise ValueError("pass a seed or a beacon: challenge randomness is never implicit")
    h = content_hash({"seed": count("seed", seed), "commitments": commitments})
    return int(h[:15], 16)


def pol_context(claims: Sequence[Claim], transcripts: Mapping[str, Transcript], *, seed: int | None = None,
                beacon: bytes | None = None, reexecute: Callable[[Job, Any], Any] | None = None) -> VerifyContext:
    """A metered :class:`VerifyContext` for PoL: challenge channel + rng derived after the commitments.

    Args:
        claims: the posted claims (their commitments are hashed into the challenge seed).
        transcripts: provider name -> transcript, answering the verifier's openings.
        seed: the verifier's seed (see :func:`derive_challenge_seed`).
        beacon: public randomness revealed after the commitments; used instead of ``seed``.
        reexecute: trusted re-execution backend (default: the verifier replays locally).
    """
    rng = np.random.default_rng(derive_challenge_seed(seed, claims, beacon=beacon))
    return VerifyContext(rng=rng, challenge=challenge_channel(transcripts), reexecute=reexecute)
