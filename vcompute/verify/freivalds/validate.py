"""Validation of Freivalds operands and claims: every problem becomes a reason string, never an exception."""

from __future__ import annotations

from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, dtype_name, namespace
from vcompute.core.types import Claim, Job
from vcompute.verify.freivalds.exact import INT_INPUT_DTYPES, INT_OUTPUT_DTYPES
from vcompute.verify.screening import exact_array_type
from vcompute.verify.freivalds.tolerance import FLOAT_DTYPES

__all__ = ["validate_operands", "nonfinite_reason", "meta_mismatch", "expected_out_dtypes", "check_caller_operands"]

_HALF = ("float16", "bfloat16")


def expected_out_dtypes(in_dtype: str) -> tuple[str, ...]:
    """Output dtypes an honest product of ``in_dtype`` inputs may have (int accumulators; fp32 for halves)."""
    if in_dtype in INT_INPUT_DTYPES:
        return INT_OUTPUT_DTYPES
    if in_dtype in _HALF:
        return (in_dtype, "float32")  # XLA/cuBLAS may return the fp32 accumulator
    return (in_dtype,)


def check_caller_operands(a: Any, b: Any, bias: Any) -> None:
    """Raise for a caller's misuse of ``c == a @ b + bias``: the inputs are the caller's, not the provider's.

    Only the claimed ``c`` is the provider's evidence (a problem with it is a
    rejected verdict); inputs that are not arrays, come from different
    backends or have an unsupported or mixed dtype are the caller's
    integration bug, and a rejection would slash an honest provider for it.

    Raises:
        TypeError: ``a``, ``b`` or ``bias`` is not an array, or they come from different backends.
        ValueError: an unsupported input dtype, ``a`` and ``b`` of different dtypes, torch inputs on
            different devices, or shapes that make no product (empty, under 2-D, inner or batch
            dimensions that do not match, a bias that is not ``(n,)`` or of another dtype family).
    """
    named = [("a", a), ("b", b)] + ([] if bias is None else [("bias", bias)])
    backends = {}
    for nm, x in named:
        try:
            backends[nm] = backend_of(x)
        except TypeError as e:
            raise TypeError(f"{nm} must be a numpy, torch or JAX array: {e}") from None
    if len(set(backends.values())) > 1:
        got = ", ".join(f"{k}: {v}" for k, v in backends.items())
        raise TypeError(f"a, b and bias must come from one backend ({got}); convert them with "
                        "vcompute.core.arrays.from_numpy(to_numpy(x), backend) first")
    if backends["a"] == "torch":
        devices = {nm: str(x.device) for nm, x in named}
        if len(set(devices.values())) > 1:
            got = ", ".join(f"{k}: {v}" for k, v in devices.items())
            raise ValueError(f"a, b and bias must be on one device ({got}); move them with .to(device) first")
    da, db = dtype_name(a), dtype_name(b)
    if da not in FLOAT_DTYPES + INT_INPUT_DTYPES:
        raise ValueError(f"a has unsupported dtype {da}; use one of {', '.join(FLOAT_DTYPES + INT_INPUT_DTYPES)}")
    if da != db:
        raise ValueError(f"a has dtype {da} but b has dtype {db}; cast both to one dtype before multiplying")
    # the inputs' own shapes: a mismatch here would reject every provider for the caller's job
    for nm, x in (("a", a), ("b", b)):
        if len(x.shape) < 2 or any(d == 0 for d in x.shape):
            raise ValueError(f"{nm} must be a non-empty array of at least 2 dimensions, got shape {tuple(x.shape)}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"a is {tuple(a.shape)} and b is {tuple(b.shape)}: their inner dimensions differ")
    try:
        np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    except ValueError:
        raise ValueError(f"the batch dimensions of a {tuple(a.shape)} and b {tuple(b.shape)} do not broadcast") from None
    if bias is not None:
        if tuple(bias.shape) != (b.shape[-1],):
            raise ValueError(f"bias has shape {tuple(bias.shape)}; a product with b {tuple(b.shape)} needs "
                             f"({b.shape[-1]},)")
        if (dtype_name(bias) in INT_INPUT_DTYPES + INT_OUTPUT_DTYPES) != (da in INT_INPUT_DTYPES):
            raise ValueError(f"bias dtype {dtype_name(bias)} does not match a {da} product; cast the bias")


def validate_operands(a: Any, b: Any, c: Any, bias: Any) -> str | None:
    """The first problem with the operands of ``c == a @ b + bias`` (shapes, dtypes, backends), or None.

    The claimed ``c`` must be an exact array type (:func:`~vcompute.verify.screening.exact_array_type`):
    a subclass's methods would be the provider's code inside the check.
    NaN/Inf are not scanned here (that would cost a pass over every operand):
    the check diagnoses them with :func:`nonfinite_reason` when its result is not finite.
    """
    names = ("A", "B", "C")
    if exact_array_type(c) is None:  # the provider's evidence runs none of its own code in the check
        t = type(c)
        return (f"the claimed output is a {t.__module__}.{t.__name__}, not an exact numpy/torch/JAX array "
                "(a subclass of an array type computes as it likes; send a plain array)")
    try:
        backends = [backend_of(x) for x in (a, b, c)]
    except TypeError as e:
        return f"not an array: {e}"
    if len(set(backends)) > 1:
        return f"arrays from different backends (A: {backends[0]}, B: {backends[1]}, C: {backends[2]})"
    for nm, x in zip(names, (a, b, c)):
        if len(x.shape) < 2:
            return f"{nm} must have at least 2 dimensions, got shape {tuple(x.shape)}"
        if any(d == 0 for d in x.shape):
            return f"{nm} is empty (shape {tuple(x.shape)})"
    da, db, dc = dtype_name(a), dtype_name(b), dtype_name(c)
    if da != db:
        return f"A has dtype {da} but B has dtype {db}; cast both to one dtype before multiplying"
    if da not in FLOAT_DTYPES + INT_INPUT_DTYPES:
        return f"unsupported input dtype {da}; use one of {', '.join(FLOAT_DTYPES + INT_INPUT_DTYPES)}"
    if dc not in expected_out_dtypes(da):
        return f"the claimed output has dtype {dc}; a {da} product must be {' or '.join(expected_out_dtypes(da))}"
    (m, k), (k2, n) = tuple(a.shape[-2:]), tuple(b.shape[-2:])
    if k != k2:
        return f"inner dimensions differ: A is {tuple(a.shape)}, B is {tuple(b.shape)}"
    try:
        batch = np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    except ValueError:
        return f"batch dimensions of A {tuple(a.shape)} and B {tuple(b.shape)} do not broadcast"
    if tuple(c.shape) != tuple(batch) + (m, n):
        return f"C has shape {tuple(c.shape)}, expected {tuple(batch) + (m, n)}"
    if bias is not None:
        try:
            bb = backend_of(bias)
        except TypeError as e:
            return f"bias is not an array: {e}"
        if bb != backends[0]:
            return f"bias is a {bb} array but the product is {backends[0]}"
        if tuple(bias.shape) != (n,):
            return f"bias has shape {tuple(bias.shape)}, expected {(n,)}"
        if (dtype_name(bias) in INT_INPUT_DTYPES + INT_OUTPUT_DTYPES) != (da in INT_INPUT_DTYPES):
            return f"bias dtype {dtype_name(bias)} does not match a {da} product"
    return None


def nonfinite_reason(a: Any, b: Any, c: Any, bias: Any) -> str:
    """Which operand made the check non-finite (only scanned when the check's result is)."""
    xp = namespace(a, b, c)
    for nm, x in (("the claimed output", c), ("input A", a), ("input B", b), ("the bias", bias)):
        if x is not None and not bool(xp.all(xp.isfinite(x))):
            return f"{nm} contains NaN or Inf"
    return "the operands are too large to check in float64 (their squares overflow)"


def _int_list(x: Any) -> list[int] | None:
    """``x`` as a list of builtin ints if it is a list/tuple (``torch.Size`` too) of ints, read from storage."""
    t = type(x)
    items = list.copy(x) if issubclass(t, list) else list(tuple.__iter__(x)) if issubclass(t, tuple) else None
    if items is None:
        return None
    out = []
    for d in items:
        td = type(d)
        if td is int or (issubclass(td, np.integer) and np.dtype(td).type is td):
            out.append(int(d))
        else:
            return None
    return out


def meta_mismatch(claim: Claim, out: Any, job: Job) -> str | None:
    """A claim whose declared shape/dtype disagrees with its output, or with the job's dtype.

    ``out`` and ``claim.meta`` are the provider's: they are read without running any of
    their code (exact array types, exact ``str`` keys, shapes of exact ints), so a hostile
    value gives a reason, never an exception.
    """
    if exact_array_type(out) is None:
        t = type(out)
        return f"claim output is not an exact array (got {t.__module__}.{t.__name__})"
    shape, dt = tuple(int(d) for d in out.shape), dtype_name(out)
    # exact str keys only: a str subclass key could run code in the lookup (its __eq__)
    meta = {k: v for k, v in claim.meta.items() if type(k) is str}
    if "shape" in meta:
        declared = _int_list(meta["shape"])
        if declared is None:
            return f"claim declares a shape that is not a list of ints (a {type(meta['shape']).__name__})"
        if tuple(declared) != shape:
            return f"claim declares shape {tuple(declared)} but its output has shape {shape}"
    if "dtype" in meta:
        declared = meta["dtype"]
        if type(declared) is not str:
            return f"claim declares a dtype that is not a str (a {type(declared).__name__})"
        if declared != dt:
            return f"claim declares dtype {declared} but its output has dtype {dt}"
    want = job.spec.get("out_dtype")
    allowed = (want,) if want is not None else expected_out_dtypes(str(job.spec.get("dtype", dt)))
    if dt not in allowed:
        return f"the job asks for a {' or '.join(allowed)} result but the claim's output is {dt}"
    return None
