"""Trusted re-execution of one transcript segment, and the distances used to judge it.

:func:`reexecute_segment` is a :data:`~vcompute.verify.base.ReexecuteFn`
(``(job, piece) -> state``); a verifier passes the piece through
``ctx.reexecute`` so a marketplace can run it on hardware it trusts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vcompute.core.types import Job
from vcompute.workloads.training.data import Dataset
from vcompute.workloads.training.spec import TrainSpec, dataset_of

__all__ = ["reexecute_segment", "relative_error", "absolute_param_error", "make_piece"]


def make_piece(spec: TrainSpec, state: Mapping[str, np.ndarray], start: int, n_steps: int, *,
               data_seed: int, aug_seed: int, framework: str | None = None,
               data: Dataset | None = None) -> dict[str, Any]:
    """The re-execution request for one segment."""
    return {"kind": "pol-segment", "spec": spec.to_dict(), "state": dict(state), "start": int(start),
            "steps": int(n_steps), "data_seed": int(data_seed), "aug_seed": int(aug_seed),
            "framework": framework or spec.framework, "data": data}


def reexecute_segment(job: Job, piece: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Replay ``piece['steps']`` training steps from ``piece['state']`` on this machine.

    Uses the data in ``piece['data']`` if given (reference-style verifiers
    that accept the prover's data), else the job's own inputs.

    Raises:
        ValueError: if the piece is not a PoL segment.
    """
    from vcompute.workloads.training import backend

    if piece.get("kind") != "pol-segment":
        raise ValueError(f"cannot re-execute a {piece.get('kind')!r} piece; expected 'pol-segment'")
    spec = TrainSpec.from_dict(piece["spec"])
    data = piece.get("data") or dataset_of(job)
    return backend(piece["framework"]).run_steps(spec, piece["state"], piece["start"], piece["steps"], data,
                                                 data_seed=piece["data_seed"], aug_seed=piece["aug_seed"])


def _vec(state: Mapping[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.concatenate([np.asarray(state[n], np.float64).ravel() for n in names])


def relative_error(start: Mapping[str, np.ndarray], claimed: Mapping[str, np.ndarray],
                   replayed: Mapping[str, np.ndarray]) -> float:
    """``|claimed - replayed| / |replayed - start|`` over the whole state (parameters and momentum).

    The denominator is the verifier's own replayed update, which the prover
    does not control: an error that is small in absolute terms but as large
    as the honest update itself (the lever of Fang et al.'s spoof) stays
    large here.

    Example:
        >>> s = {"w": np.zeros(2)}
        >>> relative_error(s, {"w": np.array([1.0, 0.0])}, {"w": np.array([1.0, 1.0])})
        0.7071067811865475
    """
    names = list(start)
    a, c, r = _vec(start, names), _vec(claimed, names), _vec(replayed, names)
    return float(np.linalg.norm(c - r) / max(float(np.linalg.norm(r - a)), 1e-30))


def absolute_param_error(claimed: Mapping[str, np.ndarray], replayed: Mapping[str, np.ndarray]) -> float:
    """Reference-style distance: l2 norm of the parameter difference (momentum ignored)."""
    names = [n for n in claimed if not n.startswith("momentum/")]
    return float(np.linalg.norm(_vec(claimed, names) - _vec(replayed, names)))
