"""Faults must leave the SQLite ledger's memory and file consistent: failed commits, disk full,
threads, concurrent creators, damaged, empty and foreign files, odd paths, hostile keys."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time

import pytest

# The forked children write to the ledger file and exit (no JAX work runs in them), so JAX's warning
# that a fork of its multithreaded process may deadlock does not apply.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

import vcompute.ledger as vl
from ledger_helpers import Parties, snapshot
from sqlite_helpers import FaultyConnection
from vcompute.core.signing import key_from_name
from vcompute.ledger import ManualClock
from vcompute.ledger.cli import add_parser


def _open(path, **kw):
    return vl.open(f"sqlite:///{path}", clock=ManualClock(), **kw)


@pytest.fixture
def led(tmp_path):
    led = _open(os.path.join(tmp_path, "l.db"))
    led.parties = Parties(led)
    yield led
    led.close()


def _consistent(led):
    """The object's state is exactly what the file holds, the file verifies and reopens."""
    rep = vl.verify_chain(led.path)
    assert rep.ok, rep.summary()
    with _open(led.path) as again:
        assert snapshot(again) == snapshot(led)
        assert again.state.seq == led.state.seq


def test_commit_failing_at_the_end_of_a_batch_rolls_memory_back(led):
    p, before = led.parties, snapshot(led)
    real = led._db
    led._db = FaultyConnection(real, lambda sql: sql == "COMMIT")
    with pytest.raises(vl.LedgerError, match="commit failed.*nothing in it was applied"):
        with led.batch():
            led.transfer(p.alice, "bob", 5, op_id="b1")
            led.transfer(p.bob, "vera", 1, op_id="b2")
    assert snapshot(led) == before  # before the fix: memory was 5 ahead of the file
    led._db = real
    _consistent(led)
    with led.batch():  # the same op ids apply once the disk has room again
        assert not led.transfer(p.alice, "bob", 5, op_id="b1").replayed
    _consistent(led)


def test_single_operation_commit_failure_rolls_back_and_retries_cleanly(led):
    p, before = led.parties, snapshot(led)
    real = led._db
    led._db = FaultyConnection(real, lambda sql: sql == "COMMIT")
    with pytest.raises(vl.LedgerError, match="retrying with the same op_id is safe"):
        led.transfer(p.alice, "bob", 5, op_id="x")
    assert snapshot(led) == before
    led._db = real
    assert not led.transfer(p.alice, "bob", 5, op_id="x").replayed
    _consistent(led)


def test_real_disk_full_via_max_page_count(led):
    """SQLITE_FULL from SQLite itself, in single operations and at the end of batches."""
    p = led.parties
    (pages,) = led._db.execute("PRAGMA page_count").fetchone()
    led._db.execute(f"PRAGMA max_page_count = {pages + 2}")
    ok = failed = 0
    for i in range(400):
        try:
            if i % 3:
                led.commit(p.bob, f"c{i}", bytes(32), metadata={"pad": "x" * 900}, op_id=f"c{i}")
            else:
                with led.batch():
                    for j in range(4):
                        led.commit(p.bob, f"b{i}.{j}", bytes(32), metadata={"pad": "y" * 900}, op_id=f"b{i}.{j}")
            ok += 1
        except vl.LedgerError as e:
            assert "full" in str(e)
            failed += 1
    assert ok and failed > 100, (ok, failed)
    _consistent(led)
    led._db.execute("PRAGMA max_page_count = 1000000")
    led.transfer(p.alice, "bob", 1, op_id="after")
    _consistent(led)


def test_threads_share_one_ledger_and_group_commit(led):
    """8 threads x 30 transfers on one object: every receipt unique, the chain intact, commits grouped."""
    keys = {n: led.parties.keys[n] for n in ("alice", "bob", "vera", "trez")}
    real = led._db
    first = threading.Event()

    def hold_first_commit(sql):
        # The first COMMIT waits long enough for every thread to queue an entry behind it, so grouping is
        # shown whatever the machine's load (a timing-free version of "several entries per fsync").
        if sql == "COMMIT" and not first.is_set():
            first.set()
            time.sleep(0.3)
        return False

    slow = FaultyConnection(real, hold_first_commit)
    led._db = slow
    receipts, errors = [], []
    start = threading.Barrier(8)

    def work(t):
        name = list(keys)[t % 4]
        try:
            start.wait()
            for i in range(30):
                receipts.append(led.transfer(keys[name], "mallory", 1, op_id=f"th{t}.{i}"))
                led.balance(name), led.holdings(), led.accounts()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len({r.seq for r in receipts}) == 240 and led.balance("mallory") == 1000 + 240
    assert slow.commits < 240, slow.commits  # at least one fsync carried several threads' entries
    led._db = real
    _consistent(led)


def test_a_failed_group_fails_only_its_callers_and_threads_stay_consistent(led):
    keys = list(led.parties.keys.values())[:4]
    real = led._db
    n = {"commits": 0}

    def every_fifth(sql):
        if sql != "COMMIT":
            return False
        n["commits"] += 1
        time.sleep(0.002)
        return n["commits"] % 5 == 0

    led._db = FaultyConnection(real, every_fifth)
    done, failed = [], []

    def work(t):
        for i in range(25):
            try:
                done.append(led.transfer(keys[t], "mallory", 1, op_id=f"g{t}.{i}"))
            except vl.LedgerError:
                failed.append((t, i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failed and done
    led._db = real
    assert led.balance("mallory") == 1000 + len(done)  # exactly the acknowledged ones
    _consistent(led)


def _in_processes(target, path, n):
    """Run ``target(path, i, queue)`` in ``n`` forked processes at once; their results, in order of arrival."""
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=target, args=(path, i, q)) for i in range(n)]
    for pr in procs:
        pr.start()
    out = [q.get(timeout=120) for _ in procs]
    for pr in procs:
        pr.join()
    return out


def _create_and_transfer(path, i, q):
    try:
        with vl.open(f"sqlite:///{path}", clock=ManualClock()) as led:
            k = key_from_name(f"p{i}")
            led.open_account(k, f"p{i}", op_id="open")
            q.put(("ok", led.ledger_id))
    except Exception as e:  # pragma: no cover - reported below
        q.put(("err", repr(e)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_processes_creating_one_file_at_once_all_succeed(tmp_path):
    for round_ in range(3):
        path = os.path.join(tmp_path, f"race{round_}.db")
        out = _in_processes(_create_and_transfer, path, 6)
        assert all(o[0] == "ok" for o in out), out
        assert len({o[1] for o in out}) == 1  # one ledger, created once
        rep = vl.verify_chain(path)
        assert rep.ok and rep.accounts == 6, rep.summary()
        assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def _transfers_from_process(path, i, q):
    try:
        with vl.open(f"sqlite:///{path}", clock=ManualClock()) as led:
            k = key_from_name(f"w{i}")
            led.open_account(k, f"w{i}", op_id="open")
            led.mint(vl.default_minter(), f"w{i}", 100, op_id=f"fund-w{i}")
            for j in range(15):
                led.transfer(k, "alice", 1, op_id=f"t{j}")
            q.put(("ok", led.balance(f"w{i}")))
    except Exception as e:  # pragma: no cover - reported below
        q.put(("err", repr(e)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_processes_appending_to_one_file_at_once(tmp_path):
    """4 processes interleave appends: each group that lost the race is rebuilt on the winner's entries."""
    path = os.path.join(tmp_path, "shared.db")
    with _open(path) as led:
        Parties(led)
    out = _in_processes(_transfers_from_process, path, 4)
    assert out == [("ok", 85)] * 4, out
    with _open(path) as led:
        assert led.balance("alice") == 1000 + 60 and vl.check_conservation(led) == 5000 + 400
    assert vl.verify_chain(path).ok


@pytest.mark.parametrize("content, match", [
    (b"", "0-byte file"),
    (b"x", "1-byte file"),
    (b"hello, this is a text file and not a ledger\n" * 4, "not a SQLite database"),
])
def test_empty_and_foreign_files_are_refused_not_reinitialised(tmp_path, content, match):
    path = os.path.join(tmp_path, "f.db")
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(vl.InvalidRequest, match=match):
        _open(path)
    with open(path, "rb") as f:
        assert f.read() == content  # untouched
    assert not vl.verify_chain(path).ok


def test_a_foreign_sqlite_database_is_refused(tmp_path):
    path = os.path.join(tmp_path, "app.db")
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(vl.InvalidRequest, match="not a vcompute ledger"):
        _open(path)
    sqlite3.connect(path).execute("CREATE TABLE meta (k TEXT, v TEXT)").connection.commit()
    with pytest.raises(vl.InvalidRequest, match="ledger format None"):
        _open(path)


def test_paths_with_hash_and_question_mark_are_literal(tmp_path):
    odd = os.path.join(tmp_path, "a#b?c.db")
    decoy = os.path.join(tmp_path, "a")
    with _open(decoy) as d:  # what a fragment or query would have named instead
        Parties(d)
    url = "sqlite:///" + odd.replace("#", "%23").replace("?", "%3F")
    with vl.open(url, clock=ManualClock()) as led:
        led.open_account(key_from_name("x"), "x", op_id="o")
        assert led.path == odd
    assert os.path.exists(odd)
    rep = vl.verify_chain(odd)
    assert rep.ok and rep.accounts == 1, rep.summary()  # before: verified the decoy (5 accounts)
    with pytest.raises(vl.InvalidURL, match="%23"):
        vl.open(f"sqlite:///{tmp_path}/a#b.db")
    assert _cli(["ledger", "verify", odd]) == 0


@pytest.mark.parametrize("stmt", [
    "UPDATE events SET args = 'not json' WHERE seq = 3",
    "UPDATE events SET args = '{\"a\": 1}' WHERE seq = 3",
    "UPDATE events SET args = '17' WHERE seq = 3",
    "UPDATE events SET actor = 'zz' WHERE seq = 3",
    "UPDATE events SET sig = x'00ff' WHERE seq = 3",
    "UPDATE events SET time = 'noon' WHERE seq = 3",
    "UPDATE events SET kind = 'steal' WHERE seq = 3",
    "UPDATE events SET op_id = 5 WHERE seq = 3",
    "UPDATE events SET hash = 12 WHERE seq = 3",
    "UPDATE events SET seq = seq + 100 WHERE seq = 3",
    "UPDATE meta SET v = 'zz' WHERE k = 'minter'",
    "UPDATE meta SET v = 'soon' WHERE k = 'withdraw_delay'",
    "DELETE FROM meta WHERE k = 'ledger_id'",
    "INSERT INTO meta VALUES ('extra', '1')",
    "UPDATE state SET v = 'not json' WHERE k = 'acct/alice'",
    "DROP TABLE events",
    "DROP TABLE state",
])
def test_damaged_rows_give_a_reason_never_an_exception(led, stmt, capsys):
    led.close()
    db = sqlite3.connect(led.path)
    db.execute(stmt)
    db.commit()
    db.close()
    rep = vl.verify_chain(led.path)
    assert not rep.ok and rep.problems, rep.summary()
    assert _cli(["ledger", "verify", led.path]) == 1
    assert "problem:" in capsys.readouterr().out
    if "UPDATE state" not in stmt:  # the state table is derived: open rebuilds it from the log
        with pytest.raises(vl.InvalidRequest):
            _open(led.path)


def test_hostile_signing_keys_change_nothing(led):
    alice = led.parties.alice
    before = snapshot(led)

    class Junk:
        public_bytes = alice.public_bytes

        def sign(self, msg):
            return b"\x00" * 64

    class Reentrant:
        public_bytes = alice.public_bytes

        def sign(self, msg):
            led.transfer(alice, "bob", 1, op_id="inner")
            return alice.sign(msg)

    with pytest.raises(vl.Unauthorized):
        led.transfer(Junk(), "bob", 1, op_id="j")
    with pytest.raises(vl.LedgerError, match="inside a key's sign"):
        led.transfer(Reentrant(), "bob", 1, op_id="r")
    with pytest.raises(vl.InvalidRequest, match="surrogate"):
        led.transfer(alice, "bob", 1, op_id="\ud800")
    assert snapshot(led) == before
    _consistent(led)


def test_operations_after_close_are_refused(led):
    led.close()
    with pytest.raises(vl.LedgerError, match="closed"):
        led.transfer(led.parties.alice, "bob", 1, op_id="late")


def _cli(argv):
    import argparse

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    args = p.parse_args(argv)
    return args.func(args)
