"""The caller's side of :class:`~vcompute.verify.pol.PoLVerifier`: arguments checked before any evidence.

A caller's mistake (a wrong type, a job that is not a training job, two
claims where PoL takes one) raises ``TypeError``/``ValueError`` naming the
argument; only the provider's evidence can produce a rejected verdict,
which a marketplace slashes on. Numbers become exact builtins here: an int
or float subclass's own ``__int__``/``__float__`` are not called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vcompute.core.types import Claim, Job
from vcompute.verify.base import VerifyContext

__all__ = ["count", "real", "check_call", "check_beacon"]


def count(name: str, v: Any) -> int:
    """``v`` as an exact non-negative int.

    Raises:
        TypeError: if ``v`` is not an integer (bools are not).
        ValueError: if ``v`` is negative.
    """
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    v = int.__int__(v) if isinstance(v, int) else int(v)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def real(name: str, v: Any) -> float:
    """``v`` as an exact float."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    if isinstance(v, float):
        return float.__float__(v)
    return float(int.__int__(v)) if isinstance(v, int) else float(v)


def check_call(job: Any, claims: Any, ctx: Any) -> None:
    """Raise on the caller's mistakes before any evidence is looked at (a rejection would blame the provider)."""
    from vcompute.workloads.training.spec import spec_of

    if not isinstance(job, Job):
        raise TypeError(f"job must be a vcompute Job (a training job), got {type(job).__name__}")
    try:
        spec_of(job)
    except (TypeError, ValueError) as e:
        raise ValueError(f"job is not a valid training job: {e}; build it with make_training_job") from None
    if not isinstance(ctx, VerifyContext):
        raise TypeError(f"ctx must be a VerifyContext (e.g. from pol_context), got {type(ctx).__name__}")
    if isinstance(claims, (Claim, str, bytes)) or not isinstance(claims, Sequence):
        raise TypeError(f"claims must be a sequence holding one Claim (pass [claim]), got {type(claims).__name__}")
    if len(claims) != 1:
        raise ValueError(f"claims must hold exactly one claim (PoL verifies one transcript per call), "
                         f"got {len(claims)}")
    if not isinstance(claims[0], Claim):
        raise TypeError(f"claims[0] must be a Claim, got {type(claims[0]).__name__}")


def check_beacon(beacon: Any) -> bytes:
    """``beacon`` as exact bytes of at least :data:`~vcompute.verify.pol.selection.MIN_BEACON_BYTES`.

    Raises:
        TypeError: if it is not bytes.
        ValueError: if it is too short to be unpredictable.
    """
    from vcompute.verify.pol.selection import MIN_BEACON_BYTES

    if not isinstance(beacon, (bytes, bytearray)):
        raise TypeError(f"beacon must be bytes (public randomness revealed after the commitment), "
                        f"got {type(beacon).__name__}")
    if len(beacon) < MIN_BEACON_BYTES:
        raise ValueError(f"beacon must have at least {MIN_BEACON_BYTES} bytes, got {len(beacon)}")
    return bytes(beacon)
