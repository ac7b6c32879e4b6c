"""The owner of a SQLite ledger file attacks it: what verify and open catch, and what only an anchor can.

The attacker owns the file (any SQL, any rehashing) and holds some keys (the
minter's, mallory's), never alice's, bob's or vera's. Each attack rewrites the
file as consistently as the attacker can, re-linking the hash chain and
re-signing every entry whose key it holds; ``verify`` must then fail with a
reason, and opening the file must refuse it.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

import vcompute.ledger as vl
from ledger_helpers import Parties
from vcompute.core.signing import key_from_name
from vcompute.ledger import ManualClock
from vcompute.ledger.log import Checkpoint, entry_bytes, entry_hash, genesis_hash
from vcompute.ledger.sqlite_file import read_meta

EVIL_MINTER = key_from_name("evil-minter")


@pytest.fixture
def ledger_file(tmp_path):
    path = os.path.join(tmp_path, "l.db")
    with vl.open(f"sqlite:///{path}?withdraw_delay=50", clock=ManualClock()) as led:
        p = Parties(led)
        led.transfer(p.alice, "bob", 10, op_id="t1")
        led.transfer(p.bob, "vera", 3, op_id="t2")
        led.transfer(p.alice, "mallory", 7, op_id="t3")
        anchor = led.checkpoint(p.vera)  # vera keeps this
        led.transfer(p.alice, "bob", 1, op_id="t4")
        led.transfer(p.bob, "alice", 2, op_id="t5")
    return path, anchor


def rewrite(path, edit, keys=()):
    """Apply ``edit(rows, meta)`` to the events, then re-link every hash and re-sign what ``keys`` can."""
    db = sqlite3.connect(path)
    meta_raw = dict(db.execute("SELECT k, v FROM meta"))
    rows = [list(r) for r in db.execute("SELECT seq, actor, op_id, kind, args, time, sig, prev, hash FROM events "
                                        "ORDER BY seq")]
    rows = edit(rows, meta_raw)
    db.execute("DELETE FROM meta")
    db.executemany("INSERT INTO meta VALUES (?, ?)", meta_raw.items())
    meta = read_meta(db, path)
    by_pub = {k.public_bytes.hex(): k for k in keys}
    prev = genesis_hash(meta)
    for i, r in enumerate(rows):
        r[0], r[7] = i, prev
        msg = entry_bytes(meta["ledger_id"], i, r[5], prev, r[3], r[1], r[2], json.loads(r[4]))
        if r[1] in by_pub:
            r[6] = by_pub[r[1]].sign(msg).hex()
        r[8] = prev = entry_hash(msg, r[6])
    db.execute("DELETE FROM events")
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()


def problems(path, anchor=None):
    rep = vl.verify_chain(path, anchor)
    assert not rep.ok
    with pytest.raises(vl.InvalidRequest):  # open refuses what verify refuses
        vl.open(f"sqlite:///{path}", clock=ManualClock())
    return " | ".join(rep.problems)


def test_honest_file_verifies_with_and_without_its_anchor(ledger_file):
    path, anchor = ledger_file
    assert anchor.signature_ok() and anchor.entries == 13
    rep = vl.verify_chain(path, anchor)
    assert rep.ok and rep.anchored == 13, rep.summary()
    assert vl.verify_chain(path).ok


def test_dropping_an_entry_and_relinking_fails(ledger_file):
    path, anchor = ledger_file
    rewrite(path, lambda rows, meta: [r for r in rows if r[2] != "t2"], keys=[EVIL_MINTER])
    assert "signature does not verify" in problems(path)


def _swap_t1_with_next(rows, meta):
    i = next(i for i, r in enumerate(rows) if r[2] == "t1")
    rows[i], rows[i + 1] = rows[i + 1], rows[i]
    return rows


def _edit_t1_amount(rows, meta):
    for r in rows:
        if r[2] == "t1":
            r[4] = '["bob",1000]'
    return rows


def _retime_last(rows, meta):
    rows[-1][5] = 1e6
    return rows


@pytest.mark.parametrize("edit", [_swap_t1_with_next, _edit_t1_amount, _retime_last],
                         ids=["reorder", "edit-args", "retime"])
def test_reordering_editing_or_retiming_entries_fails(ledger_file, edit):
    """Each rewrite re-links every hash; the signatures over position and content still fail."""
    path, _ = ledger_file
    rewrite(path, edit)
    assert "signature does not verify" in problems(path)


def test_swapping_the_minter_and_resigning_its_mints_fails(ledger_file):
    """The owner points the metadata at its own minter key and re-signs every mint with it."""
    path, anchor = ledger_file

    def edit(rows, meta):
        meta["minter"] = EVIL_MINTER.public_bytes.hex()
        for r in rows:
            if r[3] == "mint":
                r[1] = EVIL_MINTER.public_bytes.hex()
        return rows

    rewrite(path, edit, keys=[EVIL_MINTER])
    rep = vl.verify_chain(path)
    # entry 0 (alice's open_account) signed the real genesis: the new metadata breaks it
    assert not rep.ok and any("entry 0" in p and "signature" in p for p in rep.problems), rep.summary()
    assert "genesis does not match" in problems(path, anchor)
    m = vl.verify_chain(path, minter=vl.default_minter().public_bytes)
    assert any("minter is" in p for p in m.problems)


def test_shortening_the_withdraw_delay_fails(ledger_file):
    path, _ = ledger_file

    def edit(rows, meta):
        meta["withdraw_delay"] = repr(0.0)
        return rows

    rewrite(path, edit)
    assert "signature does not verify" in problems(path)


def test_truncating_the_tail_passes_without_an_anchor_and_fails_with_one(ledger_file):
    """The documented limit: signatures cannot show a missing tail; a kept checkpoint can."""
    path, anchor = ledger_file
    rewrite(path, lambda rows, meta: rows[:11])  # cut back before vera's checkpoint (13 entries)
    _drop_state(path)
    assert vl.verify_chain(path).ok  # undetectable without an anchor: an honest, shorter history
    rep = vl.verify_chain(path, anchor)
    assert not rep.ok and any("tail was cut off" in p for p in rep.problems), rep.summary()


def test_truncating_after_the_anchor_is_not_detected_by_it(ledger_file):
    path, anchor = ledger_file
    rewrite(path, lambda rows, meta: rows[:14])  # only t5 (after the anchor) dropped
    _drop_state(path)
    assert vl.verify_chain(path, anchor).ok


def test_rewriting_history_with_only_owner_keys_needs_an_anchor(tmp_path):
    """A ledger whose every entry is signed by keys the owner holds can be rewritten wholesale;
    a checkpoint signed by another party still catches it."""
    path = os.path.join(tmp_path, "own.db")
    m = EVIL_MINTER
    with vl.open(f"sqlite:///{path}", minter=m, clock=ManualClock()) as led:
        led.open_account(m, "boss", op_id="o")
        led.mint(m, "boss", 100, op_id="m")
        anchor = led.checkpoint(key_from_name("auditor"))

    def edit(rows, meta):
        rows[1][4] = '["boss",1000000]'
        return rows

    rewrite(path, edit, keys=[m])
    _drop_state(path)
    assert vl.verify_chain(path).ok  # all signatures are the owner's own: re-signed
    rep = vl.verify_chain(path, anchor)
    assert not rep.ok and any("rewritten before the anchored point" in p for p in rep.problems)


def test_a_forged_or_foreign_anchor_is_reported(ledger_file, tmp_path):
    path, anchor = ledger_file
    forged = Checkpoint(anchor.ledger_id, anchor.genesis, 3, anchor.head, anchor.signer, anchor.sig)
    assert any("signature" in p for p in vl.verify_chain(path, forged).problems)
    other = os.path.join(tmp_path, "other.db")
    with vl.open(f"sqlite:///{other}") as led:
        foreign = led.checkpoint()
    assert any("is for ledger" in p for p in vl.verify_chain(path, foreign).problems)
    assert any("Checkpoint" in p for p in vl.verify_chain(path, {"entries": 1}).problems)


def test_anchor_posted_on_another_ledger(tmp_path):
    path = os.path.join(tmp_path, "l.db")
    notary = vl.open("memory://")
    p2 = Parties(notary)
    with vl.open(f"sqlite:///{path}", clock=ManualClock()) as led:
        p = Parties(led)
        led.anchor(notary, p2.vera, "anchor-1", op_id="a1")
        led.transfer(p.alice, "bob", 5, op_id="t")
    cp = Checkpoint.from_commitment(notary.commitment("anchor-1"))
    assert cp.entries == 10 and vl.verify_chain(path, cp).ok
    rewrite(path, lambda rows, meta: rows[:9])
    _drop_state(path)
    assert not vl.verify_chain(path, cp).ok


def test_receipts_carry_their_entry_hash(tmp_path):
    path = os.path.join(tmp_path, "r.db")
    with vl.open(f"sqlite:///{path}", clock=ManualClock()) as led:
        p = Parties(led)
        r = led.transfer(p.alice, "bob", 1, op_id="t")
    db = sqlite3.connect(path)
    (h,) = db.execute("SELECT hash FROM events WHERE seq = ?", (r.seq,)).fetchone()
    db.close()
    assert r.ref == h and len(h) == 64


def test_open_refuses_an_altered_log_instead_of_extending_it(ledger_file):
    """Before: open replayed without checking signatures and appended to the forged log."""
    path, _ = ledger_file
    db = sqlite3.connect(path)
    db.execute("UPDATE events SET args = '[\"mallory\",900]' WHERE op_id = 't3'")
    db.commit()
    db.close()
    with pytest.raises(vl.InvalidRequest, match="does not verify"):
        vl.open(f"sqlite:///{path}", clock=ManualClock())


def _drop_state(path):
    """The attacker also rewrites the state table to match its shorter log."""
    db = sqlite3.connect(path)
    meta = read_meta(db, path)
    from vcompute.ledger.state import LedgerState

    st = LedgerState(bytes.fromhex(meta["minter"]), meta["withdraw_delay"])
    for _seq, actor, op_id, kind, args, t in db.execute("SELECT seq, actor, op_id, kind, args, time FROM events "
                                                        "ORDER BY seq").fetchall():
        st.apply(kind, bytes.fromhex(actor), op_id, tuple(json.loads(args)), t)
    db.execute("DELETE FROM state")
    db.executemany("INSERT INTO state VALUES (?, ?)", [(k, json.dumps(v, separators=(",", ":")))
                                                        for k, v in st.rows().items()])
    db.commit()
    db.close()
