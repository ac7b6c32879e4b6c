"""Creating and recognising SQLite ledger files: the schema, atomic creation, header and metadata checks.

A new file is built aside and hard-linked into place, so concurrent creators
never see a half-initialised file; an existing path is only ever opened, and
an empty, foreign or other-format file is refused with the reason.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import tempfile
from typing import Any

from vcompute.ledger.errors import InvalidRequest
from vcompute.ledger.log import FORMAT, META_KEYS, is_hex

__all__ = ["check_header", "create", "read_meta"]

_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, actor TEXT NOT NULL, op_id TEXT NOT NULL, kind TEXT NOT NULL,
    args TEXT NOT NULL, time REAL NOT NULL, sig TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL,
    UNIQUE (actor, op_id));
CREATE TABLE state (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


def read_meta(db: sqlite3.Connection, path: str) -> dict[str, Any]:
    """A ledger file's metadata, checked: exactly :data:`~vcompute.ledger.log.META_KEYS`, well-formed.

    Raises:
        InvalidRequest: naming what is wrong (foreign database, other format, malformed field).
    """
    try:
        raw = dict(db.execute("SELECT k, v FROM meta"))
    except sqlite3.DatabaseError as e:
        raise InvalidRequest(f"{path} is a SQLite database but not a vcompute ledger ({e})") from None
    if raw.get("format") != FORMAT:
        raise InvalidRequest(f"{path} has ledger format {raw.get('format')!r}, expected {FORMAT!r} (a file of "
                             "format /1 does not sign entry positions: verify it with the vcompute that wrote "
                             "it, then start a new ledger)")
    if set(raw) != set(META_KEYS):
        raise InvalidRequest(f"{path}: ledger metadata has keys {sorted(raw)}, expected {sorted(META_KEYS)}")
    if not (is_hex(raw["ledger_id"], 32) and is_hex(raw["minter"], 64)):
        raise InvalidRequest(f"{path}: malformed ledger_id or minter in the metadata")
    try:
        delay = float(raw["withdraw_delay"])
    except ValueError:
        delay = math.nan
    if not (0 <= delay < 2**32) or repr(delay) != raw["withdraw_delay"]:
        raise InvalidRequest(f"{path}: malformed withdraw_delay {raw['withdraw_delay']!r} in the metadata")
    return {"format": FORMAT, "ledger_id": raw["ledger_id"], "minter": raw["minter"], "withdraw_delay": delay}


def check_header(path: str) -> None:
    """Refuse files that are not SQLite databases before SQLite treats them as empty ones."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as e:
        raise InvalidRequest(f"cannot read {path}: {e}") from None
    if head != _SQLITE_MAGIC:
        what = f"{os.path.getsize(path)}-byte file" if len(head) < len(_SQLITE_MAGIC) else "file"
        raise InvalidRequest(f"{path} is a {what} that is not a SQLite database; refusing to open it as a "
                             "ledger (a new ledger is only created where no file exists)")


def create(path: str, minter: bytes, withdraw_delay: float) -> None:
    """Create a ledger file atomically: build it aside, then hard-link it into place.

    Several processes creating the same file at once all end up opening the one
    that was linked first; nobody ever sees a half-initialised file.
    """
    if not 0 <= withdraw_delay < 2**32:
        raise ValueError(f"withdraw_delay must be seconds in 0..2**32, got {withdraw_delay!r}")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".vcompute-ledger-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            meta = {"format": FORMAT, "ledger_id": os.urandom(16).hex(), "minter": minter.hex(),
                    "withdraw_delay": repr(float(withdraw_delay))}
            db.execute("BEGIN")
            db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            db.execute("COMMIT")
        finally:
            db.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: open its file
        except OSError:  # no hard links here: rename, which cannot fail half-way either
            if not os.path.exists(path):
                os.replace(tmp, path)
    finally:
        for p in (tmp, tmp + "-wal", tmp + "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


