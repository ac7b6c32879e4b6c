"""Calibrating ``delta`` between honest reproduction error and cheaper-precision training.

Honest provers and verifiers do not always compute bit-identical steps:
another thread count (1 vs 2 intra-op threads), another framework (torch
vs JAX), another machine. A provider that trains at a cheaper precision
(fp16 or bf16 autocast) and claims fp32 produces segments that are off by
far more. :func:`calibrate` trains honest transcripts (torch at one
thread), replays segments under the honest changed conditions, trains the
same segments under autocast, and measures the relative error of each
against the fp32 replay. ``delta`` is the geometric mean of the largest
honest error and the smallest cheap-precision error: the same factor of
margin on both sides (``separation`` is their ratio; ``delta`` only
separates them if it is above 1). With ``unseeded_augmentation`` it also
measures the reference implementation's situation, where augmentation is
drawn from fresh randomness and an honest replay differs by far more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vcompute.workloads.training.pol.prover import prove
from vcompute.verify.pol.replay import absolute_param_error, relative_error
from vcompute.workloads.training.spec import TrainSpec, dataset_of, decode_state, derive_seeds, make_training_job

__all__ = ["calibrate", "CONDITIONS", "HONEST", "CHEAP", "calibrated_delta"]

#: Honest replay conditions: what differs between an honest prover's run and the verifier's.
HONEST = ("same", "threads", "cross_framework")
#: Cheaper training claimed as the job's fp32: torch autocast at these precisions.
CHEAP = ("float16", "bfloat16")
#: Every condition :func:`calibrate` measures.
CONDITIONS = (*HONEST, *CHEAP, "unseeded_augmentation")


def calibrated_delta(honest_max: float, cheap_min: float | None, *, floor: float = 1e-7,
                     safety: float = 100.0) -> float:
    """The tolerance between the largest honest error and the smallest cheap-precision one.

    ``sqrt(max(honest_max, floor) * cheap_min)`` (their geometric mean);
    without cheap-precision measurements, ``max(safety * honest_max, floor)``.
    ``floor`` stands for honest errors too rare to have been seen (float32
    rounding of one update is about ``6e-8`` relative).

    Example:
        >>> calibrated_delta(1e-6, 1e-4)
        1e-05
    """
    if cheap_min is None:
        return max(safety * honest_max, floor)
    return float(np.sqrt(max(honest_max, floor) * cheap_min))


def _stats(x: Sequence[float]) -> dict[str, float]:
    a = np.asarray(list(x), np.float64)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "min": float(a.min()), "median": float(np.median(a)),
            "p99": float(np.quantile(a, 0.99)), "max": float(a.max()), "zero_fraction": float(np.mean(a == 0))}


def calibrate(*, frameworks: Sequence[str] = ("torch", "jax"), models: Sequence[str] = ("mlp",),
              seeds: Sequence[int] = range(3), conditions: Sequence[str] = CONDITIONS,
              safety: float = 100.0, floor: float = 1e-7, segments: int = 10,
              **spec_overrides: Any) -> dict[str, Any]:
    """Measure honest and cheap-precision replay error and choose ``delta``.

    Args:
        frameworks: prover frameworks.
        models: architectures.
        seeds: job seeds (one honest transcript per framework, model and seed).
        conditions: subset of :data:`CONDITIONS`.
        safety: without cheap-precision conditions, ``delta = max(safety * largest honest error, floor)``.
        floor: smallest honest error assumed (bit-exact replays give error 0); see :func:`calibrated_delta`.
        segments: segments replayed per transcript (evenly spaced).
        **spec_overrides: :class:`TrainSpec` fields (steps, checkpoint_every, ...).

    Returns:
        ``{"relative": {condition: stats}, "honest_max": float, "cheap_min": float | None,
        "separation": float, "delta": float, "reference_absolute": stats, "reference_delta": float}``;
        stats have n, min, median, p99, max, zero_fraction.

    Raises:
        ValueError: for an unknown condition.

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
                with _threads(1):  # the prover; the "threads" condition replays on two
                    _, tr = prove(job, "calibration")
                s = derive_seeds(job.id, "calibration")
                k = spec.checkpoint_every
                for j in np.unique(np.linspace(0, spec.n_segments - 1, segments).astype(int)):
                    start = decode_state(tr.checkpoints[j])[1]
                    end = decode_state(tr.checkpoints[j + 1])[1]
                    for cond in conditions:
                        rel_or_abs = _measure(cond, fw, spec, start, end, int(j) * k, data, s)
                        (ref_abs if cond == "unseeded_augmentation" else rel[cond]).append(rel_or_abs)
    honest = [e for c in HONEST if c in rel for e in rel[c]]
    cheap = [e for c in CHEAP if c in rel for e in rel[c]]
    honest_max = max(honest, default=0.0)
    cheap_min = min(cheap) if cheap else None
    return {"relative": {c: _stats(v) for c, v in rel.items()}, "honest_max": honest_max, "cheap_min": cheap_min,
            "separation": (cheap_min / max(honest_max, floor)) if cheap_min is not None else float("nan"),
            "delta": calibrated_delta(honest_max, cheap_min, floor=floor, safety=safety),
            "reference_absolute": _stats(ref_abs), "reference_delta": float(max(ref_abs, default=0.0))}


def _measure(cond: str, fw: str, spec: TrainSpec, start, end, step: int, data, s) -> float:
    """One segment's error under ``cond``: relative to the fp32 replay, or (reference) absolute."""
    from vcompute.workloads.training import backend

    k = spec.checkpoint_every
    if cond in CHEAP:  # the claim is autocast training from the same start; the replay is the honest end
        with _threads(1):
            cheap = backend("torch").run_steps(spec, start, step, k, data, data_seed=s.data, aug_seed=s.aug,
                                               autocast=cond)
        return relative_error(start, cheap, end)
    other = {"torch": "jax", "jax": "torch"}[fw] if cond == "cross_framework" else fw
    aug = s.aug + 1 if cond == "unseeded_augmentation" else s.aug
    with _threads(2 if cond == "threads" else 1):
        out = backend(other).run_steps(spec, start, step, k, data, data_seed=s.data, aug_seed=aug)
    if cond == "unseeded_augmentation":
        return absolute_param_error(end, out)
    return relative_error(start, end, out)


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
