"""The SQLite ledger's signed hash chain: tampering of any kind is reported, never missed."""

from __future__ import annotations

import os
import sqlite3

import pytest

import vcompute.ledger as vl
from ledger_helpers import Parties
from vcompute.ledger import ManualClock
from vcompute.ledger.cli import add_parser


@pytest.fixture
def chain_file(tmp_path):
    path = os.path.join(tmp_path, "l.db")
    led = vl.open(f"sqlite:///{path}", clock=ManualClock())
    p = Parties(led)
    led.transfer(p.alice, "bob", 10, op_id="t")
    led.escrow_open(p.alice, "job", provider="bob", amount=50, deadline=10, verifier="vera", op_id="e")
    led.stake_deposit(p.bob, 40, op_id="d")
    led.stake_lock(p.bob, "job", 40, op_id="l")
    led.stake_slash(p.vera, "job", 15, to="trez", op_id="s")
    led.escrow_release(p.vera, "job", op_id="r")
    led.commit(p.bob, "ck", b"\x01" * 32, metadata={"step": 1}, op_id="c")
    led.close()
    return path


def _sql(path, stmt, *args):
    db = sqlite3.connect(path)
    db.execute(stmt, args)
    db.commit()
    db.close()


def test_intact_chain_verifies(chain_file):
    rep = vl.verify_chain(chain_file)
    assert rep.ok, rep.summary()
    assert rep.entries == 17 and rep.supply == rep.holdings == 5000 and rep.accounts == 5


@pytest.mark.parametrize("stmt, expect", [
    ("UPDATE events SET args = '[\"bob\",11]' WHERE op_id = 't'", "signature"),
    ("UPDATE events SET time = 5 WHERE op_id = 't'", "signature"),
    ("UPDATE events SET hash = prev WHERE op_id = 't'", "hash mismatch"),
    # (the last hex digit changed, whatever it was: the signature is random with the ledger's id)
    ("UPDATE events SET sig = substr(sig, 1, 127) || CASE substr(sig, 128, 1) WHEN '0' THEN '1' ELSE '0' END "
     "WHERE op_id = 'l'", "signature"),
    ("DELETE FROM events WHERE op_id = 's'", "missing"),
    ("UPDATE state SET v = '[\"00\", 99999]' WHERE k = 'acct/trez'", "state row acct/trez"),
    ("UPDATE events SET prev = hash WHERE op_id = 'r'", "prev hash"),
    ("UPDATE events SET actor = (SELECT actor FROM events WHERE op_id = 'open-mallory') WHERE op_id = 't'",
     "signature"),
])
def test_tampering_is_reported(chain_file, stmt, expect):
    _sql(chain_file, stmt)
    rep = vl.verify_chain(chain_file)
    assert not rep.ok
    assert any(expect in p for p in rep.problems), rep.summary()


def test_resigned_forgery_by_a_stranger_is_refused_on_replay(chain_file):
    """A stranger who re-signs an entry in their own name still cannot spend alice's money."""
    from vcompute.core.signing import key_from_name
    from vcompute.ledger.log import entry_bytes, entry_hash

    db = sqlite3.connect(chain_file)
    lid = dict(db.execute("SELECT k, v FROM meta"))["ledger_id"]
    (seq, prev, t) = db.execute("SELECT seq, prev, time FROM events WHERE op_id = 't'").fetchone()
    mal = key_from_name("mallory")
    msg = entry_bytes(lid, seq, t, prev, "transfer", mal.public_bytes.hex(), "t", ["mallory", 10**6])
    sig = mal.sign(msg).hex()
    db.execute("UPDATE events SET actor = ?, args = ?, sig = ?, hash = ? WHERE seq = ?",
               (mal.public_bytes.hex(), '["mallory",1000000]', sig, entry_hash(msg, sig), seq))
    db.commit()
    db.close()
    rep = vl.verify_chain(chain_file)
    assert not rep.ok and any("refuse" in p for p in rep.problems), rep.summary()


def test_missing_and_garbage_files(tmp_path):
    assert not vl.verify_chain(os.path.join(tmp_path, "nope.db")).ok
    junk = os.path.join(tmp_path, "junk.db")
    with open(junk, "wb") as f:
        f.write(b"not a database" * 100)
    rep = vl.verify_chain(junk)
    assert not rep.ok and rep.problems


def _cli(argv):
    import argparse

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    args = p.parse_args(argv)
    return args.func(args)


def test_cli_verify_exit_status(chain_file, capsys):
    assert _cli(["ledger", "verify", chain_file]) == 0
    assert "OK" in capsys.readouterr().out
    _sql(chain_file, "UPDATE events SET time = 5 WHERE op_id = 't'")
    assert _cli(["ledger", "verify", chain_file]) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and "signature does not verify" in out


def test_cli_show(chain_file, capsys):
    assert _cli(["ledger", "show", chain_file]) == 0
    out = capsys.readouterr().out
    assert "trez" in out and "total supply 5000" in out
    assert _cli(["ledger", "show", chain_file + ".missing"]) == 2


def test_reopen_with_other_minter_is_refused(chain_file):
    from vcompute.core.signing import key_from_name

    with pytest.raises(vl.InvalidRequest, match="minter"):
        vl.open(f"sqlite:///{chain_file}", minter=key_from_name("someone"))


def test_other_processes_appends_are_seen(chain_file):
    a = vl.open(f"sqlite:///{chain_file}", clock=ManualClock())
    b = vl.open(f"sqlite:///{chain_file}", clock=ManualClock())
    from vcompute.core.signing import key_from_name

    alice = key_from_name("alice")
    a.transfer(alice, "bob", 1, op_id="x1")
    b.transfer(alice, "bob", 1, op_id="x2")
    assert b.transfer(alice, "bob", 1, op_id="x1").replayed  # b caught up with a's entry
    a.transfer(alice, "bob", 1, op_id="x3")
    assert a.balance("bob") == 1000 + 10 + 50 - 40 + 3  # + transfer + release - deposit + x1..x3
    a.close()
    b.close()
    assert vl.verify_chain(chain_file).ok


def test_cli_checkpoint_then_verify_against_it(chain_file, tmp_path, capsys):
    """`checkpoint` writes the head a party keeps; `verify --anchor` then catches a cut-off tail."""
    cp = os.path.join(tmp_path, "cp.json")
    assert _cli(["ledger", "checkpoint", chain_file, "--out", cp]) == 0
    assert _cli(["ledger", "verify", chain_file, "--anchor", cp]) == 0
    assert "anchored: the first 17 entries" in capsys.readouterr().out
    minter = vl.default_minter().public_bytes.hex()
    assert _cli(["ledger", "verify", chain_file, "--minter", minter]) == 0
    assert _cli(["ledger", "verify", chain_file, "--minter", "ab" * 32]) == 1
    _sql(chain_file, "DELETE FROM events WHERE seq = 16")
    _sql(chain_file, "DELETE FROM state WHERE k = 'com/ck'")
    capsys.readouterr()
    assert _cli(["ledger", "verify", chain_file]) == 0  # a shorter, consistent history...
    assert _cli(["ledger", "verify", chain_file, "--anchor", cp]) == 1  # ...that the anchor refutes
    assert "tail was cut off" in capsys.readouterr().out


@pytest.mark.parametrize("anchor_text", ["not json", "{}", '{"ledger_id": "zz", "entries": -1}'])
def test_cli_verify_with_an_unreadable_anchor_exits_2(chain_file, tmp_path, anchor_text, capsys):
    bad = os.path.join(tmp_path, "bad.json")
    with open(bad, "w") as f:
        f.write(anchor_text)
    assert _cli(["ledger", "verify", chain_file, "--anchor", bad]) == 2
    assert "error:" in capsys.readouterr().err
    assert _cli(["ledger", "verify", chain_file, "--anchor", bad + ".missing"]) == 2


def test_verify_chain_takes_a_sqlite_url_as_the_cli_does(tmp_path):
    """``verify_chain`` and ``vcompute ledger verify`` read ``sqlite:///`` URLs and plain paths alike."""
    import vcompute.ledger as vl
    from vcompute.ledger.chain import ledger_file

    path = tmp_path / "a#b.db"
    led = vl.open(f"sqlite:///{str(path).replace('#', '%23')}")
    led.close()
    by_path = vl.verify_chain(str(path))
    by_url = vl.verify_chain(f"sqlite:///{str(path).replace('#', '%23')}")
    assert by_path.ok and by_url.ok and by_path.path == by_url.path == str(path)
    assert ledger_file(str(path)) == str(path)
    with pytest.raises(ValueError, match="%23"):
        vl.verify_chain(f"sqlite:///{path}")
