"""A thin array-backend layer over ``array-api-compat``.

numpy, torch and JAX arrays are first-class everywhere. Algorithms are
written once against the array API namespace returned by :func:`namespace`;
this module adds the few things the standard leaves out (backend names,
conversion to numpy, creating arrays on a named backend) without importing
torch or JAX unless an array of theirs is already in hand.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "backend_of",
    "namespace",
    "to_numpy",
    "from_numpy",
    "dtype_name",
    "is_array",
    "device_of",
    "synchronize",
    "plain",
]

#: Array backends vcompute supports.
BACKENDS = ("numpy", "torch", "jax")


def backend_of(x: Any) -> str:
    """Name of the backend an array belongs to: ``numpy``, ``torch`` or ``jax``.

    Raises:
        TypeError: if ``x`` is not an array of a supported backend.

    Example:
        >>> backend_of(np.zeros(2))
        'numpy'
    """
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        return "numpy"
    mod = type(x).__module__
    if mod.startswith("torch") and "torch" in sys.modules and isinstance(x, sys.modules["torch"].Tensor):
        return "torch"
    if mod.startswith(("jax", "jaxlib")) and "jax" in sys.modules and isinstance(x, sys.modules["jax"].Array):
        return "jax"
    raise TypeError(f"expected a numpy, torch or JAX array, got {type(x).__module__}.{type(x).__name__}")


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array of a supported backend."""
    try:
        backend_of(x)
    except TypeError:
        return False
    return True


def namespace(*xs: Any):
    """The array-API namespace shared by ``xs`` (via ``array_api_compat``).

    Raises:
        TypeError: if the arrays come from different backends.
    """
    import array_api_compat

    backends = {backend_of(x) for x in xs}
    if len(backends) > 1:
        raise TypeError(f"arrays from different backends: {sorted(backends)}")
    return array_api_compat.array_namespace(*xs)


def plain(x: Any) -> Any:
    """``x`` as plain values: a torch tensor detached from autograd; anything else unchanged.

    Checks only read values, and a tensor that requires grad cannot be viewed
    from numpy; detaching shares the storage (no copy). An exact ``torch.Tensor``
    or ``Parameter`` is always detached, through ``torch.Tensor.detach`` rather
    than the instance: a tensor can carry instance attributes named like its
    methods (``detach``, ``cpu``, ``to``), and the fresh tensor has none, so what
    a check reads is the tensor's own values.

    Example:
        >>> plain(np.ones(2)).shape
        (2,)
    """
    t = type(x)
    if t.__module__.startswith("torch") and "torch" in sys.modules:
        torch = sys.modules["torch"]
        if t is torch.Tensor or t is torch.nn.Parameter:
            # always, and through the class: an exact tensor can carry an instance attribute named
            # ``detach`` (or ``cpu``, ``to``, ...) returning other values than its own; the fresh
            # detached tensor has none
            return torch.Tensor.detach(x)
        if getattr(x, "requires_grad", False) and hasattr(x, "detach"):
            return x.detach()
    return x


def to_numpy(x: Any) -> np.ndarray:
    """Copy (or view) any supported array as a numpy array on the host.

    bfloat16 tensors are widened to float32 (numpy has no bfloat16). Torch
    tensors are detached and brought to the host from any device; conjugate
    and negative-bit views are resolved (numpy cannot view them).
    """
    b = backend_of(x) if not isinstance(x, (list, tuple, int, float)) else "numpy"
    if b == "numpy":
        return np.asarray(x)
    if b == "torch":
        t = plain(x)
        if t is x:  # a tensor subclass (its own code): detach it as it defines
            t = x.detach()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        t = t.cpu()
        if t.is_conj() or t.is_neg():
            t = t.resolve_conj().resolve_neg()
        return t.numpy()
    a = np.asarray(x)
    if a.dtype.name == "bfloat16":
        a = a.astype(np.float32)
    return a


def from_numpy(a: np.ndarray, backend: str, *, like: Any = None):
    """Create an array on ``backend`` from numpy data (on ``like``'s device).

    Args:
        a: host data.
        backend: ``numpy``, ``torch`` or ``jax``.
        like: optional array whose device the result should share.

    Raises:
        ValueError: for an unknown backend name.
    """
    if backend == "numpy":
        return np.asarray(a)
    if backend == "torch":
        import torch

        t = torch.from_numpy(np.ascontiguousarray(a))
        if like is not None and hasattr(like, "device"):
            t = t.to(like.device)
        return t
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        if like is not None:
            return jax.device_put(jnp.asarray(a), device_of(like))
        return jnp.asarray(a)
    raise ValueError(f"unknown array backend {backend!r}; known: {', '.join(BACKENDS)}")


def device_of(x: Any):
    """The device an array lives on (``"cpu"`` for numpy)."""
    b = backend_of(x)
    if b == "numpy":
        return "cpu"
    if b == "torch":
        return x.device
    return next(iter(x.devices()))


_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(x: Any) -> str:
    """Backend-neutral dtype name (``float32``, ``bfloat16``, ``int8``...)."""
    d = x.dtype
    try:
        return _DTYPE_NAMES[d]
    except (KeyError, TypeError):
        pass
    name = str(d).split(".")[-1]
    try:
        if len(_DTYPE_NAMES) < 256:
            _DTYPE_NAMES[d] = name
    except TypeError:  # an unhashable dtype object
        pass
    return name


def synchronize(x: Any) -> None:
    """Wait until ``x`` is computed (CUDA streams, JAX async dispatch); no-op for numpy."""
    b = backend_of(x)
    if b == "torch":
        import torch

        if x.is_cuda:
            torch.cuda.synchronize(x.device)
    elif b == "jax":
        x.block_until_ready()
