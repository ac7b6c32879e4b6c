"""``sqlite:///path.db``: the durable ledger.

Every operation is one SQLite transaction (WAL journal, ``synchronous=FULL``)
that appends an entry to a hash-chained event log and updates the state
rows it touched. Each entry holds the request, **signed by the party that
asked for it** (Ed25519 over canonical JSON that names this ledger, so a
signature cannot be replayed on another ledger), the ledger time, and
``hash = SHA256(prev_hash || entry)``. The ledger verifies each signature
before accepting it. :func:`vcompute.ledger.chain.verify_chain` re-checks
the whole file offline.

Why this is crash-safe: the in-memory state is only a cache of the file.
An operation first takes the write lock (``BEGIN IMMEDIATE``), catches up
with entries another process appended, validates, then writes the entry and
the rows in one transaction; a crash before ``COMMIT`` leaves no trace, and
a failed write reloads the cache from the file. A retried operation is found
by ``(actor, op_id)`` (a UNIQUE index) and applied at most once.

Signatures use :mod:`vcompute.core.signing` (OpenSSL through
``cryptography`` when installed): at ~8k verifies/s it leaves room for the
>= 1k signed, verified, chained durable operations/s this backend targets;
pycryptodome's ~600 verifies/s would not. What remains is the disk: with
``synchronous=FULL`` every operation waits for one fsync, so the durable rate
is the machine's commit rate (``benchmarks/ledger.py`` prints that ceiling
beside it; on the loaded shared box: ~260 ledger ops/s against ~290 bare
commits/s). ``?synchronous=normal`` (~2.5k/s there) and :meth:`SQLiteLedger.batch`
(~3.4k/s) are the faster modes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from vcompute.core.hashing import canonical_json
from vcompute.core.signing import verify as verify_signature
from vcompute.ledger.base import ClockFn, Ledger, public_of
from vcompute.ledger.errors import InvalidRequest, InvalidURL, LedgerError, Unauthorized
from vcompute.ledger.queries import StateQueries
from vcompute.ledger.records import Receipt, check_op_id
from vcompute.ledger.state import LedgerState, normalise_args

__all__ = ["SQLiteLedger", "entry_hash", "genesis_hash", "open_sqlite", "request_bytes"]

FORMAT = "vcompute-ledger-sqlite/1"
_SYNC = {"full": "FULL", "normal": "NORMAL"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, actor TEXT NOT NULL, op_id TEXT NOT NULL, kind TEXT NOT NULL,
    args TEXT NOT NULL, time REAL NOT NULL, sig TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL,
    UNIQUE (actor, op_id));
CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


def request_bytes(ledger_id: str, kind: str, actor_hex: str, op_id: str, args: Any) -> bytes:
    """The bytes a party signs to ask ``ledger_id`` for an operation.

    Args:
        ledger_id: the ledger's random id (``meta.ledger_id``).
        kind: the operation.
        actor_hex: the signer's public key, hex.
        op_id: the client-chosen operation id.
        args: the normalised arguments (a list or tuple).

    Returns:
        Canonical JSON.
    """
    return canonical_json({"ledger": ledger_id, "kind": kind, "actor": actor_hex, "op_id": op_id,
                           "args": list(args)})


def genesis_hash(ledger_id: str) -> str:
    """The ``prev`` of the first entry: ``SHA256("vcompute-ledger-genesis:" || ledger_id)`` in hex."""
    return hashlib.sha256(b"vcompute-ledger-genesis:" + ledger_id.encode()).hexdigest()


def entry_hash(prev: str, seq: int, time_: float, request: bytes, sig_hex: str) -> str:
    """``SHA256(prev || canonical_json({seq, time, request, sig}))`` in hex: one link of the chain."""
    body = canonical_json({"seq": seq, "time": time_, "request": request.decode(), "sig": sig_hex})
    return hashlib.sha256(bytes.fromhex(prev) + body).hexdigest()


class SQLiteLedger(StateQueries, Ledger):
    """A durable, signed, hash-chained ledger in one SQLite file.

    Args:
        path: the database file (created if absent).
        minter: public key allowed to mint (stored on creation; must match on reopen).
        clock: ledger time source; default wall time (``time.time``).
        withdraw_delay: seconds between unbonding and withdrawing stake (fixed at creation).
        synchronous: ``"full"`` (default: every commit is fsynced, durable against power loss)
            or ``"normal"`` (WAL fsynced at checkpoints only: durable against a killed process,
            not against power loss; several times faster where fsync is slow).
        url: the URL it was opened with.

    Raises:
        InvalidRequest: if the file belongs to a different minter or is not a vcompute ledger.

    Example:
        >>> import tempfile, os
        >>> from vcompute.core.signing import key_from_name
        >>> m = key_from_name("minter")
        >>> path = os.path.join(tempfile.mkdtemp(), "l.db")
        >>> with SQLiteLedger(path, minter=m.public_bytes) as led:
        ...     _ = led.open_account(m, "treasury", op_id="t")
        ...     _ = led.mint(m, "treasury", 5, op_id="m")
        >>> SQLiteLedger(path, minter=m.public_bytes).balance("treasury")
        5
    """

    def __init__(self, path: str, *, minter: bytes, clock: ClockFn | None = None, withdraw_delay: float = 0.0,
                 synchronous: str = "full", url: str = "") -> None:
        self.path = os.fspath(path)
        self.url = url or f"sqlite:///{self.path}"
        self.clock = clock if clock is not None else time.time
        self._batch = 0
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={_SYNC[synchronous]}")
            self._db.executescript(_SCHEMA)
            self._init_meta(bytes(minter), float(withdraw_delay))
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise InvalidRequest(f"{self.path} is not a usable vcompute SQLite ledger: {e}") from None
        except Exception:
            self._db.close()
            raise
        self._reload()

    def _init_meta(self, minter: bytes, withdraw_delay: float) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            meta = dict(db.execute("SELECT k, v FROM meta"))
            if not meta:
                meta = {"format": FORMAT, "ledger_id": os.urandom(16).hex(), "minter": minter.hex(),
                        "withdraw_delay": repr(withdraw_delay)}
                db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if meta.get("format") != FORMAT:
            raise InvalidRequest(f"{self.path} has format {meta.get('format')!r}, expected {FORMAT!r}")
        if meta["minter"] != minter.hex():
            raise InvalidRequest(f"{self.path} was created with minter {meta['minter'][:16]}..., not "
                                 f"{minter.hex()[:16]}...; open it with the same minter key")
        self.ledger_id = meta["ledger_id"]
        self.minter_public = bytes.fromhex(meta["minter"])
        self.withdraw_delay = float(meta["withdraw_delay"])

    def _reload(self) -> None:
        """Rebuild the in-memory cache from the file (on open, and after a failed write)."""
        self.state = LedgerState(self.minter_public, self.withdraw_delay)
        self._head = genesis_hash(self.ledger_id)
        self._catch_up()

    def _catch_up(self) -> None:
        """Apply entries appended to the file (by us before a reload, or by another process)."""
        st = self.state
        rows = self._db.execute("SELECT seq, actor, op_id, kind, args, time, hash FROM events WHERE seq >= ? "
                                "ORDER BY seq", (st.seq,))
        for seq, actor, op_id, kind, args, t, h in rows:
            st.apply(kind, bytes.fromhex(actor), op_id, tuple(json.loads(args)), t)
            st.touched.clear()
            self._head = h
            assert st.seq == seq + 1, "event log has a gap; run `vcompute ledger verify` on it"

    def now(self) -> float:
        """The clock's current time."""
        return float(self.clock())

    def _submit(self, kind: str, by: Any, op_id: str, args: tuple) -> Receipt:
        pub = public_of(by)
        args = normalise_args(kind, args)
        check_op_id(op_id)
        actor_hex = pub.hex()
        msg = request_bytes(self.ledger_id, kind, actor_hex, op_id, args)
        sig = by.sign(msg)
        if not verify_signature(pub, msg, sig):
            raise Unauthorized("the request's signature does not verify against the signing key's public key; "
                               "pass the SigningKey itself as `by`")
        db = self._db
        if not self._batch:
            db.execute("BEGIN IMMEDIATE")
        try:
            if not self._batch:
                (last,) = db.execute("SELECT COALESCE(MAX(seq), -1) FROM events").fetchone()
                if last + 1 != self.state.seq:
                    self._catch_up()
            st = self.state
            now = float(self.clock())
            receipt = st.apply(kind, pub, op_id, args, now)
            if not receipt.replayed:
                sig_hex = sig.hex()
                h = entry_hash(self._head, receipt.seq, now, msg, sig_hex)
                db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (receipt.seq, actor_hex, op_id, kind, json.dumps(list(args), separators=(",", ":")),
                            now, sig_hex, self._head, h))
                db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)",
                               [(f"{t}/{k}", json.dumps(st.row(t, k), separators=(",", ":")))
                                for t, k in st.touched])
                self._head = h
            st.touched.clear()
            if not self._batch:
                db.execute("COMMIT")
            return receipt
        except LedgerError:
            self.state.touched.clear()
            if not self._batch:
                db.execute("ROLLBACK")
            raise
        except BaseException:
            # The cache may be ahead of the file now: roll back and rebuild it.
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._batch = 0
            self._reload()
            raise

    @contextlib.contextmanager
    def batch(self) -> Iterator[SQLiteLedger]:
        """Apply many operations in one transaction (each still signed, verified and chained).

        A refused operation inside the batch raises and changes nothing, the
        others stay; if an exception leaves the ``with`` block, the whole
        batch is rolled back. Durable at the end of the block.

        Yields:
            this ledger.

        Raises:
            LedgerError: if batches are nested.
        """
        if self._batch:
            raise LedgerError("batches do not nest; finish the current batch first")
        self._db.execute("BEGIN IMMEDIATE")
        (last,) = self._db.execute("SELECT COALESCE(MAX(seq), -1) FROM events").fetchone()
        if last + 1 != self.state.seq:
            self._catch_up()
        self._batch = 1
        try:
            yield self
        except BaseException:
            self._batch = 0
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            self._reload()
            raise
        self._batch = 0
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the file (idempotent)."""
        with contextlib.suppress(Exception):
            self._db.close()


def open_sqlite(url: str, *, minter: bytes, clock: ClockFn | None = None, withdraw_delay: float = 0.0,
                synchronous: str = "full", **unknown: Any) -> SQLiteLedger:
    """Factory for ``sqlite:///path.db`` URLs (three slashes, then the path; ``sqlite:////abs/path.db``).

    Raises:
        InvalidURL: for a URL without a path, with a host, or with unknown options.
    """
    if unknown:
        raise InvalidURL(f"unknown option(s) {sorted(unknown)} for {url!r}; sqlite:// takes withdraw_delay "
                         "and synchronous")
    if synchronous not in _SYNC:
        raise InvalidURL(f"synchronous must be one of {sorted(_SYNC)}, got {synchronous!r}")
    parts = urlsplit(url)
    if parts.netloc:
        raise InvalidURL(f"sqlite URLs have no host: use 'sqlite:///relative.db' or 'sqlite:////abs/path.db', "
                         f"got {url!r}")
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path or path.endswith("/"):
        raise InvalidURL(f"sqlite URL {url!r} names no file; use 'sqlite:///path/to/ledger.db'")
    return SQLiteLedger(path, minter=minter, clock=clock, withdraw_delay=withdraw_delay, synchronous=synchronous,
                        url=url)
