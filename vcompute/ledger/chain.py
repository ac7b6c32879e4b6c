"""Offline verification of a SQLite ledger file: signatures, hash chain, replayed state, conservation.

Example:
    >>> import tempfile, os
    >>> import vcompute.ledger as vl
    >>> path = os.path.join(tempfile.mkdtemp(), "l.db")
    >>> m = vl.default_minter()
    >>> with vl.open(f"sqlite:///{path}") as led:
    ...     _ = led.open_account(m, "treasury", op_id="t")
    ...     _ = led.mint(m, "treasury", 7, op_id="m")
    >>> report = verify_chain(path)
    >>> report.ok, report.entries, report.supply
    (True, 2, 7)
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field

from vcompute.core.signing import verify as verify_signature
from vcompute.ledger.errors import LedgerError
from vcompute.ledger.sqlite import FORMAT, entry_hash, genesis_hash, request_bytes
from vcompute.ledger.state import LedgerState, normalise_args

__all__ = ["ChainReport", "verify_chain"]

_MAX_PROBLEMS = 50


@dataclass
class ChainReport:
    """What :func:`verify_chain` found.

    Attributes:
        path: the file checked.
        ok: True when no problem was found.
        entries: events checked.
        supply: total supply implied by replaying the log.
        holdings: balances + escrows + stakes implied by the log.
        accounts: accounts implied by the log.
        head: hash of the last entry.
        problems: what is wrong, one line each (at most 50).
    """

    path: str
    ok: bool = True
    entries: int = 0
    supply: int = 0
    holdings: int = 0
    accounts: int = 0
    head: str = ""
    problems: list[str] = field(default_factory=list)

    def problem(self, msg: str) -> None:
        """Record a problem (the report is then not ok)."""
        self.ok = False
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(msg)

    def summary(self) -> str:
        """A human-readable report."""
        status = "OK" if self.ok else "BROKEN"
        lines = [f"ledger {self.path}: {status}",
                 f"  entries {self.entries}, accounts {self.accounts}, supply {self.supply}, "
                 f"holdings {self.holdings}", f"  head {self.head}"]
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


def verify_chain(path: str) -> ChainReport:
    """Check every entry's signature and hash link, replay the log through the ledger rules,
    and compare the implied state (balances, escrows, stakes, commitments) with the stored one.

    Args:
        path: a SQLite ledger file.

    Returns:
        A :class:`ChainReport`; ``report.ok`` is False with reasons on any problem. Never raises
        for a damaged file.
    """
    rep = ChainReport(path=os.fspath(path))
    if not os.path.exists(rep.path):
        rep.problem("file does not exist")
        return rep
    try:
        db = sqlite3.connect(f"file:{rep.path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        rep.problem(f"cannot open: {e}")
        return rep
    try:
        _verify(db, rep)
    except sqlite3.Error as e:
        rep.problem(f"unreadable database: {e}")
    finally:
        db.close()
    return rep


def _verify(db: sqlite3.Connection, rep: ChainReport) -> None:
    meta = dict(db.execute("SELECT k, v FROM meta"))
    if meta.get("format") != FORMAT:
        rep.problem(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        return
    ledger_id = meta["ledger_id"]
    st = LedgerState(bytes.fromhex(meta["minter"]), float(meta["withdraw_delay"]))
    prev = genesis_hash(ledger_id)
    expected_seq = 0
    for seq, actor, op_id, kind, args_json, t, sig, stored_prev, stored_hash in db.execute(
            "SELECT seq, actor, op_id, kind, args, time, sig, prev, hash FROM events ORDER BY seq"):
        rep.entries += 1
        where = f"entry {seq} ({kind} {op_id!r})"
        if seq != expected_seq:
            rep.problem(f"{where}: expected seq {expected_seq}; entries are missing")
            expected_seq = seq
        expected_seq += 1
        try:
            args = tuple(json.loads(args_json))
            if normalise_args(kind, args) != args:
                rep.problem(f"{where}: arguments are not in canonical form")
            msg = request_bytes(ledger_id, kind, actor, op_id, args)
        except (LedgerError, ValueError, TypeError) as e:
            rep.problem(f"{where}: malformed request: {e}")
            continue
        if not verify_signature(bytes.fromhex(actor) if _is_hex(actor, 64) else b"", msg,
                                bytes.fromhex(sig) if _is_hex(sig, 128) else b""):
            rep.problem(f"{where}: signature does not verify for actor {actor[:16]}...")
        if stored_prev != prev:
            rep.problem(f"{where}: prev hash does not link to the previous entry")
        h = entry_hash(prev, seq, t, msg, sig)
        if h != stored_hash:
            rep.problem(f"{where}: hash mismatch (entry altered)")
        prev = stored_hash
        try:
            st.apply(kind, bytes.fromhex(actor), op_id, args, t)
        except (LedgerError, ValueError) as e:
            rep.problem(f"{where}: the ledger rules refuse this entry on replay: {e}")
        st.touched.clear()
    rep.head = prev
    implied = {k: json.loads(json.dumps(v)) for k, v in st.rows().items()}
    stored = {k: json.loads(v) for k, v in db.execute("SELECT k, v FROM state")}
    for k in sorted(set(implied) | set(stored)):
        if k == "meta/supply" and k not in stored and implied[k] == 0:
            continue
        if implied.get(k) != stored.get(k):
            rep.problem(f"state row {k}: stored {stored.get(k)!r} but the log implies {implied.get(k)!r}")
    rep.supply, rep.holdings, rep.accounts = st.supply, st.holdings(), len(st.pub_of)
    if rep.supply != rep.holdings:
        rep.problem(f"money not conserved: supply {rep.supply} != holdings {rep.holdings}")
    if any(v < 0 for v in st.bal.values()) or any(min(s[:3]) < 0 for s in st.stk.values()):
        rep.problem("a balance or stake is negative")


def _is_hex(s: object, n: int) -> bool:
    if not isinstance(s, str) or len(s) != n:
        return False
    try:
        bytes.fromhex(s)
    except ValueError:
        return False
    return True
