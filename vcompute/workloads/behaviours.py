"""Provider behaviours for matmul jobs: honest and cheating (and the deprecated flat registry API).

A behaviour turns a job into a :class:`~vcompute.core.Claim`. Cheats are
real computations a lazy or malicious provider could run, written once
against the array API so they work on numpy, torch and JAX:

- ``honest``: computes ``a @ b``.
- ``corrupt_entry``: honest, then one entry shifted by ``magnitude`` times
  the RMS entry of the product.
- ``low_precision``: computes in bfloat16 (or ``precision``) and returns the
  claimed dtype, pocketing the speed-up.
- ``skip_k``: skips a slice (``fraction``) of the inner dimension.
- ``random_output``: returns noise of the right shape and scale.

Behaviours are registered in the one per-kind registry,
:data:`vcompute.workloads.kinds.behaviours.BEHAVIOURS`, as ``"matmul/<name>"``;
third-party ones come in through the ``vcompute.behaviours`` entry-point group.

Deprecated: :data:`BEHAVIOURS` here is that registry re-exported, and
:func:`execute` / :func:`behaviour` its flat, matmul-first API (a bare name
means ``"matmul/<name>"``); use
:meth:`vcompute.workloads.kinds.JobKind.execute` (``KINDS.get("matmul").execute(job, "skip_k", ...)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, from_numpy, namespace
from vcompute.core.hashing import content_hash
from vcompute.core.types import Claim, Job
from vcompute.workloads.kinds.behaviours import BEHAVIOURS
from vcompute.workloads.matmul import product

__all__ = ["BEHAVIOURS", "Behaviour", "behaviour", "execute", "round_to_bfloat16"]

#: ``(job, rng, **params) -> output``
Behaviour = Callable[..., Any]

def behaviour(name: str):
    """Deprecated: decorator registering a matmul behaviour function as ``"matmul/<name>"``.

    A name with a ``/`` is registered as given (``"forward/my_cheat"``).
    """
    if "/" in name:
        return BEHAVIOURS.register(name)

    def deco(fn: Any) -> Any:
        BEHAVIOURS.register(f"matmul/{name}", fn)
        BEHAVIOURS.alias(name, f"matmul/{name}")
        return fn

    return deco


def execute(job: Job, behaviour_name: str = "honest", *, rng: np.random.Generator,
            provider: str = "provider", **params: Any) -> Claim:
    """Deprecated: run ``job`` as a provider with the named behaviour and return its claim.

    A matmul job looks ``behaviour_name`` up in :data:`BEHAVIOURS` (a bare
    name is a matmul behaviour); a job of another registered kind runs
    through that kind's :meth:`~vcompute.workloads.kinds.JobKind.execute`.

    Args:
        job: the job (its ``kind`` must be one the behaviour handles).
        behaviour_name: a name from :data:`BEHAVIOURS`.
        rng: the provider's randomness (explicit, for reproducibility).
        provider: the provider's name, recorded in the claim.
        **params: behaviour parameters (e.g. ``magnitude=0.05``).

    Raises:
        UnknownPluginError: for an unknown behaviour name.
    """
    if isinstance(job, Job) and job.kind != "matmul":
        from vcompute.workloads.kinds import kind_of_job

        kind = kind_of_job(job)
        if kind is not None:
            name = behaviour_name.split("/", 1)[1] if behaviour_name.startswith(f"{kind.name}/") else behaviour_name
            return kind.execute(job, name, rng=rng, provider=provider, **params)
    fn = BEHAVIOURS.get(behaviour_name)
    out = fn(job, rng, **params)
    meta = {"behaviour": behaviour_name}
    if hasattr(out, "shape") and hasattr(out, "dtype"):
        meta.update(shape=list(out.shape), dtype=str(out.dtype).split(".")[-1], backend=backend_of(out))
    return Claim(job_id=job.id, provider=provider, output=out, commitment=content_hash(out), meta=meta)


def _ab(job: Job) -> tuple[Any, Any]:
    if job.kind != "matmul":
        raise ValueError(f"matmul behaviours cannot run a {job.kind!r} job")
    return job.inputs["a"], job.inputs["b"]


def honest(job: Job, rng: np.random.Generator) -> Any:
    """The correct product."""
    a, b = _ab(job)
    c = product(a, b)
    if "bias" in job.inputs:
        c = c + job.inputs["bias"]
    return c


def _set_entry(c: Any, i: int, j: int, value: float) -> Any:
    """Functional update ``c[i, j] = value`` on any backend."""
    b = backend_of(c)
    if b == "jax":
        return c.at[i, j].set(value)
    c = c.clone() if b == "torch" else c.copy()
    c[i, j] = value
    return c


def corrupt_entry(job: Job, rng: np.random.Generator, *, magnitude: float = 0.05) -> Any:
    """The correct product with one random entry off by ``magnitude`` x RMS(C)."""
    a, b = _ab(job)
    c = product(a, b)
    xp = namespace(c)
    rms = float(xp.sqrt(xp.mean(xp.astype(c, xp.float64 if backend_of(c) != "jax" else xp.float32) ** 2)))
    i, j = int(rng.integers(c.shape[0])), int(rng.integers(c.shape[1]))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    shift = sign * magnitude * max(rms, 1e-30)
    if "int" in str(c.dtype):
        return _set_entry(c, i, j, int(c[i, j]) + int(math.copysign(max(1, round(abs(shift))), shift)))
    return _set_entry(c, i, j, float(c[i, j]) + shift)


def round_to_bfloat16(x: Any) -> Any:
    """Round a float32 array to the nearest bfloat16 value, kept as float32."""
    b = backend_of(x)
    xp = namespace(x)
    if b == "numpy":
        bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & np.uint32(0xFFFF0000)
        return rounded.view(np.float32)
    return xp.astype(xp.astype(x, xp.bfloat16), xp.float32)


def low_precision(job: Job, rng: np.random.Generator, *, precision: str = "bfloat16") -> Any:
    """Computes in ``precision`` (bfloat16 or float16) and returns the claimed dtype."""
    a, b = _ab(job)
    xp = namespace(a)
    out_dtype = a.dtype
    if precision == "bfloat16":
        if backend_of(a) == "numpy":
            lo = round_to_bfloat16(xp.astype(a, xp.float32)) @ round_to_bfloat16(xp.astype(b, xp.float32))
            return xp.astype(round_to_bfloat16(lo), out_dtype)
        return xp.astype(xp.astype(a, xp.bfloat16) @ xp.astype(b, xp.bfloat16), out_dtype)
    if precision == "float16":
        return xp.astype(xp.astype(a, xp.float16) @ xp.astype(b, xp.float16), out_dtype)
    raise ValueError(f"low_precision supports precision 'bfloat16' or 'float16', got {precision!r}")


def skip_k(job: Job, rng: np.random.Generator, *, fraction: float = 0.1) -> Any:
    """Skips a random contiguous ``fraction`` of the inner dimension."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"skip_k fraction must be in (0, 1], got {fraction}")
    a, b = _ab(job)
    k = a.shape[1]
    width = max(1, int(math.ceil(fraction * k)))
    start = int(rng.integers(0, k - width + 1))
    keep = np.r_[0:start, start + width:k]
    if keep.size == 0:
        xp = namespace(a)
        return xp.zeros((a.shape[0], b.shape[1]), dtype=product(a[:1, :1], b[:1, :1]).dtype)
    idx = from_numpy(keep, backend_of(a), like=a)
    xp = namespace(a)
    return product(xp.take(a, idx, axis=1), xp.take(b, idx, axis=0))


def random_output(job: Job, rng: np.random.Generator) -> Any:
    """Noise with the shape, dtype and scale of an honest product, at no compute."""
    a, b = _ab(job)
    m, k = a.shape
    n = b.shape[1]
    s = job.spec
    std = math.sqrt(k) * float(s.get("scale", 1.0)) ** 2 + abs(float(s.get("mean", 0.0))) ** 2 * k
    noise = rng.standard_normal((m, n)) * std
    xp = namespace(a)
    return xp.astype(from_numpy(noise.astype(np.float32), backend_of(a), like=a), a.dtype)
