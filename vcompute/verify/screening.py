"""What a provider's output may be, read without running any of its code.

The boundary every replication and spot-check comparison passes first:

- :func:`leaves` walks only exact ``dict`` / ``list`` / ``tuple`` (a
  ``Mapping`` or ``Sequence`` subclass could lie in ``keys``, ``__iter__`` or
  ``__len__``); dict keys must be exact ``str`` or ``int``.
- :func:`exact_array_type` admits only exact array types, tested with
  ``issubclass(type(x), ...)`` and never ``isinstance`` (which consults an
  object's ``__class__``): an ``ndarray`` or tensor subclass can override
  ``__eq__``, ``__array__``, ``shape`` or ``tobytes``.
- :func:`host_array` is the one conversion to a host ``ndarray``: it detaches
  tensors that require grad, copies CUDA (any device) and non-contiguous
  tensors to the host and widens bfloat16 exactly, always into a fresh array.
- :func:`screen_leaves` says why an output is malformed (or that it is not).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

__all__ = ["leaves", "exact_array_type", "exact_str", "host_array", "screen_leaves", "leaf_dtype",
           "SUPPORTED_DTYPES"]

_NUMERIC_KINDS = "biuf"
_PLAIN = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")
#: Output dtypes per backend: what every comparison and vcompute.core.hashing handle exactly. Anything else
#: (complex, float8, numpy arrays of ml_dtypes' bfloat16, torch's uint16..uint64) is refused by this rule.
SUPPORTED_DTYPES = {"numpy": _PLAIN + ("uint16", "uint32", "uint64"), "torch": _PLAIN + ("bfloat16",),
                    "jax": _PLAIN + ("uint16", "uint32", "uint64", "bfloat16")}


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


def exact_str(x: Any) -> str | None:
    """An exact builtin copy of a ``str`` (a subclass's ``__eq__``/``__hash__`` no longer apply), else None.

    Example:
        >>> class Lying(str):
        ...     def __eq__(self, other): return True
        >>> type(exact_str(Lying("a"))) is str, exact_str(3)
        (True, None)
    """
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
    override ``__torch_function__``), or a concrete JAX array (``ArrayImpl``,
    not a Python subclass of ``jax.Array``). Subclasses are not arrays here:
    their methods are the provider's code. Values are then read through the
    classes' own methods (``torch.Tensor.detach(x)``), never an instance's:
    an exact tensor can carry attributes named like its methods.

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
        # only the concrete array class: a Python class can subclass the abstract jax.Array under a
        # jax.* module name and answer __array__ with values of its choosing
        return "jax" if t is _jax_array_type() else None
    return None


def _jax_array_type() -> type:
    """The class of concrete JAX arrays (``ArrayImpl``), whatever module this JAX version keeps it in."""
    global _JAX_ARRAY
    if _JAX_ARRAY is None:
        import jax.numpy as jnp

        _JAX_ARRAY = type(jnp.zeros(()))
    return _JAX_ARRAY


_JAX_ARRAY: type | None = None


def host_array(x: Any) -> np.ndarray:
    """A host ``numpy.ndarray`` copy of an exact numpy, torch or JAX array.

    Tensors that require grad are detached, CUDA (or any device) tensors
    copied to the host, non-contiguous views made contiguous and bfloat16
    and float8 widened to float32 (exactly: every such value is a float32). The result
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
        return _widen(np.array(x, copy=True, order="C", subok=False))
    if backend == "torch":
        import torch

        if x.layout is not torch.strided or x.is_quantized or x.device.type == "meta":
            raise TypeError(f"cannot read a {x.layout} / quantized={x.is_quantized} / {x.device.type} tensor's values")
        # through the class, never the instance: an exact tensor can carry its own ``detach`` attribute
        t = torch.Tensor.detach(x)
        if t.dtype.is_floating_point and t.dtype not in (torch.float16, torch.float32, torch.float64):
            t = t.to(torch.float32)  # bfloat16 and the float8 formats: numpy has none of them; the widening is exact
        return np.array(t.cpu().contiguous().numpy(), copy=True, order="C")
    if backend == "jax":
        return _widen(np.array(x, copy=True, order="C"))
    raise TypeError(f"expected an exact numpy, torch or JAX array, got {type(x).__module__}.{type(x).__name__}")


def _widen(a: np.ndarray) -> np.ndarray:
    """ml_dtypes' bfloat16 / float8 arrays (JAX's, or numpy ones built on them) as float32, exactly."""
    if a.dtype.kind == "V" and a.dtype.name.startswith(("bfloat16", "float8")):
        return a.astype(np.float32)
    return a


def screen_leaves(output: Any) -> tuple[list[tuple[str, Any]], str | None]:
    """The leaves of a provider's output and why it is malformed (or None).

    Well formed: a non-empty pytree of exact ``dict`` / ``list`` / ``tuple``
    whose leaves are exact ``bool`` / ``int`` / ``float`` (finite) or exact
    arrays (:func:`exact_array_type`) of a dtype in
    :data:`SUPPORTED_DTYPES` for their backend (bool, integer or float,
    bfloat16 for torch and JAX) with only finite values. Nothing here calls a
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
        backend = exact_array_type(leaf)
        if backend is None:
            sub = issubclass(t, (np.ndarray, np.generic)) or t.__module__.startswith(("torch", "jax"))
            what = "a subclass of an array type" if sub else "not an array"
            return items, f"output leaf {where} is a {t.__module__}.{t.__name__}, {what}"
        name = leaf_dtype(leaf)
        if name not in SUPPORTED_DTYPES[backend]:
            return items, (f"output leaf {where} has dtype {name}, not supported for {backend} outputs "
                           f"(supported: {', '.join(SUPPORTED_DTYPES[backend])})")
        try:
            a = host_array(leaf)
        except (TypeError, RuntimeError, ValueError) as e:  # sparse/quantized/meta tensors, deleted buffers
            return items, f"output leaf {where} cannot be read: {e}"
        if a.dtype.kind not in _NUMERIC_KINDS:  # unreachable for the dtypes above; kept as the invariant
            return items, f"output leaf {where} has non-numeric dtype {a.dtype}"
        if a.dtype.kind == "f" and not bool(np.all(np.isfinite(a))):
            return items, f"output leaf {where} contains NaN or Inf"
    return items, None


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
