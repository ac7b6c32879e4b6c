"""Offline verification of a SQLite ledger file: metadata, signatures, positions, links, state, anchors.

Example:
    >>> import tempfile, os
    >>> import vcompute.ledger as vl
    >>> path = os.path.join(tempfile.mkdtemp(), "l.db")
    >>> m = vl.default_minter()
    >>> with vl.open(f"sqlite:///{path}") as led:
    ...     _ = led.open_account(m, "treasury", op_id="t")
    ...     _ = led.mint(m, "treasury", 7, op_id="m")
    ...     cp = led.checkpoint()
    >>> report = verify_chain(path, anchor=cp)
    >>> report.ok, report.entries, report.supply
    (True, 2, 7)
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from vcompute.core.signing import verify as verify_signature
from vcompute.ledger.errors import LedgerError
from vcompute.ledger.log import Checkpoint, entry_bytes, entry_hash, genesis_hash, is_hex
from vcompute.ledger.sqlite_file import read_meta
from vcompute.ledger.state import LedgerState, normalise_args

__all__ = ["ChainReport", "ledger_file", "verify_chain"]

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
        head: hash of the last entry (the genesis hash for an empty log).
        anchored: entries covered by the anchor that was checked (0 without one).
        ledger_id: the ledger's id from its metadata.
        genesis: the genesis hash its metadata implies.
        problems: what is wrong, one line each (at most 50).
    """

    path: str
    ok: bool = True
    entries: int = 0
    supply: int = 0
    holdings: int = 0
    accounts: int = 0
    head: str = ""
    anchored: int = 0
    ledger_id: str = ""
    genesis: str = ""
    problems: list[str] = field(default_factory=list)

    def problem(self, msg: str) -> None:
        """Record a problem (the report is then not ok)."""
        self.ok = False
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(msg)

    def checkpoint(self) -> Checkpoint:
        """The verified head as an unsigned :class:`~vcompute.ledger.log.Checkpoint` (to keep as an anchor).

        Raises:
            ValueError: if the report is not ok (a broken file has no head worth anchoring).
        """
        if not self.ok:
            raise ValueError(f"{self.path} did not verify; fix or discard it before anchoring its head")
        return Checkpoint(self.ledger_id, self.genesis, self.entries, self.head)

    def summary(self) -> str:
        """A human-readable report."""
        status = "OK" if self.ok else "BROKEN"
        lines = [f"ledger {self.path}: {status}",
                 f"  entries {self.entries}, accounts {self.accounts}, supply {self.supply}, "
                 f"holdings {self.holdings}", f"  head {self.head}"]
        if self.anchored:
            lines.append(f"  anchored: the first {self.anchored} entries match the anchor")
        else:
            lines.append("  no anchor checked: a cut-back tail would not show")
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


def ledger_file(path_or_url: str) -> str:
    """The file a ``sqlite:///`` URL names (decoded as :func:`vcompute.ledger.open` decodes it), or a plain
    path unchanged, so :func:`verify_chain` and ``vcompute ledger verify`` take both alike.

    Raises:
        ValueError: for a sqlite URL with an unescaped ``#`` (write it as ``%23``).

    Example:
        >>> ledger_file("sqlite:///runs/a%23b.db"), ledger_file("runs/a#b.db")
        ('runs/a#b.db', 'runs/a#b.db')
    """
    arg = os.fspath(path_or_url)
    if not isinstance(arg, str) or not arg.startswith("sqlite:"):
        return arg
    from urllib.parse import unquote, urlsplit

    if "#" in arg:
        raise ValueError(f"{arg!r}: write a '#' in a sqlite URL as %23 (or pass the plain path)")
    p = urlsplit(arg).path
    return unquote(p[1:] if p.startswith("/") else p)


def verify_chain(path: str, anchor: Checkpoint | None = None, *, minter: bytes | None = None) -> ChainReport:
    """Check the metadata, every entry's signature over its position and predecessor, the hash links,
    replay the log through the ledger rules, compare the implied state with the stored one, and
    (given an anchor) check the file still holds the anchored prefix.

    Args:
        path: a SQLite ledger file (a plain path, taken literally) or its ``sqlite:///`` URL.
        anchor: a :class:`~vcompute.ledger.log.Checkpoint` a party kept; without one a
            truncated tail cannot be told from a short history.
        minter: the minter public key the file must have (32 bytes), if known.

    Returns:
        A :class:`ChainReport`; ``report.ok`` is False with reasons on any problem. Never raises
        for a damaged file or anchor.
    """
    rep = ChainReport(path=ledger_file(path))
    if not os.path.isfile(rep.path):
        rep.problem("file does not exist" if not os.path.exists(rep.path) else "not a regular file")
        return rep
    try:
        with open(rep.path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                rep.problem(f"not a SQLite database ({os.path.getsize(rep.path)} bytes)")
                return rep
        db = sqlite3.connect(f"file:{quote(os.path.abspath(rep.path))}?mode=ro", uri=True)
    except (OSError, sqlite3.Error) as e:
        rep.problem(f"cannot open: {e}")
        return rep
    try:
        _verify(db, rep, anchor, minter)
    except sqlite3.Error as e:
        rep.problem(f"unreadable database: {e}")
    except Exception as e:  # a damaged file must give a report, whatever it breaks
        rep.problem(f"damaged file ({type(e).__name__}: {e})")
    finally:
        db.close()
    return rep


def _verify(db: sqlite3.Connection, rep: ChainReport, anchor: Any, minter: Any) -> None:
    try:
        meta = read_meta(db, rep.path)
    except LedgerError as e:
        rep.problem(str(e))
        return
    ledger_id, genesis = meta["ledger_id"], genesis_hash(meta)
    rep.ledger_id, rep.genesis = ledger_id, genesis
    if minter is not None and meta["minter"] != bytes(minter).hex():
        rep.problem(f"minter is {meta['minter'][:16]}..., expected {bytes(minter).hex()[:16]}...")
    anchor = _check_anchor(rep, anchor, ledger_id, genesis)
    st = LedgerState(bytes.fromhex(meta["minter"]), meta["withdraw_delay"])
    prev, expected_seq = genesis, 0
    for row in db.execute("SELECT seq, actor, op_id, kind, args, time, sig, prev, hash FROM events ORDER BY seq"):
        rep.entries += 1
        seq, actor, op_id, kind, args_json, t, sig, stored_prev, stored_hash = row
        where = f"entry {seq!r} ({kind!s:.20} {op_id!r:.40})"
        if seq != expected_seq:
            rep.problem(f"{where}: expected seq {expected_seq}; entries are missing or out of order")
            if type(seq) is int:
                expected_seq = seq  # report each gap once, then check the rest in place
        try:
            args = tuple(json.loads(args_json))
            if normalise_args(kind, args) != args:
                rep.problem(f"{where}: arguments are not in canonical form")
            if type(t) is not float or type(op_id) is not str:
                raise ValueError("time must be a REAL and op_id TEXT")
            # Built from the expected position and predecessor, not the stored ones: a moved,
            # dropped-around or re-linked entry fails its signature.
            msg = entry_bytes(ledger_id, expected_seq, t, prev, kind, actor, op_id, args)
        except (LedgerError, ValueError, TypeError) as e:
            rep.problem(f"{where}: malformed entry: {e}")
            prev, expected_seq = stored_hash if is_hex(stored_hash, 64) else prev, expected_seq + 1
            continue
        well_formed = is_hex(actor, 64) and is_hex(sig, 128)
        if not (well_formed and verify_signature(bytes.fromhex(actor), msg, bytes.fromhex(sig))):
            rep.problem(f"{where}: signature does not verify for actor {actor!s:.16}... over this position "
                        "(seq, time, previous hash) in this ledger")
        if stored_prev != prev:
            rep.problem(f"{where}: prev hash does not link to the previous entry")
        h = entry_hash(msg, sig) if well_formed else ""
        if h != stored_hash:
            rep.problem(f"{where}: hash mismatch (entry altered)")
        if anchor is not None and expected_seq == anchor.entries - 1:
            if h == anchor.head:
                rep.anchored = anchor.entries
            else:
                rep.problem(f"{where}: the anchor's head {anchor.head[:16]}... is not this entry's hash: "
                            "the log was rewritten before the anchored point")
        # Link the next entry to what it claims to follow, so one altered entry is reported once.
        prev = stored_hash if is_hex(stored_hash, 64) else (h or prev)
        if well_formed:
            try:
                st.apply(kind, bytes.fromhex(actor), op_id, args, t)
            except (LedgerError, ValueError, TypeError) as e:
                rep.problem(f"{where}: the ledger rules refuse this entry on replay: {e}")
            finally:
                st.touched.clear()
        expected_seq += 1
    rep.head = prev
    if anchor is not None and anchor.entries == 0:
        rep.anchored = 0
    elif anchor is not None and rep.entries < anchor.entries:
        rep.problem(f"the anchor covers {anchor.entries} entries but the file has {rep.entries}: "
                    "the tail was cut off")
    _compare_state(db, rep, st)


def _check_anchor(rep: ChainReport, anchor: Any, ledger_id: str, genesis: str) -> Checkpoint | None:
    if anchor is None:
        return None
    if not isinstance(anchor, Checkpoint):
        rep.problem(f"anchor must be a Checkpoint, got {type(anchor).__name__}")
        return None
    try:
        anchor.check()
    except ValueError as e:
        rep.problem(f"malformed anchor: {e}")
        return None
    if anchor.sig and not anchor.signature_ok():
        rep.problem(f"the anchor's signature by {anchor.signer[:16]}... does not verify")
        return None
    if anchor.ledger_id != ledger_id:
        rep.problem(f"the anchor is for ledger {anchor.ledger_id}, the file is ledger {ledger_id}")
        return None
    if anchor.genesis != genesis:
        rep.problem("the anchor's genesis does not match the file's metadata (minter or withdraw delay "
                    "changed since it was taken)")
        return None
    if anchor.entries == 0 and anchor.head != genesis:
        rep.problem("the anchor covers 0 entries but its head is not the genesis hash")
    return anchor


def _compare_state(db: sqlite3.Connection, rep: ChainReport, st: LedgerState) -> None:
    implied = {k: json.loads(json.dumps(v)) for k, v in st.rows().items()}
    stored: dict[str, Any] = {}
    for k, v in db.execute("SELECT k, v FROM state"):
        try:
            stored[str(k)] = json.loads(v)
        except (TypeError, ValueError):
            rep.problem(f"state row {k!r:.60}: not JSON")
    for k in sorted(set(implied) | set(stored)):
        if k == "meta/supply" and k not in stored and implied[k] == 0:
            continue
        if implied.get(k) != stored.get(k):
            rep.problem(f"state row {k}: stored {stored.get(k)!r:.80} but the log implies {implied.get(k)!r:.80}")
    rep.supply, rep.holdings, rep.accounts = st.supply, st.holdings(), len(st.pub_of)
    if rep.supply != rep.holdings:
        rep.problem(f"money not conserved: supply {rep.supply} != holdings {rep.holdings}")
    if any(v < 0 for v in st.bal.values()) or any(min(s[:3]) < 0 for s in st.stk.values()):
        rep.problem("a balance or stake is negative")
