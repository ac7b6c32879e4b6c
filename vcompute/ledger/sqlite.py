"""``sqlite:///path.db``: the durable ledger.

Every operation appends an entry to a signed, hash-chained event log
(format in :mod:`vcompute.ledger.log`: the requesting party signs the request
together with its position, ledger time and the previous entry's hash) and
updates the state rows it touched, in a SQLite WAL transaction with
``synchronous=FULL``. :func:`vcompute.ledger.chain.verify_chain` re-checks a
file offline, optionally against a :class:`~vcompute.ledger.log.Checkpoint`
(:meth:`SQLiteLedger.checkpoint`, :meth:`SQLiteLedger.anchor`); what the
owner of the file can and cannot do undetected is in
``protocols/SQLiteLedger.md``.

Why this is crash- and fault-safe: the in-memory state is a cache of the
file, and an operation is acknowledged only once its transaction has
committed. Opening replays the log *verifying* every entry (signature, seq,
link) and refuses a file that fails; a commit that fails (disk full, I/O
error) rolls the cache back to what the file holds. A retried operation is
found by ``(actor, op_id)`` (a UNIQUE index) and applied at most once.

Threads: one ledger object may be shared. Operations from several threads are
**group-committed**: each is validated, signed and chained under a lock, then
one thread commits every pending entry in one transaction (one fsync) while
the others prepare the next group, and each caller returns only after the
transaction holding its entry is durable. A single thread pays one fsync per
operation; ``benchmarks/ledger.py`` prints both rates beside the machine's
bare-commit ceiling. Several processes may share a file: the write lock is
SQLite's (``BEGIN IMMEDIATE``), entries another process appended are
verified and applied before extending the log, and a group that lost the
race to another process is rebuilt on top of it. ``?synchronous=normal``
(fsync at WAL checkpoints only) and :meth:`SQLiteLedger.batch` are the
faster single-thread modes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from vcompute.core.signing import verify as verify_signature
from vcompute.ledger.base import ClockFn, Ledger, public_of
from vcompute.ledger.errors import InvalidRequest, InvalidURL, LedgerError, Unauthorized
from vcompute.ledger.log import Checkpoint, entry_bytes, entry_hash, genesis_hash, is_hex
from vcompute.ledger.queries import StateQueries
from vcompute.ledger.records import Receipt, check_op_id
from vcompute.ledger.sqlite_file import check_header, create, read_meta
from vcompute.ledger.state import LedgerState, normalise_args

__all__ = ["SQLiteLedger", "open_sqlite"]

_SYNC = {"full": "FULL", "normal": "NORMAL"}
_COLUMNS = "seq, actor, op_id, kind, args, time, sig, prev, hash"

_RETRY = "retry"  # outcome of a group rebuilt after another process appended first


class SQLiteLedger(StateQueries, Ledger):
    """A durable, signed, hash-chained ledger in one SQLite file.

    Args:
        path: the database file (created if absent; taken literally, ``#`` and ``?`` included).
        minter: public key allowed to mint (stored on creation; must match on reopen).
        clock: ledger time source; default wall time (``time.time``).
        withdraw_delay: seconds between unbonding and withdrawing stake (fixed at creation).
        synchronous: ``"full"`` (default: every commit is fsynced, durable against power loss)
            or ``"normal"`` (WAL fsynced at checkpoints only: durable against a killed process,
            not against power loss; several times faster where fsync is slow).
        url: the URL it was opened with.

    Raises:
        InvalidRequest: if the file is empty, foreign, of another format, belongs to a
            different minter, or its log does not verify (the reason says which).

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
        if synchronous not in _SYNC:
            raise ValueError(f"synchronous must be one of {sorted(_SYNC)}, got {synchronous!r}")
        self.path = os.fspath(path)
        if type(self.path) is not str or not self.path:
            raise TypeError(f"path must be a non-empty str or os.PathLike of str, got {path!r}")
        self.url = url or f"sqlite:///{self.path}"
        self.clock = clock if clock is not None else time.time
        self._lock = threading.RLock()          # the cache, the head and the pending entries
        self._cv = threading.Condition(self._lock)
        self._commit_lock = threading.Lock()    # the connection: one committer at a time
        self._pending: list[tuple[tuple, list]] = []  # (events row, state rows) not yet committed
        self._group = 0                          # the group now being filled
        self._durable = -1                       # every group <= this has committed
        self._outcome: dict[int, str] = {}       # groups that failed (a message) or must be rebuilt
        self._batch_owner: int | None = None
        self._building = False
        self._closed = False
        minter = bytes(minter)
        if not os.path.exists(self.path):
            create(self.path, minter, float(withdraw_delay))
        check_header(self.path)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
        try:
            if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                raise InvalidRequest(f"{self.path} is not in WAL mode: not a file this ledger created")
            self._db.execute(f"PRAGMA synchronous={_SYNC[synchronous]}")
            meta = read_meta(self._db, self.path)
            tables = {n for (n,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"meta", "events", "state"} <= tables:
                raise InvalidRequest(f"{self.path} lacks the ledger's tables (has {sorted(tables)})")
            if meta["minter"] != minter.hex():
                raise InvalidRequest(f"{self.path} was created with minter {meta['minter'][:16]}..., not "
                                     f"{minter.hex()[:16]}...; open it with the same minter key")
            self.ledger_id = meta["ledger_id"]
            self.minter_public = minter
            self.withdraw_delay = meta["withdraw_delay"]
            self.genesis = genesis_hash(meta)
            self._trusted = (0, self.genesis)
            self._reload()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise InvalidRequest(f"{self.path} is not a usable vcompute SQLite ledger: {e}") from None
        except BaseException:
            self._db.close()
            raise

    # -- replaying the file ------------------------------------------------

    def _reload(self) -> None:
        """Rebuild the cache from the file (on open, and to undo what a failed commit did not write)."""
        self._pending.clear()
        st = LedgerState(self.minter_public, self.withdraw_delay)
        head = self._catch_up(st, self.genesis)
        self.state, self._head = st, head  # readers in other threads never see a half-replayed state

    def _catch_up(self, st: LedgerState | None = None, head: str | None = None) -> str:
        """Verify and apply the entries the file holds beyond ``st`` (default the cache: another process's
        entries; a fresh state on reload). Entries this object verified before are re-linked by hash, not
        re-verified.

        Returns:
            The new head.

        Raises:
            InvalidRequest: if an entry does not verify or the file lost entries it had.
        """
        live = st is None
        if live:
            st, head = self.state, self._head
        trusted_n, trusted_head = self._trusted
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM events WHERE seq >= ? ORDER BY seq", (st.seq,))
        for row in rows:
            seq, actor, op_id, kind, args_json, t, sig, prev, h = row
            where = f"{self.path}: entry {seq!r}"
            if seq != st.seq or prev != head:
                raise InvalidRequest(f"{where} is out of place (expected seq {st.seq} linking to the previous "
                                     "entry); run `vcompute ledger verify` on the file")
            try:
                args = tuple(json.loads(args_json))
                if normalise_args(kind, args) != args or type(t) is not float:
                    raise ValueError("arguments or time not in canonical form")
                msg = entry_bytes(self.ledger_id, seq, t, prev, kind, actor, op_id, args)
                ok = is_hex(actor, 64) and is_hex(sig, 128) and entry_hash(msg, sig) == h
                if ok and seq >= trusted_n:
                    ok = verify_signature(bytes.fromhex(actor), msg, bytes.fromhex(sig))
            except (LedgerError, ValueError, TypeError) as e:
                raise InvalidRequest(f"{where} is malformed ({e}); run `vcompute ledger verify`") from None
            if not ok:
                raise InvalidRequest(f"{where} ({kind} {op_id!r}) does not verify (signature or hash); "
                                     "the file was altered: run `vcompute ledger verify` on it")
            try:
                st.apply(kind, bytes.fromhex(actor), op_id, args, t)
            except LedgerError as e:
                raise InvalidRequest(f"{where}: the ledger rules refuse it on replay ({e})") from None
            finally:
                st.touched.clear()
            head = h
            if live:
                self._head = h  # the cache stays consistent up to any entry that fails below
            if seq == trusted_n - 1 and h != trusted_head:
                raise InvalidRequest(f"{self.path}: the log was rewritten under this ledger (entry {seq})")
        if st.seq < trusted_n:
            raise InvalidRequest(f"{self.path} holds {st.seq} entries but this ledger saw {trusted_n}: "
                                 "the log was truncated under it")
        self._trusted = (st.seq, head)
        return head

    def _refresh_if_idle(self) -> None:
        """With nothing pending, apply what other processes appended (if no commit is in flight)."""
        if self._pending or not self._commit_lock.acquire(blocking=False):
            return
        try:
            self._refresh()
        finally:
            self._commit_lock.release()

    def _refresh(self) -> None:
        """Apply what other processes appended (both locks held, nothing pending)."""
        (last,) = self._db.execute("SELECT COALESCE(MAX(seq), -1) FROM events").fetchone()
        if last + 1 != self.state.seq:
            self._catch_up()

    def _enter(self, what: str) -> None:
        """Refuse calls from inside a key's ``sign()`` and on a closed ledger (lock held)."""
        if self._building:
            raise LedgerError(f"{what} called from inside a key's sign(); refused")
        if self._closed:
            raise LedgerError(f"{self.url} is closed")

    # -- operations ----------------------------------------------------------

    def now(self) -> float:
        """The clock's current time."""
        return float(self.clock())

    def _submit(self, kind: str, by: Any, op_id: str, args: tuple) -> Receipt:
        pub = bytes(public_of(by))
        args = normalise_args(kind, args)
        # The canonical rule of every backend: an exact str of printable ASCII (a subclass is refused,
        # not converted, so all backends answer the same request the same way).
        check_op_id(op_id)
        me = threading.get_ident()
        while True:
            with self._cv:
                self._enter("a ledger operation")
                while self._batch_owner not in (None, me):
                    self._cv.wait()
                self._enter("a ledger operation")
                if self._batch_owner is None:
                    self._refresh_if_idle()
                receipt = self._build(kind, by, pub, op_id, args)
                if self._batch_owner == me:
                    return receipt  # durable when the batch commits
                group = self._group
            outcome = self._flush(group)
            if outcome is None:
                return receipt
            if outcome is not _RETRY:
                raise LedgerError(outcome)
            # another process appended first: rebuild on top of its entries

    def _build(self, kind: str, by: Any, pub: bytes, op_id: str, args: tuple) -> Receipt:
        """Validate, sign, chain and apply one request to the cache; queue its rows (lock held)."""
        st = self.state
        now = self.now()
        if not (math.isfinite(now) and 0 <= now <= 2**40):
            raise LedgerError(f"the ledger clock returned {now!r}; it must give finite seconds in 0..2**40")
        seq, prev, actor_hex = st.seq, self._head, pub.hex()
        msg = entry_bytes(self.ledger_id, seq, now, prev, kind, actor_hex, op_id, args)
        self._building = True
        try:
            sig = by.sign(msg)
        finally:
            self._building = False
        if not isinstance(sig, (bytes, bytearray)) or not verify_signature(pub, msg, bytes(sig)):
            raise Unauthorized("the request's signature does not verify against the signing key's public key; "
                               "pass the SigningKey itself as `by`")
        # A retry's receipt only after the key has signed: an impostor naming another key's public
        # bytes must not learn (or be told it owns) that key's earlier operation.
        done = st.lookup(pub, op_id, kind, args)
        if done is not None:
            return done
        sig_hex = bytes(sig).hex()
        try:
            receipt = st.apply(kind, pub, op_id, args, now)
            h = entry_hash(msg, sig_hex)
            rows = [(f"{t}/{k}", json.dumps(st.row(t, k), separators=(",", ":"))) for t, k in st.touched]
        finally:
            st.touched.clear()
        args_json = json.dumps(list(args), separators=(",", ":"), sort_keys=True)
        self._pending.append(((seq, actor_hex, op_id, kind, args_json, now, sig_hex, prev, h), rows))
        self._head = h
        return Receipt(receipt.op_id, receipt.kind, receipt.seq, ref=h)

    def _flush(self, group: int) -> Any:
        """Make ``group`` durable: None when it committed, else ``_RETRY`` or the failure's message."""
        with self._commit_lock:
            return self._commit_pending(group)

    def _commit_pending(self, group: int, in_txn: bool = False) -> Any:
        """Commit every pending entry in one transaction (commit lock held); the outcome of ``group``."""
        with self._lock:
            if group in self._outcome:
                return self._outcome[group]
            if self._durable >= group:
                return None
            batch, self._pending = self._pending, []
            g = self._group
            self._group += 1
        try:
            if batch or in_txn:
                self._write(batch, in_txn)
        except _Conflict:
            self._fail(g, _RETRY)
        except BaseException as e:
            self._fail(g, f"{self.path}: the commit failed ({type(e).__name__}: {e}); nothing in it was "
                          "applied and the ledger is as the file holds it; retrying with the same op_id is safe")
            if not isinstance(e, Exception):
                raise  # KeyboardInterrupt and friends still interrupt this thread
        else:
            with self._lock:
                self._durable = g
                if batch and self._trusted[0] == batch[0][0][0]:
                    self._trusted = (batch[-1][0][0] + 1, batch[-1][0][8])
        return self._commit_pending(group) if group > g else self._outcome.get(group)

    def _write(self, batch: list, in_txn: bool) -> None:
        db = self._db
        if not in_txn:
            db.execute("BEGIN IMMEDIATE")
        try:
            (last,) = db.execute("SELECT COALESCE(MAX(seq), -1) FROM events").fetchone()
            if batch and last + 1 != batch[0][0][0]:
                raise _Conflict
            db.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [e for e, _ in batch])
            rows: dict[str, str] = {}
            for _, r in batch:
                rows.update(r)
            db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", rows.items())
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def _fail(self, g: int, outcome: str) -> None:
        """Group ``g`` did not commit: undo it and everything built on it in the cache (commit lock held).

        ``outcome`` is ``_RETRY`` or the message its callers raise as :class:`LedgerError`.
        """
        with self._lock:
            self._outcome[g] = outcome
            for later in range(g + 1, self._group + 1):
                self._outcome[later] = _RETRY
            self._group += 1
            try:
                self._reload()
            except BaseException:
                self._closed = True  # the cache cannot be trusted any more: refuse further use
                raise

    @contextlib.contextmanager
    def batch(self) -> Iterator[SQLiteLedger]:
        """Apply many operations in one transaction (each still signed, verified and chained).

        The batch holds the file's write lock; other threads' operations wait for
        it. A refused operation inside the batch raises and changes nothing, the
        others stay; if an exception leaves the ``with`` block, or the commit at
        its end fails (disk full), the whole batch is rolled back, in the file
        and in memory. Durable at the end of the block.

        Yields:
            this ledger.

        Raises:
            LedgerError: if batches are nested, or the commit at the end failed.
        """
        me = threading.get_ident()
        with self._cv:
            self._enter("batch()")
            if self._batch_owner == me:
                raise LedgerError("batches do not nest; finish the current batch first")
            while self._batch_owner is not None:
                self._cv.wait()
            self._enter("batch()")
            self._batch_owner = me
        try:
            with self._commit_lock:
                self._commit_pending(self._group)  # other threads' entries go first, on their own
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as e:
                    raise LedgerError(f"{self.path}: cannot take the write lock for a batch ({e}); another "
                                      "process holds it: retry") from None
                try:
                    with self._lock:
                        self._catch_up()
                        group = self._group
                    yield self
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                    with self._lock:
                        self._reload()
                    raise
                outcome = self._commit_pending(group, in_txn=True)
            if outcome is not None:
                raise LedgerError(outcome)
        finally:
            with self._cv:
                self._batch_owner = None
                self._cv.notify_all()

    # -- anchors -------------------------------------------------------------

    def checkpoint(self, by: Any = None) -> Checkpoint:
        """The current head as a :class:`~vcompute.ledger.log.Checkpoint`, signed by ``by`` if given.

        A party that keeps it can later detect a file cut back before it
        (``verify_chain(path, anchor=cp)``). Only committed entries count.

        Args:
            by: a SigningKey to vouch for it, or None for an unsigned record.
        """
        with self._lock:
            self._enter("checkpoint()")
            if self._batch_owner == threading.get_ident():
                raise LedgerError("checkpoint() inside a batch: take it after the batch has committed")
        with self._commit_lock, self._lock:
            if not self._pending:
                self._refresh()
            cp = Checkpoint(self.ledger_id, self.genesis, *self._trusted)
        return cp if by is None else cp.signed_by(by)

    def anchor(self, target: Ledger, by: Any, commitment_id: str, *, op_id: str) -> Receipt:
        """Post the current head as a commitment on another ledger (e.g. ``evm://``), signed there by ``by``.

        ``Checkpoint.from_commitment(target.commitment(commitment_id))`` reads it back.

        Args:
            target: the ledger to post on.
            by: the key of an account on ``target``.
            commitment_id: a fresh commitment id there.
            op_id: the operation id there.

        Returns:
            ``target``'s receipt.
        """
        cp = self.checkpoint()
        return target.commit(by, commitment_id, bytes.fromhex(cp.head), op_id=op_id,
                             metadata={"type": "vcompute-ledger-anchor", "ledger_id": cp.ledger_id,
                                       "genesis": cp.genesis, "entries": cp.entries})

    # -- queries that iterate (consistent while other threads write) ------------

    def accounts(self) -> list[str]:
        """Names of all accounts, sorted."""
        with self._lock:
            return sorted(self.state.pub_of)

    def holdings(self) -> int:
        """Balances + open escrows + stakes."""
        with self._lock:
            return self.state.holdings()

    def close(self) -> None:
        """Close the file (idempotent); operations afterwards raise ``LedgerError``."""
        with self._cv:
            self._closed = True
        with self._commit_lock, contextlib.suppress(Exception):
            self._db.close()


class _Conflict(Exception):
    """Another process appended between building a group and committing it."""


def open_sqlite(url: str, *, minter: bytes, clock: ClockFn | None = None, withdraw_delay: float = 0.0,
                synchronous: str = "full", **unknown: Any) -> SQLiteLedger:
    """Factory for ``sqlite:///path.db`` URLs (three slashes, then the path; ``sqlite:////abs/path.db``).

    The path is percent-decoded and otherwise literal: write a ``#`` as ``%23``
    and a ``?`` as ``%3F`` (an unescaped ``?`` starts the options).

    Raises:
        InvalidURL: for a URL without a path, with a host or a fragment, or with unknown options.
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
    if "#" in url:
        raise InvalidURL(f"sqlite URL {url!r} has a '#': write a '#' in the path as %23 (a fragment would "
                         "silently name another file)")
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path or path.endswith("/"):
        raise InvalidURL(f"sqlite URL {url!r} names no file; use 'sqlite:///path/to/ledger.db'")
    return SQLiteLedger(path, minter=minter, clock=clock, withdraw_delay=withdraw_delay, synchronous=synchronous,
                        url=url)
