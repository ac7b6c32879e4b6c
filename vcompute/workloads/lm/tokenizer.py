"""A byte-level tokenizer: token ``b`` is byte ``b``; nothing is downloaded.

Ids 0-255 are the bytes of the UTF-8 text, 256 is BOS and 257 is EOS; a
model's vocabulary may be larger (unused ids are still valid tokens).

Example:
    >>> ids = encode("hi")
    >>> ids.tolist(), decode(ids)
    ([256, 104, 105], 'hi')
"""

from __future__ import annotations

import numpy as np

__all__ = ["BOS", "EOS", "encode", "decode"]

#: Beginning-of-sequence id (after the 256 byte ids).
BOS = 256
#: End-of-sequence id.
EOS = 257


def encode(text: str, *, bos: bool = True) -> np.ndarray:
    """Token ids (int64) of ``text``, led by BOS unless ``bos`` is false.

    Raises:
        TypeError: if ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"encode takes a str, got {type(text).__name__}")
    ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    return np.concatenate([[BOS], ids]).astype(np.int64) if bos else ids


def decode(ids) -> str:
    """The text of ``ids``: bytes decoded as UTF-8 (invalid bytes replaced), other ids dropped."""
    a = np.asarray(ids).reshape(-1)
    return bytes(int(i) for i in a if 0 <= int(i) < 256).decode("utf-8", errors="replace")
