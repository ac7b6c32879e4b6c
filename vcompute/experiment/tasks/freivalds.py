"""Freivalds against honest and cheating matmul providers, and whole-model verification."""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field

from vcompute.core.arrays import synchronize
from vcompute.experiment.tasks.base import TaskParams
from vcompute.verify.base import VerifyContext
from vcompute.verify.freivalds import Freivalds
from vcompute.workloads.behaviours import BEHAVIOURS, execute
from vcompute.workloads.matmul import honest_matmul, make_matmul_job

__all__ = ["FreivaldsDetection", "FreivaldsModel"]


class FreivaldsDetectionParams(TaskParams):
    """Parameters of :class:`FreivaldsDetection`."""

    n: int = Field(256, ge=1, le=16384, description="matrix size (n x n times n x n)")
    backend: Literal["numpy", "torch", "jax"] = "numpy"
    dtype: Literal["float32", "float64", "float16", "bfloat16", "int8", "int16"] = "float32"
    behaviour: str = Field("honest", description="provider behaviour from the registry")
    rounds: int = Field(2, ge=1, le=64, description="Freivalds rounds k")
    safety: float = Field(5.5, gt=0, lt=40, description="tolerance tail parameter lambda")
    mean: float = Field(0.0, description="mean of the input entries")
    scale: float = Field(1.0, gt=0, description="standard deviation of the input entries")
    spread: float = Field(0.0, ge=0, le=6, description="decades of magnitude mixed across rows/columns")
    trials: int = Field(4, ge=1, le=10000, description="jobs per run")
    behaviour_params: dict[str, float | str] = Field(default_factory=dict)
    min_detectable: bool = Field(False, description="instead: bisect the smallest perturbation (x RMS(C)) of "
                                 "'corrupt_entry' or 'rank_one' caught in >= target of trials, on one job")
    target: float = Field(0.99, gt=0, lt=1, description="detection rate min_detectable searches for")
    resolution: float = Field(0.02, gt=0, le=1, description="relative precision of the min_detectable search")

    def model_post_init(self, __context: Any) -> None:
        BEHAVIOURS.get(self.behaviour)  # unknown names fail at validation, listing the known ones
        if self.min_detectable and (self.behaviour not in _PERTURBATIONS or self.backend != "numpy"
                                    or self.dtype not in ("float32", "float64", "float16")):
            raise ValueError("min_detectable needs behaviour 'corrupt_entry' or 'rank_one' on the numpy backend "
                             f"with a float dtype; got {self.behaviour!r}, {self.backend!r}, {self.dtype!r}")


_PERTURBATIONS = ("corrupt_entry", "rank_one")


class FreivaldsDetection:
    """Runs ``trials`` jobs through one behaviour and Freivalds' check.

    Metrics: ``detected`` (fraction of claims rejected), ``cheated`` (1 if
    the behaviour is not honest), ``applicable`` (0, with ``detected`` NaN,
    when the behaviour has no meaning for the dtype, e.g. NaN in an int8 product; then only these and
    ``not_applicable``, the reason, are returned), ``verify_s`` and ``compute_s`` (median
    seconds), ``verify_over_compute`` (their ratio), ``max_error_ratio``
    (largest |A(BR) - CR| / tolerance seen), ``tolerance_over_rms`` (median
    row tolerance, i.e. minimum detectable single-entry error, over RMS(C)),
    ``false_accept_bound`` (2^-k, or p^-k for integers) and
    ``reexecution_over_compute`` (1: what checking by re-execution costs).

    With ``min_detectable``, a run instead draws one job and measures the
    minimum detectable error (:func:`min_detectable_error`): metrics
    ``min_detectable`` (x RMS(C)), ``detected_at_min``, ``detected_below``
    (at 0.9x), ``max_error_ratio`` and ``honest_rejects`` over ``trials``
    honest checks of the same job, and ``tolerance_over_rms``.
    """

    Params = FreivaldsDetectionParams
    description = "detection rate and verify/compute time of Freivalds against one provider behaviour"
    metrics = ("detected", "cheated", "applicable", "not_applicable", "verify_s", "compute_s",
               "verify_over_compute", "max_error_ratio", "tolerance_over_rms", "false_accept_bound",
               "reexecution_over_compute", "min_detectable", "detected_at_min", "detected_below",
               "honest_rejects")

    def run(self, params: FreivaldsDetectionParams, seed: int) -> dict[str, Any]:
        """Run the trials and return flat metrics (see the class docstring)."""
        if params.min_detectable:
            return min_detectable_error(params, seed)
        rng = np.random.default_rng(seed)
        verifier = Freivalds(rounds=params.rounds, safety=params.safety)
        rejected, t_verify, t_compute, ratios, rel_tol, fa = 0, [], [], [], [], []
        for _ in range(params.trials):
            try:
                job = make_matmul_job(params.n, backend=params.backend, dtype=params.dtype,
                                      seed=int(rng.integers(2**31)), mean=params.mean, scale=params.scale,
                                      spread=params.spread)
                claim = execute(job, params.behaviour, rng=rng, **params.behaviour_params)
            except ValueError as e:  # numpy has no bfloat16; an int8 product cannot hold NaN: not applicable
                return {"detected": float("nan"), "cheated": int(params.behaviour != "honest"), "applicable": 0,
                        "not_applicable": str(e)[:80]}
            t = time.perf_counter()
            synchronize(honest_matmul(job))
            t_compute.append(time.perf_counter() - t)
            verdict = verifier.verify(job, [claim], VerifyContext(rng=rng))
            t_verify.append(verdict.cost.seconds)
            ratios.append(verdict.details.get("max_error_ratio", float("nan")))
            rel_tol.append(verdict.details.get("tolerance_over_rms_median", float("nan")))
            fa.append(verdict.details.get("false_accept_bound", 0.5**params.rounds))
            rejected += not verdict.accepted
        v, c = float(np.median(t_verify)), float(np.median(t_compute))
        return {
            "detected": rejected / params.trials,
            "cheated": int(params.behaviour != "honest"),
            "applicable": 1,
            "verify_s": v,
            "compute_s": c,
            "verify_over_compute": v / c if c > 0 else float("nan"),
            "max_error_ratio": float(np.nanmax(ratios)) if np.any(np.isfinite(ratios)) else float("nan"),
            "tolerance_over_rms": float(np.nanmedian(rel_tol)) if np.any(np.isfinite(rel_tol)) else float("nan"),
            "false_accept_bound": float(max(fa)),
            "reexecution_over_compute": 1.0,
        }


def min_detectable_error(params: FreivaldsDetectionParams, seed: int) -> dict[str, Any]:
    """The smallest perturbation, as a fraction of RMS(C), caught in ``params.target`` of the checks.

    One honest job of size ``n``; perturbation ``t`` of a search step is the
    same at every magnitude (common random numbers, so the detection rate is
    monotone in the magnitude up to rounding): ``corrupt_entry`` moves one
    random entry by ``+-eps RMS(C)``; ``rank_one`` adds ``eps u v^T`` with
    Gaussian ``u, v`` and ``RMS(eps u v^T) = eps RMS(C)``. Each step runs
    ``trials`` checks with fresh signs; the magnitude is bisected in log
    scale to ``params.resolution`` (2%).

    Args:
        params: the task parameters (``min_detectable`` set).
        seed: seeds the job, the perturbations and the signs.

    Returns:
        Flat metrics (see :class:`FreivaldsDetection`).
    """
    from vcompute.workloads.matmul import product

    rng = np.random.default_rng(seed)
    job = make_matmul_job(params.n, backend="numpy", dtype=params.dtype, seed=int(rng.integers(2**31)),
                          mean=params.mean, scale=params.scale, spread=params.spread)
    a, b = job.inputs["a"], job.inputs["b"]
    c = product(a, b)
    m, n = c.shape
    rms = float(np.sqrt(np.mean(c.astype(np.float64) ** 2)))
    fr = Freivalds(rounds=params.rounds, safety=params.safety)
    seeds = rng.integers(2**62, size=params.trials)
    ratios, rel, honest_rejects = [], [], 0
    for s in seeds:
        v = fr.check(a, b, c, seed=int(s))
        ratios.append(v.details["max_error_ratio"])
        rel.append(v.details["tolerance_over_rms_median"])
        honest_rejects += not v.accepted
    where = [(int(rng.integers(m)), int(rng.integers(n)), 1.0 if rng.random() < 0.5 else -1.0)
             for _ in range(params.trials)]
    factors = []
    if params.behaviour == "rank_one":
        for _ in range(params.trials):
            u, w = rng.standard_normal(m), rng.standard_normal(n)
            factors.append((u * (math.sqrt(m * n) / np.linalg.norm(u) / np.linalg.norm(w)), w))
    work = c.copy()

    def rate(eps: float) -> float:
        caught = 0
        for t, s in enumerate(seeds):
            if params.behaviour == "corrupt_entry":
                i, j, sign = where[t]
                work[i, j] = c.dtype.type(float(c[i, j]) + sign * eps * rms)
                caught += not fr.check(a, b, work, seed=int(s) + 1).accepted
                work[i, j] = c[i, j]
            else:
                u, w = factors[t]
                np.multiply(((eps * rms) * u).astype(c.dtype)[:, None], w.astype(c.dtype)[None, :], out=work)
                np.add(work, c, out=work)
                caught += not fr.check(a, b, work, seed=int(s) + 1).accepted
        return caught / len(seeds)

    lo, hi = 1e-14, 1.0
    if rate(hi) < params.target:
        return {"min_detectable": float("nan"), "detected_at_min": float("nan"), "detected_below": float("nan"),
                "max_error_ratio": float(max(ratios)), "honest_rejects": honest_rejects,
                "tolerance_over_rms": float(np.median(rel))}
    while hi / lo > 1.0 + params.resolution:
        mid = math.sqrt(lo * hi)
        if rate(mid) >= params.target:
            hi = mid
        else:
            lo = mid
    return {"min_detectable": hi, "detected_at_min": rate(hi), "detected_below": rate(0.9 * hi),
            "max_error_ratio": float(max(ratios)), "honest_rejects": honest_rejects,
            "tolerance_over_rms": float(np.median(rel))}


class FreivaldsModelParams(TaskParams):
    """Parameters of :class:`FreivaldsModel`."""

    framework: Literal["torch", "jax"] = "torch"
    model: Literal["mlp", "block"] = "mlp"
    behaviour: Literal["honest", "swap_weights", "low_precision"] = "honest"
    layer: int = Field(1, ge=0, description="index of the cheated linear layer")
    batch: int = Field(256, ge=1, le=65536, description="MLP batch, or block batch x 128 tokens / 128")
    rounds: int = Field(2, ge=1, le=64)
    trials: int = Field(3, ge=1, le=1000)


class FreivaldsModel:
    """Whole-model verification of an MLP or transformer block, honest or with one bad layer.

    Metrics: ``detected``, ``cheated``, ``named_bad_layer`` (1 if the first
    bad layer reported is the cheated one), ``verify_s``, ``inference_s``,
    ``verify_over_inference``.
    """

    Params = FreivaldsModelParams
    description = "per-layer Freivalds over a whole torch/JAX forward pass: detection and cost vs inference"
    metrics = ("detected", "cheated", "named_bad_layer", "verify_s", "inference_s", "verify_over_inference")

    def run(self, params: FreivaldsModelParams, seed: int) -> dict[str, Any]:
        """Run the trials and return flat metrics (see the class docstring)."""
        from vcompute.workloads import models

        rng = np.random.default_rng(seed)
        fr = Freivalds(rounds=params.rounds)
        detected, named, tv, ti = 0, 0, [], []
        if params.framework == "torch":
            import torch

            from vcompute.verify.freivalds.model import TorchModelVerifier

            module = models.torch_mlp(seed=seed) if params.model == "mlp" else models.torch_transformer_block(seed=seed)
            shape = (params.batch, 784) if params.model == "mlp" else (max(1, params.batch // 128), 128, 256)
            mv = TorchModelVerifier(module, fr)
            names = list(mv.layers)
            for _ in range(params.trials):
                x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
                with torch.no_grad():
                    t = time.perf_counter()
                    module(x)
                    ti.append(time.perf_counter() - t)
                out, trace = models.torch_provider(module, x, behaviour=params.behaviour,
                                                   layer=names[min(params.layer, len(names) - 1)], rng=rng)
                v = mv.verify((x,), out, trace, seed=rng)
                tv.append(v.details.get("verify_s", v.cost.seconds))
                detected += not v.accepted
                named += v.details.get("first_bad_layer") == names[min(params.layer, len(names) - 1)]
        else:
            import jax
            import jax.numpy as jnp

            from vcompute.verify.freivalds.model import verify_jax_model

            fn, p = models.jax_mlp(seed=seed) if params.model == "mlp" else models.jax_transformer_block(seed=seed)
            shape = (params.batch, 784) if params.model == "mlp" else (max(1, params.batch // 128), 128, 256)
            jf = jax.jit(fn)
            # one untimed verification compiles the per-shape check kernels, as a verifier
            # checking many inferences of one model would have done long before
            x0 = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
            verify_jax_model(fn, (p, x0), *models.jax_provider(fn, p, x0), seed=rng)
            for _ in range(params.trials):
                x = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
                jf(p, x).block_until_ready()
                t = time.perf_counter()
                jf(p, x).block_until_ready()
                ti.append(time.perf_counter() - t)
                out, trace = models.jax_provider(fn, p, x, behaviour=params.behaviour, layer=params.layer, rng=rng)
                v = verify_jax_model(fn, (p, x), out, trace, seed=rng)
                tv.append(v.details.get("verify_s", v.cost.seconds))
                detected += not v.accepted
                named += v.details.get("first_bad_layer") == f"dot_general[{params.layer}]"
        vs, inf = float(np.median(tv)), float(np.median(ti))
        return {"detected": detected / params.trials, "cheated": int(params.behaviour != "honest"),
                "named_bad_layer": named / params.trials, "verify_s": vs, "inference_s": inf,
                "verify_over_inference": vs / inf if inf > 0 else float("nan")}
