"""A small, fast ABI codec for the argument types our contracts take, and keccak-256.

The ledger client encodes one call per operation; ``eth_abi``'s general
codec and ``eth_utils.keccak`` cost about 0.4 ms and 0.3 ms a call, more than
revm needs to execute it. :func:`encode` handles the head/tail layout of
``uint256``, ``bytes32``, ``address``, ``bool``, ``string`` and ``bytes``
arguments directly and defers every other type to ``eth_abi``; the tests
check it byte for byte against ``eth_abi`` on random values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["encode", "keccak256", "decode_string_uint"]

_STATIC = frozenset({"uint256", "bytes32", "address", "bool"})
_DYNAMIC = frozenset({"string", "bytes"})
_MAX = 1 << 256


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's hash) of ``data``.

    Example:
        >>> keccak256(b"").hex()[:16]
        'c5d2460186f7233c'
    """
    from Crypto.Hash import keccak

    return keccak.new(data=data, digest_bits=256).digest()


def _word(t: str, v: Any) -> bytes:
    if t == "uint256":
        if type(v) is not int or not 0 <= v < _MAX:
            raise ValueError(f"uint256 argument out of range: {v!r}")
        return v.to_bytes(32, "big")
    if t == "bytes32":
        b = bytes(v)
        if len(b) > 32:
            raise ValueError("bytes32 argument longer than 32 bytes")
        return b.ljust(32, b"\x00")
    if t == "bool":
        return (1 if v else 0).to_bytes(32, "big")
    # address
    raw = bytes.fromhex(v[2:]) if isinstance(v, str) else bytes(v)
    if len(raw) != 20:
        raise ValueError(f"address argument must be 20 bytes, got {len(raw)}")
    return raw.rjust(32, b"\x00")


def _tail(t: str, v: Any) -> bytes:
    raw = v.encode("utf-8") if t == "string" else bytes(v)
    pad = (-len(raw)) % 32
    return len(raw).to_bytes(32, "big") + raw + b"\x00" * pad


def encode(types: Sequence[str], args: Sequence[Any]) -> bytes:
    """ABI-encode ``args`` as ``types`` (the arguments of a call, without the selector).

    Raises:
        ValueError: if the counts differ or a value does not fit its type.

    Example:
        >>> encode(["uint256", "string"], [1, "a"]).hex()[:8]
        '00000000'
    """
    if len(types) != len(args):
        raise ValueError(f"{len(types)} types for {len(args)} arguments")
    if not all(t in _STATIC or t in _DYNAMIC for t in types):
        from eth_abi import encode as eth_encode

        return eth_encode(list(types), list(args))
    head, tail = [], []
    offset = 32 * len(types)
    for t, v in zip(types, args):
        if t in _STATIC:
            head.append(_word(t, v))
        else:
            part = _tail(t, v)
            head.append(offset.to_bytes(32, "big"))
            tail.append(part)
            offset += len(part)
    return b"".join(head) + b"".join(tail)


def decode_string_uint(data: bytes) -> tuple[str, int]:
    """Decode ``(string, uint256)`` event data (the ledger's ``Applied(kind, seq)``).

    Raises:
        ValueError: for data that is not such an encoding.
    """
    if len(data) < 96:
        raise ValueError("event data too short for (string, uint256)")
    off = int.from_bytes(data[:32], "big")
    seq = int.from_bytes(data[32:64], "big")
    if off + 32 > len(data):
        raise ValueError("string offset out of range")
    n = int.from_bytes(data[off:off + 32], "big")
    if off + 32 + n > len(data):
        raise ValueError("string length out of range")
    return data[off + 32:off + 32 + n].decode("utf-8"), seq
