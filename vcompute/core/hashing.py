"""Canonical JSON and content hashes for arrays of any backend.

A content hash binds dtype, shape and the little-endian bytes of an array,
so the same values hash the same whether they live in numpy, torch or JAX.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["canonical_json", "content_hash", "digest_hex", "sha256"]


def sha256(data: bytes) -> bytes:
    """SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


def digest_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    if isinstance(o, Mapping):
        return dict(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable; use plain numbers, strings, lists and dicts")


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, UTF-8.

    Example:
        >>> canonical_json({"b": 1, "a": [1, 2]})
        b'{"a":[1,2],"b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default,
                      allow_nan=False).encode()


def _to_numpy(x: Any) -> np.ndarray:
    from vcompute.core.arrays import to_numpy

    return to_numpy(x)


def content_hash(x: Any) -> str:
    """Hex SHA-256 over an array's dtype, shape and bytes (or of bytes / JSON).

    Arrays from numpy, torch and JAX with equal values, dtype and shape hash
    equal. Bytes hash as themselves; other objects as canonical JSON;
    sequences and mappings of arrays hash element-wise.

    Example:
        >>> import numpy as np
        >>> content_hash(np.zeros(2, np.float32)) == content_hash(np.zeros(2, np.float32))
        True
    """
    if isinstance(x, (bytes, bytearray, memoryview)):
        return digest_hex(b"bytes:" + bytes(x))
    if isinstance(x, Mapping):
        return digest_hex(canonical_json({str(k): content_hash(v) for k, v in x.items()}))
    if isinstance(x, (str, int, float, bool)) or x is None:
        return digest_hex(b"json:" + canonical_json(x))
    if isinstance(x, Sequence) and not hasattr(x, "shape"):
        return digest_hex(canonical_json([content_hash(v) for v in x]))
    a = np.ascontiguousarray(_to_numpy(x))
    # The header names the array's own dtype: torch and JAX bfloat16 reach numpy widened to float32
    # (exactly), and a bfloat16 answer must not hash like the float32 one with the same values. Their
    # bytes are hashed widened, numpy's ml_dtypes bfloat16 too, so every backend's bfloat16 agrees.
    src = str(getattr(x, "dtype", a.dtype)).split(".")[-1]
    if src == "bfloat16" or a.dtype.name == "bfloat16":
        src, a = "bfloat16", a.astype(np.float32)
    dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    a = a.astype(dt, copy=False)
    header = canonical_json({"dtype": src if src == "bfloat16" else str(a.dtype), "shape": list(a.shape)})
    h = hashlib.sha256(b"array:" + header + b"\0")
    h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()
