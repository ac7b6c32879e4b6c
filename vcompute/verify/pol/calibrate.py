"""Calibrating ``delta`` from measured honest reproduction error.

Honest provers and verifiers do not always compute bit-identical steps:
another thread count, another framework (torch vs JAX), another machine.
:func:`calibrate` trains honest transcripts, replays every segment under
such changed conditions, and reports the distribution of the relative
replay error and the ``delta`` it implies (``safety`` times the largest
observed error). With ``unseeded_augmentation`` it also measures the
reference implementation's situation, where augmentation is drawn from
fresh randomness and an honest replay differs by far more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vcompute.verify.pol.prover import prove
from vcompute.verify.pol.replay import absolute_param_error, relative_error
from vcompute.workloads.training.spec import TrainSpec, dataset_of, decode_state, derive_seeds, make_training_job

__all__ = ["calibrate", "CONDITIONS"]

#: Replay conditions: what differs between the prover's and the verifier's run.
CONDITIONS = ("same", "threads", "cross_framework", "unseeded_augmentation")


def _stats(x: Sequence[float]) -> dict[str, float]:
    a = np.asarray(list(x), np.float64)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "min": float(a.min()), "median": float(np.median(a)),
            "p99": float(np.quantile(a, 0.99)), "max": float(a.max()), "zero_fraction": float(np.mean(a == 0))}


def calibrate(*, frameworks: Sequence[str] = ("torch", "jax"), models: Sequence[str] = ("mlp",),
              seeds: Sequence[int] = range(3), conditions: Sequence[str] = CONDITIONS,
              safety: float = 100.0, floor: float = 1e-6, segments: int = 10,
              **spec_overrides: Any) -> dict[str, Any]:
    """Measure honest replay error and choose ``delta``.

    Args:
        frameworks: prover frameworks.
        models: architectures.
        seeds: job seeds (one honest transcript per framework, model and seed).
        conditions: subset of :data:`CONDITIONS`.
        safety: ``delta = max(safety * largest relative honest error, floor)``.
        floor: smallest ``delta`` ever chosen (bit-exact replays give error 0).
        segments: segments replayed per transcript (evenly spaced).
        **spec_overrides: :class:`TrainSpec` fields (steps, checkpoint_every, ...).

    Returns:
        ``{"relative": {condition: stats}, "delta": float, "reference_absolute": stats,
        "reference_delta": float}``; stats have n, min, median, p99, max, zero_fraction.

    Example:
        >>> out = calibrate(frameworks=["jax"], seeds=[0], conditions=["same"], segments=2,
        ...                 dataset="synthetic", steps=8, checkpoint_every=2)
        >>> out["relative"]["same"]["max"]
        0.0
    """
    from vcompute.workloads.training import backend

    bad = set(conditions) - set(CONDITIONS)
    if bad:
        raise ValueError(f"unknown conditions {sorted(bad)}; known: {', '.join(CONDITIONS)}")
    rel: dict[str, list[float]] = {c: [] for c in conditions if c != "unseeded_augmentation"}
    ref_abs: list[float] = []
    for fw in frameworks:
        for model in models:
            for seed in seeds:
                job = make_training_job(TrainSpec(framework=fw, model=model, seed=int(seed), **spec_overrides))
                spec, data = TrainSpec.from_dict(job.spec), dataset_of(job)
                _, tr = prove(job, "calibration")
                s = derive_seeds(job.id, "calibration")
                k = spec.checkpoint_every
                for j in np.unique(np.linspace(0, spec.n_segments - 1, segments).astype(int)):
                    start = decode_state(tr.checkpoints[j])[1]
                    end = decode_state(tr.checkpoints[j + 1])[1]
                    for cond in conditions:
                        other = {"torch": "jax", "jax": "torch"}[fw] if cond == "cross_framework" else fw
                        aug = s.aug + 1 if cond == "unseeded_augmentation" else s.aug
                        with _threads(1 if cond == "threads" else None):
                            out = backend(other).run_steps(spec, start, j * k, k, data, data_seed=s.data, aug_seed=aug)
                        if cond == "unseeded_augmentation":
                            ref_abs.append(absolute_param_error(end, out))
                        else:
                            rel[cond].append(relative_error(start, end, out))
    worst = max((max(v) for v in rel.values() if v), default=0.0)
    return {"relative": {c: _stats(v) for c, v in rel.items()}, "delta": max(safety * worst, floor),
            "reference_absolute": _stats(ref_abs), "reference_delta": float(max(ref_abs, default=0.0))}


class _threads:
    """Temporarily set torch's intra-op thread count (a source of honest non-determinism)."""

    def __init__(self, n: int | None) -> None:
        self.n, self.old = n, None

    def __enter__(self) -> None:
        if self.n is not None:
            import torch

            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            import torch

            torch.set_num_threads(self.old)
