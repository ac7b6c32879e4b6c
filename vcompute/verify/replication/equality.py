"""When do two replicas' answers count as the same answer?

Three pluggable rules for :class:`~vcompute.verify.replication.Replication`:

- :class:`Bitwise`: equal content hashes (dtype, shape and bytes). Sound
  and simple; honest replicas agree only on reproducible stacks (same
  library build, hardware and thread count, deterministic kernels).
- :class:`Tolerance`: per-tensor relative error and/or ULP bounds, to be
  calibrated from measured honest divergence
  (:func:`vcompute.verify.replication.determinism.measure_divergence`).
- :class:`Homogeneous`: BOINC's homogeneous redundancy: replicas compare
  only within one declared hardware class, then by an inner rule
  (bitwise by default).

Outputs may be arrays of any backend or pytrees (exact ``dict`` / ``list``
/ ``tuple``) of them. The rules assume both outputs are already well formed;
the verifiers screen malformed ones first
(:func:`~vcompute.verify.screening.screen_leaves`), and every comparison
reads values through :func:`~vcompute.verify.screening.host_array`, so
honest tensors in every form (bf16, requiring grad, CUDA, non-contiguous,
JAX) compare by value.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vcompute.core.hashing import content_hash
from vcompute.core.types import Claim
from vcompute.verify.screening import exact_array_type, exact_str, host_array, leaf_dtype, leaves, screen_leaves

__all__ = ["Equality", "Bitwise", "Tolerance", "Homogeneous", "leaves", "max_ulp_distance",
           "relative_error", "output_hash", "host_array", "screen_leaves", "exact_array_type", "leaf_dtype"]
# leaves, host_array, screen_leaves, exact_array_type and leaf_dtype live in screening (re-exported here)

_MANTISSA = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8, "float8_e4m3fn": 4, "float8_e5m2": 3}
_MIN_EXP = {"float64": -1022, "float32": -126, "float16": -14, "bfloat16": -126, "float8_e4m3fn": -6,
            "float8_e5m2": -14}


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


def _np(x: Any) -> np.ndarray:
    if type(x) in (bool, int, float, list, tuple):  # plain numbers a caller passes
        return np.asarray(x)
    return host_array(x)


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
        exactly by value. Two float tensors of different widths (a bfloat16
        replica, a float64 reference) are compared by value: ``rtol``
        decides, and ULPs are counted in the finer of the two formats, so a
        narrower answer never loosens the bound.
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


def _meta_value(claim: Claim, key: str) -> Any:
    """``claim.meta[key]`` found among exact ``str`` keys only (a subclass key's ``__eq__`` would run in a lookup)."""
    for k, v in claim.meta.items():
        if type(k) is str and k == key:
            return v
    return None


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
        ca, cb = exact_str(_meta_value(a, self.key)), exact_str(_meta_value(b, self.key))
        return bool(ca) and ca == cb and self.inner.equal(a, b)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for verdict details and configs."""
        inner = self.inner.to_dict() if hasattr(self.inner, "to_dict") else {"name": self.inner.name}
        return {"name": self.name, "key": self.key, "inner": inner}
