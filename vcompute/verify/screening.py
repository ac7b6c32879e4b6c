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
- :func:`private_copy` copies an output so that no one else holds what a
  verdict binds (the :class:`~vcompute.verify.base.Scheme` base checks the copy).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

__all__ = ["leaves", "exact_array_type", "exact_str", "host_array", "screen_leaves", "leaf_dtype", "memory_span",
           "private_copy", "SUPPORTED_DTYPES", "MAX_DEPTH"]

_NUMERIC_KINDS = "biuf"
_PLAIN = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")
#: Output dtypes per backend: what every comparison and vcompute.core.hashing handle exactly. Anything else
#: (complex, float8, numpy arrays of ml_dtypes' bfloat16, torch's uint16..uint64) is refused by this rule.
SUPPORTED_DTYPES = {"numpy": _PLAIN + ("uint16", "uint32", "uint64"), "torch": _PLAIN + ("bfloat16",),
                    "jax": _PLAIN + ("uint16", "uint32", "uint64", "bfloat16")}


#: Deepest container nesting an output may have: a provider's nesting must not exhaust the verifier's stack.
MAX_DEPTH = 64


def leaves(x: Any) -> list[tuple[str, Any]]:
    """Flatten a pytree of arrays into ``(path, leaf)`` pairs in a fixed order.

    A pytree is a tree: a container reached a second time (a cycle, or one
    list referenced many times, which would make the walk, hashes and
    comparisons proportional to what the references declare rather than to
    what the provider holds; a tuple of at most 16 plain scalars, which the
    interpreter itself shares, excepted) or nested deeper than
    :data:`MAX_DEPTH` ends the walk there with a stand-in leaf that
    :func:`screen_leaves` rejects.

    Example:
        >>> [p for p, _ in leaves({"b": [1, 2], "a": 3})]
        ['a', 'b/0', 'b/1']
    """
    out: list[tuple[str, Any]] = []
    seen: set[int] = set()  # ids of the containers walked (they are alive for the whole walk)

    def walk(node: Any, path: str, depth: int) -> None:
        # only exact builtins are walked: a Mapping/Sequence subclass could lie in keys(), __iter__ or __len__
        if type(node) in (dict, list, tuple):
            if depth >= MAX_DEPTH:
                out.append((path, _BadNode(f"is nested deeper than {MAX_DEPTH} containers")))
                return
            if id(node) in seen and not _small_constant(node):
                out.append((path, _BadNode("is reached twice (a cycle, or one container referenced again)")))
                return
            seen.add(id(node))
        if type(node) is dict:
            for k, v in sorted(dict.items(node), key=lambda kv: _key(kv[0])):
                here = f"{path}/{_key(k)}" if path else _key(k)
                # any other key type would run provider code when hashed or printed (str(k), k.__hash__)
                walk(v, here, depth + 1) if type(k) in (str, int) else out.append((here, _BadKey(type(k).__name__)))
        elif type(node) in (list, tuple):
            for i, v in enumerate(list.__iter__(node) if type(node) is list else tuple.__iter__(node)):
                walk(v, f"{path}/{i}" if path else str(i), depth + 1)
        else:
            out.append((path, node))

    walk(x, "", 0)
    return out


def _small_constant(node: Any) -> bool:
    """A tuple the interpreter itself may share (a literal like ``(2, 3)`` or ``()``): a few plain scalars."""
    return type(node) is tuple and len(node) <= 16 and all(type(v) in (bool, int, float, str) for v in node)


class _BadNode:
    """Stands in a pytree for a container reached twice or nested too deep (see :func:`leaves`)."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


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
        # a subclass of np.float64 maps to the builtin scalar type of its dtype, not to itself; a
        # structured scalar (np.void) is a live view into its array and may hold objects: not an array
        return "numpy" if np.dtype(t).type is t and t is not np.void and np.dtype(t).kind != "O" else None
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
    spans: list[tuple[str, int, int, str]] = []  # (memory space, first byte, end, leaf): no two may overlap
    for i, (path, leaf) in enumerate(items):
        where = path or str(i)
        t = type(leaf)
        if t is _BadKey:
            return items, f"output has a dict key of type {leaf.type_name}; keys must be str or int"
        if t is _BadNode:
            return items, f"output {('leaf ' + where) if where else 'structure'} {leaf.why}"
        if t in (bool, int, float):
            if t is float and not math.isfinite(leaf):
                return items, f"output leaf {where} is NaN or Inf"
            if t is int and not -(2**63) <= leaf < 2**64:  # no dtype holds it; hashing and comparing it would raise
                return items, f"output leaf {where} is an int outside the 64-bit range"
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
        # before any copy: what reading the leaf allocates is bounded by memory the provider really holds
        span, problem = memory_span(leaf)
        if problem is not None:
            return items, f"output leaf {where} {problem}"
        if span is not None:
            spans.append(span + (where,))
    spans.sort()
    for (s1, _, end, w1), (s2, lo, _, w2) in zip(spans, spans[1:]):
        if s1 == s2 and lo < end:  # one buffer read twice: the work would be what the references declare
            return items, f"output leaves {w1} and {w2} share memory; send each array once"
    for i, (path, leaf) in enumerate(items):  # values, now that reading them all costs what the provider holds
        if type(leaf) in (bool, int, float):
            continue
        where = path or str(i)
        try:
            a = host_array(leaf)
        except (TypeError, RuntimeError, ValueError) as e:  # sparse/quantized/meta tensors, deleted buffers
            from vcompute.verify.base import verifier_fault

            if verifier_fault(e):  # the verifier's machine, not the leaf (which is bounded above)
                raise
            return items, f"output leaf {where} cannot be read: {e}"
        if a.dtype.kind not in _NUMERIC_KINDS:  # unreachable for the dtypes above; kept as the invariant
            return items, f"output leaf {where} has non-numeric dtype {a.dtype}"
        if a.dtype.kind == "f" and not bool(np.all(np.isfinite(a))):
            return items, f"output leaf {where} contains NaN or Inf"
    return items, None


def memory_span(x: Any) -> tuple[tuple[str, int, int] | None, str | None]:
    """The memory an exact array's elements occupy, or why its shape declares more than that memory.

    An array may be a view whose shape declares far more elements than the
    buffer behind it holds: a broadcast or ``expand`` view (stride 0), an
    ``as_strided`` view whose elements overlap or run past the buffer's end.
    Copying, hashing or comparing such a leaf would cost what its shape
    declares (terabytes from a few bytes) rather than what the provider
    sent. The rule: a leaf's ``nbytes`` must fit in the bytes its elements
    span, and that span must lie inside the buffer that owns the memory.
    Nothing is copied, and none of the provider's code runs.

    Args:
        x: an exact numpy or torch array (:func:`exact_array_type`); anything else has no span.

    Returns:
        ``((memory space, first byte, end byte), None)`` (spans of two leaves
        in one space must not overlap), ``(None, None)`` for values without a
        buffer to alias (scalars, JAX arrays: immutable and materialised), or
        ``(None, reason)``.

    Example:
        >>> memory_span(np.broadcast_to(np.zeros(1), (1000, 1000)))[1]
        'declares 1000000 elements (8000000 bytes) over 8 bytes of memory (a broadcast, expanded or overlapping view)'
    """
    backend = exact_array_type(x)
    if backend == "numpy" and type(x) is np.ndarray:
        if x.size == 0:
            return None, None
        lo, hi = _byte_bounds(x)
        problem = _overlap(int(x.size), int(x.nbytes), hi - lo)
        if problem is not None:
            return None, problem
        owner = _numpy_owner(x)
        if owner is None:
            return None, "is a view of memory whose extent cannot be read (send a plain array that owns its data)"
        space, olo, ohi = owner
        if lo < olo or hi > ohi:
            return None, f"declares elements outside the {ohi - olo} bytes of the buffer behind it"
        return (space, lo, hi), None
    if backend == "torch":
        import torch

        if x.layout is not torch.strided or x.is_quantized or x.device.type == "meta" or x.numel() == 0:
            return None, None  # host_array refuses the unreadable ones with its own reason
        size, stride, item = tuple(x.shape), tuple(x.stride()), x.element_size()
        span = item * (1 + sum((d - 1) * abs(st) for d, st in zip(size, stride)))
        problem = _overlap(int(x.numel()), int(x.numel()) * item, span)
        if problem is not None:
            return None, problem
        storage = torch.Tensor.untyped_storage(x)
        lo = storage.data_ptr() + item * torch.Tensor.storage_offset(x)
        if item * torch.Tensor.storage_offset(x) + span > storage.nbytes():
            return None, f"declares elements outside the {storage.nbytes()} bytes of its storage"
        return (str(x.device), lo, lo + span), None
    if backend == "jax":  # materialised and immutable: only the same buffer sent twice can alias
        try:
            lo = int(x.unsafe_buffer_pointer())
            return (f"jax:{x.device}", lo, lo + max(1, int(x.nbytes))), None
        except Exception:  # sharded or deleted arrays have no single pointer: the object identifies the buffer
            return ("jax-object", id(x), id(x) + 1), None
    return None, None


def _overlap(n: int, nbytes: int, span: int) -> str | None:
    if nbytes > span:
        return (f"declares {n} elements ({nbytes} bytes) over {span} bytes of memory "
                "(a broadcast, expanded or overlapping view)")
    return None


def _byte_bounds(a: np.ndarray) -> tuple[int, int]:
    """``[first, end)`` byte addresses of an ndarray's elements (numpy's ``byte_bounds``, computed from its strides)."""
    lo = hi = int(a.__array_interface__["data"][0])
    for d, st in zip(a.shape, a.strides):
        if st < 0:
            lo += (d - 1) * st
        else:
            hi += (d - 1) * st
    return lo, hi + a.itemsize


#: The wrapper ``np.lib.stride_tricks.as_strided`` puts between a view and its base (numpy's own class).
_DUMMY = type(np.lib.stride_tricks.as_strided(np.zeros(1)).base)


def _numpy_owner(a: np.ndarray) -> tuple[str, int, int] | None:
    """``("host", first, end)`` of the buffer that owns ``a``'s memory, or None if it cannot be read.

    The chain of ``base`` objects numpy itself builds is followed (views,
    ``as_strided``'s wrapper); at its root an ndarray owning its data, a
    buffer-protocol object (bytes, bytearray, memoryview, mmap: what
    ``np.frombuffer`` and JAX's host views use) or a torch tensor's storage.
    """
    node: Any = a
    for _ in range(1024):  # numpy collapses view chains; a longer one is not numpy's doing
        base = node.base if type(node) is np.ndarray else getattr(node, "base", None)
        if base is None:
            break
        if type(base) is np.ndarray or type(base) is _DUMMY:
            node = base
            continue
        node = base
        break
    else:
        return None
    if type(node) is np.ndarray:
        if node.base is not None:
            return None
        lo = int(node.__array_interface__["data"][0])
        return "host", lo, lo + int(node.nbytes)
    mod = type(node).__module__
    if mod.startswith("torch") and "torch" in sys.modules and type(node) is sys.modules["torch"].Tensor:
        storage = sys.modules["torch"].Tensor.untyped_storage(node)
        return "host", storage.data_ptr(), storage.data_ptr() + storage.nbytes()
    if type(node) in (bytes, bytearray, memoryview) or mod == "mmap":
        view = memoryview(node)
        if not view.contiguous:
            return None
        if view.nbytes == 0:
            return "host", 0, 0
        lo = int(np.frombuffer(view, np.uint8).__array_interface__["data"][0])
        return "host", lo, lo + view.nbytes
    return None


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


#: Values nobody can change once made: a copy of the reference is a copy of the value.
_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes)


def private_copy(x: Any) -> tuple[Any, str | None]:
    """A copy of a provider's output that no one else holds, or why none can be taken (nothing copied then).

    The copy is what a verdict binds: the :class:`~vcompute.verify.base.Scheme`
    base checks it instead of the provider's object, which the provider may
    still hold and write to (after the verdict, or while it answers a
    challenge inside the check). Exact ``dict`` (exact ``str``/``int`` keys,
    insertion order kept), ``list`` and ``tuple`` are rebuilt; exact numpy
    arrays and torch tensors are copied (tensors detached, on their device);
    JAX arrays, numpy scalars and the immutable builtins are kept, since no
    one can change them; ``bytearray`` is copied. Before anything is copied
    the whole output is screened as :func:`leaves` and :func:`screen_leaves`
    do, so the copy costs at most the memory the provider really holds: no
    broadcast or overlapping views (:func:`~memory_span`), no two leaves over
    one buffer, no container reached twice, no nesting deeper than
    :data:`MAX_DEPTH`. Anything else (a subclass, an object array, an object
    of another type) is refused: its bytes cannot be pinned down without
    running its code. None of the provider's code runs.

    Args:
        x: the claimed output.

    Returns:
        ``(copy, None)`` or ``(None, reason)``.

    Example:
        >>> a = np.zeros(2); c, why = private_copy({"y": a}); a[0] = 1
        >>> c["y"][0], why
        (np.float64(0.0), None)
        >>> private_copy([a, a])[1]
        'output leaves 0 and 1 share memory; send each array once'
    """
    spans: list[tuple[str, int, int, str]] = []
    seen: set[int] = set()

    def screen(node: Any, path: str, depth: int) -> str | None:
        t = type(node)
        where = path or "output"
        if t in (dict, list, tuple):
            if depth >= MAX_DEPTH:
                return f"{where} is nested deeper than {MAX_DEPTH} containers"
            if id(node) in seen and not _small_constant(node):
                return f"output {path} is reached twice (a cycle, or one container referenced again)"
            seen.add(id(node))
            items = (dict.items(node) if t is dict else
                     enumerate(list.__iter__(node) if t is list else tuple.__iter__(node)))
            for k, v in items:
                if t is dict and type(k) not in (str, int):
                    return f"{where} has a dict key of type {type(k).__name__}; keys must be str or int"
                why = screen(v, f"{path}/{_key(k)}" if path else _key(k), depth + 1)
                if why is not None:
                    return why
            return None
        if t in _IMMUTABLE or t is bytearray:
            return None
        backend = exact_array_type(node)
        if backend is None:
            return f"{where} is a {t.__module__}.{t.__name__}, which the verifier cannot copy without running its code"
        if backend == "numpy" and t is np.ndarray and node.dtype.hasobject:
            return f"{where} is an array of Python objects (dtype {node.dtype}), whose values cannot be copied"
        if backend == "torch":
            import torch

            if node.layout is not torch.strided or node.is_quantized or node.device.type == "meta":
                return f"{where} is a {node.layout} / quantized={node.is_quantized} / {node.device.type} tensor, " \
                       "not dense values"
        span, problem = memory_span(node)
        if problem is not None:
            return f"{where} {problem}"
        if span is not None:
            spans.append(span + (where,))
        return None

    why = screen(x, "", 0)
    if why is not None:
        return None, why
    spans.sort()
    for (s1, _, end, w1), (s2, lo, _, w2) in zip(spans, spans[1:]):
        if s1 == s2 and lo < end:
            return None, f"output leaves {w1} and {w2} share memory; send each array once"
    return _copy_tree(x), None


def _copy_tree(node: Any) -> Any:
    """The copy :func:`private_copy` returns, of an output it has screened."""
    t = type(node)
    if t is dict:
        return {k: _copy_tree(v) for k, v in dict.items(node)}
    if t is list:
        return [_copy_tree(v) for v in list.__iter__(node)]
    if t is tuple:
        return tuple(_copy_tree(v) for v in tuple.__iter__(node))
    if t is bytearray:
        return bytearray(node)
    if t is np.ndarray:
        return np.array(node, copy=True, order="K", subok=False)
    if exact_array_type(node) == "torch":
        import torch

        return torch.Tensor.clone(torch.Tensor.detach(node))  # through the class: never an instance attribute
    return node  # immutable: builtins, numpy scalars, JAX arrays
