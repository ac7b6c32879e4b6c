"""When do two replicas' answers count as the same answer?

Three pluggable rules for :class:`~vcompute.verify.replication.Replication`:

- :class:`Bitwise`: equal content hashes (dtype, shape and bytes). Sound
  and simple; honest replicas agree only on reproducible stacks (same
  library build, hardware and thread count, deterministic kernels).
- :class:`Tolerance`: per-tensor relative error and/or ULP bounds, to be
  calibrated from measured honest divergence
  (:func:`vcompute.workloads.determinism.measure_divergence`).
- :class:`Homogeneous`: BOINC's homogeneous redundancy: replicas compare
  only within one declared hardware class, then by an inner rule
  (bitwise by default).

Outputs may be arrays of any backend or pytrees (exact ``dict`` / ``list``
/ ``tuple``) of them. The rules assume both outputs are already well formed;
the verifiers screen malformed ones first with :func:`screen_leaves`, which
admits only exact builtin containers and exact array types (a provider's
``ndarray`` or tensor subclass can override ``__eq__``, ``__array__``,
``shape`` or ``tobytes``, so it is refused before any of its methods runs).
:func:`host_array` is the one conversion to a host ``ndarray`` every
comparison uses: it detaches tensors that require grad, copies CUDA and
non-contiguous tensors to the host and widens bfloat16, so honest tensors
in every form compare by value.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vcompute.core.hashing import content_hash
from vcompute.core.types import Claim

__all__ = ["Equality", "Bitwise", "Tolerance", "Homogeneous", "leaves", "max_ulp_distance",
           "relative_error", "output_hash", "host_array", "screen_leaves", "exact_array_type", "leaf_dtype"]

_MANTISSA = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}
_MIN_EXP = {"float64": -1022, "float32": -126, "float16": -14, "bfloat16": -126}
_NUMERIC_KINDS = "biuf"
_CONTAINERS = (dict, list, tuple)


@runtime_checkable
class Equality(Protocol):
    """A rule deciding whether two claims carry the same answer.

    Attributes:
        name: short name for verdicts and configs.
    """

    name: str

    def equal(self, a: Claim, b: Claim) -> bool:
        """Whether ``a`` and ``b`` agree; never raises on well-formed claims."""
        ...


def output_hash(claim: Claim) -> str | None:
    """Content hash of a claim's output (recomputed), or its commitment if it sent none.

    A commitment counts only as an exact builtin ``str`` copy: a ``str``
    subclass could claim equality with every other commitment.
    """
    if claim.output is not None:
        return content_hash(claim.output)
    c = claim.commitment
    return str.__str__(c) if issubclass(type(c), str) and c else None


def leaves(x: Any) -> list[tuple[str, Any]]:
    """Flatten a pytree of arrays into ``(path, leaf)`` pairs in a fixed order.

    Example:
        >>> [p for p, _ in leaves({"b": [1, 2], "a": 3})]
        ['a', 'b/0', 'b/1']
    """
    out: list[tuple[str, Any]] = []

    def walk(node: Any, path: str) -> None:
        # only exact builtins are walked: a Mapping/Sequence subclass could lie in keys(), __iter__ or __len__
        if type(node) is dict:
            for k, v in sorted(dict.items(node), key=lambda kv: _key(kv[0])):
                here = f"{path}/{_key(k)}" if path else _key(k)
                # any other key type would run provider code when hashed or printed (str(k), k.__hash__)
                walk(v, here) if type(k) in (str, int) else out.append((here, _BadKey(type(k).__name__)))
        elif type(node) in (list, tuple):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}" if path else str(i))
        else:
            out.append((path, node))

    walk(x, "")
    return out


class _BadKey:
    """Stands in a pytree for a dict entry whose key is not an exact ``str`` or ``int``."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def _exact_str(x: Any) -> str | None:
    """An exact builtin copy of a ``str`` (a subclass's ``__eq__``/``__hash__`` no longer apply), else None."""
    return str.__str__(x) if issubclass(type(x), str) else None


def _key(k: Any) -> str:
    # builtin methods only: a hostile key's __str__/__repr__/__lt__ never runs
    if issubclass(type(k), str):
        return str.__str__(k)
    if issubclass(type(k), int):
        return int.__repr__(k)
    return f"<{type(k).__name__} key>"


def exact_array_type(x: Any) -> str | None:
    """The backend of ``x`` if it is an array of an exact, supported type, else None.

    Exact means ``numpy.ndarray`` or a numpy scalar of a builtin dtype,
    ``torch.Tensor`` or ``torch.nn.Parameter`` (not a subclass, which can
    override ``__torch_function__``), or a concrete JAX array. Subclasses
    are not arrays here: their methods are the provider's code.

    Example:
        >>> class Lying(np.ndarray): pass
        >>> exact_array_type(np.zeros(2)), exact_array_type(np.zeros(2).view(Lying))
        ('numpy', None)
    """
    # issubclass(type(x), ...) and never isinstance: isinstance falls back to a provider's __class__
    t = type(x)
    if t is np.ndarray:
        return "numpy"
    if issubclass(t, np.generic):
        # a subclass of np.float64 maps to the builtin scalar type of its dtype, not to itself
        return "numpy" if np.dtype(t).type is t else None
    mod = t.__module__
    if mod.startswith("torch") and "torch" in sys.modules:
        torch = sys.modules["torch"]
        return "torch" if t is torch.Tensor or t is torch.nn.Parameter else None
    if mod.startswith(("jax", "jaxlib")) and "jax" in sys.modules:
        jax = sys.modules["jax"]
        tracer = getattr(getattr(jax, "core", None), "Tracer", ())
        return "jax" if issubclass(t, jax.Array) and not (tracer and issubclass(t, tracer)) else None
    return None


def host_array(x: Any) -> np.ndarray:
    """A host ``numpy.ndarray`` copy of an exact numpy, torch or JAX array.

    Tensors that require grad are detached, CUDA (or any device) tensors
    copied to the host, non-contiguous views made contiguous and bfloat16
    widened to float32 (exactly: every bfloat16 is a float32). The result
    is a fresh array, so comparing never aliases the caller's data.

    Args:
        x: an array of :func:`exact_array_type`.

    Returns:
        A C-contiguous ``ndarray``.

    Raises:
        TypeError: for anything else (a subclass, a list, a sparse,
            quantized or meta tensor); the message names the type.

    Example:
        >>> host_array(np.asfortranarray(np.eye(2))).flags["C_CONTIGUOUS"]
        True
    """
    backend = exact_array_type(x)
    if backend == "numpy":
        return np.array(x, copy=True, order="C", subok=False)
    if backend == "torch":
        import torch

        if x.layout is not torch.strided or x.is_quantized or x.device.type == "meta":
            raise TypeError(f"cannot read a {x.layout} / quantized={x.is_quantized} / {x.device.type} tensor's values")
        t = x.detach()
        if t.dtype == torch.bfloat16:
            t = t.to(torch.float32)
        return np.array(t.cpu().contiguous().numpy(), copy=True, order="C")
    if backend == "jax":
        a = np.array(x, copy=True, order="C")
        if a.dtype.name == "bfloat16":
            a = a.astype(np.float32)
        return a
    raise TypeError(f"expected an exact numpy, torch or JAX array, got {type(x).__module__}.{type(x).__name__}")


def screen_leaves(output: Any) -> tuple[list[tuple[str, Any]], str | None]:
    """The leaves of a provider's output and why it is malformed (or None).

    Well formed: a non-empty pytree of exact ``dict`` / ``list`` / ``tuple``
    whose leaves are exact ``bool`` / ``int`` / ``float`` (finite) or exact
    arrays (:func:`exact_array_type`) of a numeric dtype (bool, integer or
    float, bfloat16 included) with only finite values. Nothing here calls a
    method the provider's objects could override.

    Args:
        output: the claimed output.

    Returns:
        ``(leaves, reason)``: the leaves, and a reason a person can read if
        the output is malformed.

    Example:
        >>> screen_leaves({"y": np.array([1.0, np.inf])})[1]
        'output leaf y contains NaN or Inf'
    """
    if output is None:
        return [], "missing output"
    items = leaves(output)
    if not items:
        return items, "output is an empty structure"
    for i, (path, leaf) in enumerate(items):
        where = path or str(i)
        t = type(leaf)
        if t is _BadKey:
            return items, f"output has a dict key of type {leaf.type_name}; keys must be str or int"
        if t in (bool, int, float):
            if t is float and not math.isfinite(leaf):
                return items, f"output leaf {where} is NaN or Inf"
            continue
        if exact_array_type(leaf) is None:
            sub = issubclass(t, (np.ndarray, np.generic)) or t.__module__.startswith(("torch", "jax"))
            what = "a subclass of an array type" if sub else "not an array"
            return items, f"output leaf {where} is a {t.__module__}.{t.__name__}, {what}"
        try:
            a = host_array(leaf)
        except (TypeError, RuntimeError, ValueError) as e:  # sparse/quantized/meta tensors, unreadable buffers
            return items, f"output leaf {where} cannot be read: {e}"
        if a.dtype.kind not in _NUMERIC_KINDS:
            return items, f"output leaf {where} has non-numeric dtype {a.dtype}"
        if a.dtype.kind == "f" and not bool(np.all(np.isfinite(a))):
            return items, f"output leaf {where} contains NaN or Inf"
    return items, None


def _np(x: Any) -> np.ndarray:
    if type(x) in (bool, int, float, list, tuple):  # plain numbers a caller passes
        return np.asarray(x)
    return host_array(x)


def leaf_dtype(x: Any) -> str:
    """Backend-neutral dtype name of a screened leaf (``float32``, ``bfloat16``; ``float`` for a Python float).

    Example:
        >>> leaf_dtype(np.zeros(2, np.float16)), leaf_dtype(1.5)
        ('float16', 'float')
    """
    if type(x) in (bool, int, float):
        return type(x).__name__
    if type(x) in (list, tuple):  # plain numbers a caller passes to relative_error / max_ulp_distance
        return str(np.asarray(x).dtype)
    return str(x.dtype).split(".")[-1]


_dtype = leaf_dtype


def _kind(x: Any) -> str:
    if type(x) in (bool, int, float):
        return {"bool": "b", "int": "i", "float": "f"}[type(x).__name__]
    d = _dtype(x)
    return "f" if d in _MANTISSA else "b" if d == "bool" else "i"


def _finer(a: Any, b: Any) -> str:
    """The dtype with the longer mantissa: ULPs counted in it are the stricter bound."""
    da, db = _dtype(a), _dtype(b)
    return da if _MANTISSA.get(da, 53) >= _MANTISSA.get(db, 53) else db


def relative_error(a: Any, b: Any) -> float:
    """Per-tensor relative error ``max|a - b| / max(max|a|, max|b|)`` in float64.

    Two all-zero tensors have error 0.

    Example:
        >>> relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.2]))
        0.09090909090909098
    """
    x, y = _np(a), _np(b)
    if x.dtype != y.dtype or x.dtype.kind != "f":  # mixed or integer data: compare exactly in float64
        x, y = x.astype(np.float64), y.astype(np.float64)
    if x.size == 0:
        return 0.0
    # in the arrays' own float format the difference of two close values is exact (Sterbenz) and
    # otherwise off by one rounding, far below any tolerance worth setting
    diff = float(np.max(np.abs(x - y)))
    scale = max(float(np.max(np.abs(x))), float(np.max(np.abs(y))))
    if diff == 0.0:
        return 0.0
    return math.inf if scale == 0.0 else diff / scale


def max_ulp_distance(a: Any, b: Any, dtype: str | None = None, *, per_tensor: bool = False) -> float:
    """Largest elementwise distance in units in the last place of ``dtype``.

    With ``per_tensor=False`` the ULP of an element is taken at the larger
    magnitude of the pair (the textbook definition; it explodes for
    elements near zero that absorbed cancellation). With ``per_tensor=True``
    it is the ULP at the tensor's largest magnitude, the scale a tolerance
    for a whole tensor should use. Works for bfloat16 and float16 too.

    Args:
        a, b: arrays of equal shape.
        dtype: the float format to count ULPs in (default: ``a``'s dtype).
        per_tensor: measure in ULPs of the tensor's largest magnitude.

    Returns:
        The maximum ULP distance (0 for identical arrays).

    Example:
        >>> max_ulp_distance(np.float32([1.0]), np.float32([1.0]) + np.spacing(np.float32(1.0)))
        1.0
    """
    dt = dtype or _dtype(a)
    p = _MANTISSA.get(dt, 53)
    emin = _MIN_EXP.get(dt, -1022)
    x, y = _np(a).astype(np.float64), _np(b).astype(np.float64)
    if x.size == 0:
        return 0.0
    mag = np.maximum(np.abs(x), np.abs(y))
    if per_tensor:
        mag = np.full_like(mag, float(mag.max()))
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(mag > 0, mag, 1.0)))
    ulp = np.exp2(np.maximum(e, emin) - (p - 1))
    return float(np.max(np.abs(x - y) / ulp))


class Bitwise:
    """Equal iff the outputs' content hashes (dtype, shape, bytes) are equal.

    Example:
        >>> a = Claim("j", "p1", output=np.ones(3)); b = Claim("j", "p2", output=np.ones(3))
        >>> Bitwise().equal(a, b)
        True
    """

    name = "bitwise"

    def equal(self, a: Claim, b: Claim) -> bool:
        """Hash equality (recomputed from the outputs when present)."""
        ha, hb = output_hash(a), output_hash(b)
        return ha is not None and ha == hb

    def to_dict(self) -> dict[str, Any]:
        """JSON form for verdict details and configs."""
        return {"name": self.name}


class Tolerance:
    """Equal iff every tensor agrees within a relative and/or ULP bound.

    Args:
        rtol: bound on :func:`relative_error` per tensor, or None.
        ulp: bound on :func:`max_ulp_distance` per tensor (``per_tensor=True``:
            ULPs at the tensor's largest magnitude), or None. With both
            given, a tensor must satisfy both.

    Raises:
        ValueError: when neither bound is given or a bound is negative.

    Example:
        >>> t = Tolerance(rtol=1e-5)
        >>> t.equal(Claim("j", "a", output=np.float32([1, 2])), Claim("j", "b", output=np.float32([1, 2.00001])))
        True
    """

    name = "tolerance"

    def __init__(self, *, rtol: float | None = None, ulp: float | None = None) -> None:
        if rtol is None and ulp is None:
            raise ValueError("Tolerance needs rtol=..., ulp=... or both; for exact agreement use Bitwise()")
        for nm, v in (("rtol", rtol), ("ulp", ulp)):
            if v is not None and not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise ValueError(f"{nm} must be a finite non-negative number, got {v!r}")
        self.rtol = rtol
        self.ulp = ulp

    def __repr__(self) -> str:
        return f"Tolerance(rtol={self.rtol!r}, ulp={self.ulp!r})"

    @classmethod
    def calibrated(cls, measured_rtol: float, *, safety: float = 8.0, floor: float = 0.0) -> Tolerance:
        """A tolerance ``safety`` times the largest honest divergence measured.

        Args:
            measured_rtol: the largest per-tensor relative error seen between
                honest runs (e.g. ``DivergenceReport.max_rel()``).
            safety: multiplier for configurations not measured.
            floor: smallest rtol to return (useful when runs were bitwise equal).

        Returns:
            ``Tolerance(rtol=max(safety * measured_rtol, floor))``.

        Example:
            >>> Tolerance.calibrated(1e-7, safety=10).rtol
            1e-06
        """
        return cls(rtol=max(safety * float(measured_rtol), float(floor)))

    def equal(self, a: Claim, b: Claim) -> bool:
        """Leafwise comparison by value, on the host, whatever the backend, device or layout.

        Differing structure or shape is unequal, and so is a differing dtype
        *kind* (bool / integer / float); integers of different widths compare
        exactly by value. Two float tensors of different widths (a bfloat16 replica, a float64 reference) are compared by
        value: ``rtol`` decides, and ULPs are counted in the finer of the
        two formats, so a narrower answer never loosens the bound.
        """
        la, lb = leaves(a.output), leaves(b.output)
        if [p for p, _ in la] != [p for p, _ in lb]:
            return False
        for (_, x), (_, y) in zip(la, lb):
            xa, ya = _np(x), _np(y)
            if xa.shape != ya.shape or _kind(x) != _kind(y):
                return False
            if self.rtol is not None and not relative_error(xa, ya) <= self.rtol:
                return False
            if self.ulp is not None and not max_ulp_distance(xa, ya, _finer(x, y), per_tensor=True) <= self.ulp:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON form for verdict details and configs."""
        return {"name": self.name, "rtol": self.rtol, "ulp": self.ulp}


class Homogeneous:
    """Homogeneous redundancy: compare only replicas from one hardware class.

    Claims declare their class in ``claim.meta[key]`` (e.g.
    ``"cuda12.4/sm90/132sm/torch2.3"``: the facts cuBLAS reproducibility
    depends on). Claims from different or undeclared classes never agree;
    within a class the ``inner`` rule decides.

    Args:
        inner: the rule within a class (default :class:`Bitwise`).
        key: the meta key holding the hardware class.

    Example:
        >>> h = Homogeneous()
        >>> x = np.ones(2)
        >>> h.equal(Claim("j", "a", output=x, meta={"hardware_class": "A"}),
        ...         Claim("j", "b", output=x, meta={"hardware_class": "B"}))
        False
    """

    name = "homogeneous"

    def __init__(self, inner: Equality | None = None, *, key: str = "hardware_class") -> None:
        self.inner = inner if inner is not None else Bitwise()
        self.key = key

    def equal(self, a: Claim, b: Claim) -> bool:
        """Same declared class and equal under ``inner``."""
        ca, cb = _exact_str(a.meta.get(self.key)), _exact_str(b.meta.get(self.key))
        return bool(ca) and ca == cb and self.inner.equal(a, b)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for verdict details and configs."""
        inner = self.inner.to_dict() if hasattr(self.inner, "to_dict") else {"name": self.inner.name}
        return {"name": self.name, "key": self.key, "inner": inner}
