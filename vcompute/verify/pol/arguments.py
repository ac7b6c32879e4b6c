"""The caller's side of :class:`~vcompute.verify.pol.PoLVerifier`: arguments checked before any evidence.

A caller's mistake (a job that is not a training job, a wrong argument type;
the claims list is checked by :class:`~vcompute.verify.base.Scheme`) raises ``TypeError``/``ValueError`` naming the
argument; only the provider's evidence can produce a rejected verdict,
which a marketplace slashes on. Numbers become exact builtins here: an int
or float subclass's own ``__int__``/``__float__`` are not called.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vcompute.core.types import Job

__all__ = ["count", "real", "check_training_job", "check_beacon"]


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


def check_training_job(job: Job) -> None:
    """Raise unless ``job`` is a valid training job (before any evidence is looked at: a rejection would blame
    the provider).

    Raises:
        ValueError: naming what is wrong and how to build one.
    """
    from vcompute.workloads.training.spec import spec_of

    try:
        spec_of(job)
    except (TypeError, ValueError) as e:
        raise ValueError(f"job is not a valid training job: {e}; build it with make_training_job") from None


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
