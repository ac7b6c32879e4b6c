"""The one canonical validation and encoding of everything a ledger request carries.

Every backend (memory, SQLite, EVM) passes a request through these functions
before its rules look at it, and ``protocols/VLedger.vy`` enforces the same
byte-level rules on chain, so a request one refuses every other refuses too.

The rules never ask a caller's object about itself: a value must *be* an exact
builtin (``type(x) is int``, ``type(x) is str``, ...), never a subclass whose
``__eq__``, ``__lt__``, ``__index__`` or ``__hash__`` could lie, and the value
returned is a fresh builtin the rules can trust.

- **amount**: ``type(x) is int`` in ``1..MAX_AMOUNT`` (``bool`` is refused).
- **name** (account, escrow, commitment id; metadata keys): ``type(x) is str``,
  1-64 characters of ``A-Za-z0-9_.:@-``, the whole string (no trailing newline).
- **op id**: ``type(x) is str``, 1-128 printable ASCII characters (``0x20..0x7e``):
  no control characters, no lone surrogates, nothing a backend could encode differently.
- **time**: ``type(x) in (int, float)``, finite, ``0..2**40``.
- **digest**: exactly 32 ``bytes``, or 64 hex digits.
- **metadata**: a flat ``dict`` whose keys are names and whose values are ``None``,
  ``bool``, ``int`` with ``|v| < 10**18`` or ``str`` without control characters or lone
  surrogates (exact code points, no Unicode normalisation); encoded as canonical
  JSON (sorted keys, no spaces, non-ASCII as lowercase ``\\uXXXX``), at most 4096
  bytes. Flat so that the contract can check the encoding byte for byte; nest
  richer data under a digest.
- **retry equality** (:func:`same_request`): by type and value, so ``True``, ``1``
  and ``1.0`` are different requests.

Example:
    >>> check_name("alice")
    'alice'
    >>> check_name("alice\\n")
    Traceback (most recent call last):
    ...
    vcompute.ledger.errors.InvalidRequest: account name must be 1-64 characters of A-Za-z0-9_.:@-, got 'alice\\n'
    >>> encode_metadata({"step": 3, "job": "j1"})
    '{"job":"j1","step":3}'
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

from vcompute.ledger.errors import InvalidAmount, InvalidRequest

__all__ = [
    "MAX_AMOUNT",
    "MAX_METADATA",
    "check_amount",
    "check_digest",
    "check_metadata",
    "check_name",
    "check_op_id",
    "check_public_key",
    "check_time",
    "decode_metadata",
    "encode_metadata",
    "same_request",
]

#: Largest amount one operation may move (fits every backend's integers).
MAX_AMOUNT = 10**18
#: Largest canonical JSON encoding of a commitment's metadata, in bytes.
MAX_METADATA = 4096
#: Metadata integers stay below this in magnitude (at most 18 digits on chain).
MAX_METADATA_INT = 10**18

_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _odd_char(s: str) -> str | None:
    """A description of the first control character or lone surrogate in ``s``, or None."""
    for i, c in enumerate(s):
        cat = unicodedata.category(c)
        if cat == "Cs":
            return f"a lone surrogate U+{ord(c):04X} at index {i} (not encodable as UTF-8)"
        if cat == "Cc":
            return f"the control character U+{ord(c):04X} at index {i}"
    return None


def check_name(x: object, what: str = "account name") -> str:
    """Validate a name: an account, escrow or commitment id.

    Args:
        x: the candidate; must be an exact ``str``.
        what: the argument's name, for the message.

    Returns:
        ``x`` itself (an exact ``str``).

    Raises:
        InvalidRequest: unless ``x`` is 1-64 characters of ``A-Za-z0-9_.:@-``.
    """
    if type(x) is not str or not _NAME.fullmatch(x):
        kind = "" if type(x) is str else f" (a {type(x).__name__}, not exactly str)"
        raise InvalidRequest(f"{what} must be 1-64 characters of A-Za-z0-9_.:@-, got {x!r:.80}{kind}")
    return x


def check_op_id(x: object) -> str:
    """Validate a client-chosen operation id.

    Args:
        x: the candidate; must be an exact ``str``.

    Returns:
        ``x`` itself.

    Raises:
        InvalidRequest: unless ``x`` is 1-128 printable ASCII characters (``0x20..0x7e``).
    """
    # str.isascii and str.isprintable together are exactly 0x20..0x7e (and fast)
    if type(x) is str and 0 < len(x) <= 128 and x.isascii() and x.isprintable():
        return x
    why = f"a {type(x).__name__}, not exactly str" if type(x) is not str else (
        "empty" if not x else f"{len(x)} characters" if len(x) > 128 else
        _odd_char(x) or f"the non-ASCII character {next(c for c in x if not ' ' <= c <= '~')!r}")
    raise InvalidRequest(f"op_id must be 1-128 printable ASCII characters, got {x!r:.80} ({why}); "
                         "choose one per logical operation and reuse it only to retry")


def check_amount(x: object, what: str = "amount") -> int:
    """Validate an amount.

    Args:
        x: the candidate; must be an exact ``int`` (``bool`` and subclasses are refused).
        what: the argument's name, for the message.

    Returns:
        ``x`` itself.

    Raises:
        InvalidAmount: unless ``x`` is an exact int in ``1..MAX_AMOUNT``.
    """
    if type(x) is not int:
        raise InvalidAmount(f"{what} must be an int (exactly), got {type(x).__name__} {x!r:.80}")
    if not 0 < x <= MAX_AMOUNT:
        raise InvalidAmount(f"{what} must be in 1..{MAX_AMOUNT}, got {x}")
    return x


def check_time(x: object, what: str = "deadline") -> float:
    """Validate a ledger time.

    Args:
        x: the candidate; an exact ``int`` or ``float``.
        what: the argument's name, for the message.

    Returns:
        ``x`` as a builtin float (``-0.0`` becomes ``0.0``).

    Raises:
        InvalidRequest: unless ``x`` is a finite number of seconds in ``0..2**40``.
    """
    if type(x) not in (int, float) or not (math.isfinite(x) and 0 <= x <= 2**40):
        raise InvalidRequest(f"{what} must be a finite int or float of seconds in 0..2**40, "
                             f"got {type(x).__name__} {x!r:.80}")
    return float(x) + 0.0


def check_digest(x: object) -> bytes:
    """Validate a 32-byte digest.

    Args:
        x: exactly 32 ``bytes`` (or ``bytearray``), or a ``str`` of 64 hex digits.

    Returns:
        The 32 bytes (a fresh builtin ``bytes``).

    Raises:
        InvalidRequest: otherwise.
    """
    if type(x) is str:
        if not _HEX64.fullmatch(x):
            raise InvalidRequest("digest must be 32 bytes or 64 hex characters")
        return bytes.fromhex(x)
    if type(x) not in (bytes, bytearray) or len(x) != 32:
        raise InvalidRequest(f"digest must be exactly 32 bytes, got {type(x).__name__} {x!r:.60}")
    return bytes(x)


def check_public_key(x: object, what: str = "public key") -> bytes:
    """Validate an Ed25519 public key: exactly 32 builtin ``bytes``.

    Raises:
        InvalidRequest: otherwise.
    """
    if type(x) is not bytes or len(x) != 32:
        raise InvalidRequest(f"{what} must be exactly 32 bytes (builtin bytes), got {type(x).__name__}")
    return x


def _metadata_value(k: str, v: object) -> Any:
    t = type(v)
    if v is None or t is bool:
        return v
    if t is int:
        if not -MAX_METADATA_INT < v < MAX_METADATA_INT:
            raise InvalidRequest(f"metadata[{k!r}] = {v} is out of range: integers need |v| < 10**18")
        return v
    if t is str:
        odd = _odd_char(v)
        if odd is not None:
            raise InvalidRequest(f"metadata[{k!r}] contains {odd}; strings hold no control characters")
        return v
    raise InvalidRequest(f"metadata[{k!r}] must be None, bool, int or str (exactly), got {t.__name__}; "
                         "metadata is flat: commit nested data under a digest")


def check_metadata(x: object) -> dict[str, Any]:
    """Validate commitment metadata.

    Args:
        x: ``None`` (empty) or a flat ``dict`` of name -> None / bool / int / str.

    Returns:
        A fresh dict of builtins, keys sorted.

    Raises:
        InvalidRequest: for anything else, or an encoding over :data:`MAX_METADATA` bytes.
    """
    if x is None:
        return {}
    if type(x) is not dict:
        raise InvalidRequest(f"metadata must be a dict (exactly), got {type(x).__name__}")
    items = list(dict.items(x))
    out = {}
    for k, v in items:
        check_name(k, "metadata key")
        out[k] = _metadata_value(k, v)
    out = dict(sorted(out.items()))
    raw = json.dumps(out, separators=(",", ":"))
    if len(raw) > MAX_METADATA:
        raise InvalidRequest(f"metadata is {len(raw)} bytes as JSON; the limit is {MAX_METADATA}")
    return out


def encode_metadata(x: object) -> str:
    """The canonical encoding of metadata: ASCII JSON, sorted keys, no spaces.

    Raises:
        InvalidRequest: as :func:`check_metadata`.
    """
    return json.dumps(check_metadata(x), separators=(",", ":"))


def decode_metadata(raw: str) -> dict[str, Any]:
    """Metadata back from its canonical encoding (what a contract stored).

    Raises:
        InvalidRequest: if ``raw`` is not exactly the canonical encoding of valid metadata.
    """
    try:
        out = json.loads(raw)
    except (TypeError, ValueError):
        raise InvalidRequest(f"stored metadata is not JSON: {raw!r:.80}") from None
    if type(out) is not dict or encode_metadata(out) != raw:
        raise InvalidRequest(f"stored metadata is not in canonical form: {raw!r:.80}")
    return out


def same_request(a: Any, b: Any) -> bool:
    """Whether two normalised requests are equal by type and value (``True != 1 != 1.0``).

    Example:
        >>> same_request(("x", {"k": True}), ("x", {"k": 1}))
        False
    """
    if type(a) is not type(b):
        return False
    if type(a) in (tuple, list):
        return len(a) == len(b) and all(same_request(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return list(a) == list(b) and all(same_request(a[k], b[k]) for k in a)
    if type(a) is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b
