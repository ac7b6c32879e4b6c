"""How well a lossless transcript compresses (measured, not promised).

Two codecs: plain ``lzma`` over the concatenated checkpoints, and an
XOR-delta codec that XORs each checkpoint's float32 bit patterns with the
previous checkpoint's and shuffles the bytes into four planes (sign and
exponent bytes of neighbouring values then compress together) before
``lzma``. Both are exactly invertible; :func:`xor_delta_decode` proves it.
"""

from __future__ import annotations

import lzma
from collections.abc import Sequence

import numpy as np

from vcompute.workloads.training.pol.transcript import Transcript

__all__ = ["compression_ratios", "xor_delta_encode", "xor_delta_decode"]


def _body(ck: bytes) -> tuple[bytes, bytes]:
    """Split a checkpoint into its (small) header and its float32 body."""
    hlen = int.from_bytes(ck[8:12], "little")
    return ck[:12 + hlen], ck[12 + hlen:]


def xor_delta_encode(checkpoints: Sequence[bytes]) -> bytes:
    """Lossless XOR-delta + byte-shuffle + lzma encoding of equally shaped checkpoints."""
    heads, planes = [], []
    prev = None
    for ck in checkpoints:
        head, body = _body(ck)
        bits = np.frombuffer(body, "<u4")
        delta = bits if prev is None else bits ^ prev
        prev = bits
        heads.append(len(head).to_bytes(4, "little") + head)
        planes.append(delta.view(np.uint8).reshape(-1, 4).T.copy().tobytes())
    n = len(checkpoints).to_bytes(4, "little")
    return lzma.compress(n + b"".join(heads) + b"".join(planes), preset=6)


def xor_delta_decode(blob: bytes) -> list[bytes]:
    """Inverse of :func:`xor_delta_encode`."""
    raw = lzma.decompress(blob)
    n, off = int.from_bytes(raw[:4], "little"), 4
    heads = []
    for _ in range(n):
        ln = int.from_bytes(raw[off:off + 4], "little")
        heads.append(raw[off + 4:off + 4 + ln])
        off += 4 + ln
    body_len = (len(raw) - off) // n
    out, prev = [], None
    for i in range(n):
        planes = np.frombuffer(raw[off + i * body_len: off + (i + 1) * body_len], np.uint8).reshape(4, -1)
        bits = planes.T.copy().view("<u4").ravel()
        bits = bits if prev is None else bits ^ prev
        prev = bits
        out.append(heads[i] + bits.tobytes())
    return out


def compression_ratios(transcript: Transcript) -> dict[str, float]:
    """Raw size over compressed size for ``lzma`` and ``xor_delta`` (lossless; checked).

    Raises:
        AssertionError: if the XOR-delta codec does not round-trip (a bug, never expected).
    """
    cks = transcript.checkpoints
    raw = b"".join(cks)
    xd = xor_delta_encode(cks)
    assert xor_delta_decode(xd) == list(cks), "XOR-delta codec did not round-trip"
    return {"raw_bytes": float(len(raw)), "lzma": len(raw) / len(lzma.compress(raw, preset=6)),
            "xor_delta": len(raw) / len(xd)}
