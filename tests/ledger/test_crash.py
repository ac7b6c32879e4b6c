"""Crash safety of the SQLite ledger: SIGKILL a writer at random moments, under faults.

A forked child applies operations (single, batched, escrows, stakes) and
reports each one that returned success through a pipe; the parent kills it
with SIGKILL after a random delay. Some children also suffer faults: random
failed statements and commits (a fault-injecting connection), a disk that
fills up (SQLite's ``max_page_count``), or three threads sharing one ledger
object (group commit). After every kill: the file's chain verifies, money is
conserved, every acknowledged operation is in the log exactly once (the log
may hold more: operations committed just before the kill could not be
acknowledged), and retrying one changes nothing. ``KILLS`` records the
totals (``pytest -s`` prints them).
"""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import sqlite3
import threading
import time

import pytest

import vcompute.ledger as vl
from vcompute.core.signing import key_from_name
from sqlite_helpers import FaultyConnection
from vcompute.ledger import ManualClock

# The child of os.fork() here only writes to the ledger and exits (no JAX work runs in it), so JAX's
# warning that a fork of its multithreaded process may deadlock does not apply.
pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning"),
]

A, B, V = key_from_name("alice"), key_from_name("bob"), key_from_name("vera")
MODES = ("plain", "faults", "diskfull", "threads")
#: Totals over the kills run in this process: kills, faults survived, ops acknowledged and present.
KILLS = {m: {"kills": 0, "faults": 0, "acked": 0, "present": 0} for m in MODES}


def _setup(path: str) -> None:
    with vl.open(f"sqlite:///{path}", clock=ManualClock()) as led:
        m = vl.default_minter()
        for k, n in ((A, "alice"), (B, "bob"), (V, "vera")):
            led.open_account(k, n, op_id=f"open-{n}")
        led.mint(m, "alice", 10**9, op_id="fund-a")
        led.mint(m, "bob", 10**6, op_id="fund-b")


def _child(path: str, wfd: int, seed: int, mode: str = "plain") -> None:
    """Apply operations forever, acknowledging each success on ``wfd`` (and each fault survived)."""
    rng = random.Random(seed)
    led = vl.open(f"sqlite:///{path}", clock=ManualClock())
    lock = threading.Lock()

    def ack(who: str, op_id: str) -> None:
        with lock:
            os.write(wfd, f"{who} {op_id}\n".encode())

    if mode == "faults":
        led._db = FaultyConnection(led._db, lambda sql: sql.startswith(("INSERT", "COMMIT")) and rng.random() < 0.1)
    if mode == "diskfull":
        (pages,) = led._db.execute("PRAGMA page_count").fetchone()
        led._db.execute(f"PRAGMA max_page_count = {pages + 1}")
    if mode == "threads":
        threads = [threading.Thread(target=_work, args=(led, ack, random.Random(seed + t), f"{seed}.{t}"),
                                    daemon=True) for t in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    n = 0
    while True:
        n += 1
        try:
            _work(led, ack, rng, f"{seed}.{n}", once=True)
        except vl.LedgerError as e:
            assert "full" in str(e), e
            os.write(wfd, b"F\n")
            if mode == "diskfull" and rng.random() < 0.3:  # some space frees up
                (pages,) = led._db.execute("PRAGMA page_count").fetchone()
                led._db.execute(f"PRAGMA max_page_count = {pages + 1}")


def _work(led, ack, rng, tag: str, once: bool = False) -> None:
    n = 0
    while True:
        n += 1
        i = f"{tag}.{n}"  # unique across children (and threads) appending to one file
        r = rng.random()
        if r < 0.6:
            led.transfer(A, "bob", rng.randint(1, 9), op_id=f"t{i}")
            ack("alice", f"t{i}")
        elif r < 0.8:
            led.escrow_open(A, f"e{i}", provider="bob", amount=5, deadline=100, verifier="vera", op_id=f"eo{i}")
            ack("alice", f"eo{i}")
            led.stake_deposit(B, 3, op_id=f"sd{i}")
            ack("bob", f"sd{i}")
            led.stake_lock(B, f"e{i}", 3, op_id=f"sl{i}")
            ack("bob", f"sl{i}")
            led.stake_slash(V, f"e{i}", 1, to="vera", op_id=f"ss{i}")
            ack("vera", f"ss{i}")
            led.escrow_release(V, f"e{i}", op_id=f"er{i}")
            ack("vera", f"er{i}")
        else:
            with led.batch():
                for j in range(5):
                    led.transfer(B, "alice", 1, op_id=f"b{i}.{j}")
            for j in range(5):  # durable only once the batch has committed
                ack("bob", f"b{i}.{j}")
        if once:
            return


def _run_and_kill(path: str, seed: int, rng: random.Random, mode: str = "plain") -> list[tuple[str, str]]:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(rfd)
        try:
            _child(path, wfd, seed, mode)
        finally:
            os._exit(0)
    os.close(wfd)
    # Let the child get going (a random number of acknowledged operations, so kills
    # land at every stage, even under load), then kill it at a random moment.
    want, seen, chunks = rng.randint(0, 15), 0, []
    deadline = time.monotonic() + 10
    while seen < want and time.monotonic() < deadline:
        ready, _, _ = select.select([rfd], [], [], 0.5)
        if ready:
            data = os.read(rfd, 1 << 16)
            if not data:
                break
            chunks.append(data)
            seen += data.count(b"\n")
    time.sleep(rng.uniform(0.0, 0.004))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    while data := os.read(rfd, 1 << 16):
        chunks.append(data)
    os.close(rfd)
    lines = b"".join(chunks).decode().splitlines()
    KILLS[mode]["kills"] += 1
    KILLS[mode]["faults"] += lines.count("F")
    return [tuple(line.split()) for line in lines if line.count(" ") == 1]


def _check(path: str, acked: list[tuple[str, str]], full: bool = True, mode: str = "plain",
           before: int = 0) -> None:
    if full:
        report = vl.verify_chain(path)
        assert report.ok, report.summary()
    pubs = {"alice": A.public_bytes.hex(), "bob": B.public_bytes.hex(), "vera": V.public_bytes.hex()}
    db = sqlite3.connect(path)
    try:
        for who, op_id in acked:
            (n,) = db.execute("SELECT COUNT(*) FROM events WHERE actor = ? AND op_id = ?",
                              (pubs[who], op_id)).fetchone()
            assert n == 1, f"acknowledged {who}:{op_id} is in the log {n} times"
        (present,) = db.execute("SELECT COUNT(*) FROM events WHERE seq >= ?", (before,)).fetchone()
        assert present >= len(acked)
        KILLS[mode]["acked"] += len(acked)
        KILLS[mode]["present"] += present
    finally:
        db.close()
    with vl.open(f"sqlite:///{path}", clock=ManualClock()) as led:
        assert vl.check_conservation(led) == 10**9 + 10**6
        before = {n: (led.balance(n), led.stake(n)) for n in led.accounts()}
        keys = {"alice": A, "bob": B, "vera": V}
        for who, op_id in acked[-3:]:  # a retry after the crash is a no-op
            if op_id.startswith("t"):
                # retry with the same arguments is needed; transfers use random amounts, so
                # read them back from the log
                args = led.state.recorded(keys[who].public_bytes, op_id)[1]
                assert led.transfer(keys[who], *args, op_id=op_id).replayed
        assert before == {n: (led.balance(n), led.stake(n)) for n in led.accounts()}


def _kills(tmp_path, n: int, seed: int, mode: str = "plain") -> int:
    rng = random.Random(seed)
    total_acked = 0
    template = os.path.join(tmp_path, "template.db")
    _setup(template)  # closed cleanly: checkpointed into the one file
    for k in range(n):
        path = os.path.join(tmp_path, f"crash{k}.db")
        shutil.copyfile(template, path)
        acked = _run_and_kill(path, seed * 1000 + k, rng, mode)
        total_acked += len(acked)
        _check(path, acked, mode=mode, before=5)
    return total_acked


def test_sigkill_50_times(tmp_path):
    acked = _kills(tmp_path, 50, seed=1)
    assert acked > 150  # the kills landed while operations were being applied
    print(f"\nSIGKILL plain: {KILLS['plain']}")


@pytest.mark.parametrize("mode", ["faults", "diskfull", "threads"])
def test_sigkill_under_faults(tmp_path, mode):
    """20 kills each of writers whose commits fail at random, whose disk fills up, or whose
    three threads share one ledger object; nothing acknowledged is lost, nothing is doubled."""
    acked = _kills(tmp_path, 20, seed=2 + MODES.index(mode), mode=mode)
    assert acked > 40
    if mode != "threads":
        assert KILLS[mode]["faults"] > 0  # faults were injected and survived
    print(f"\nSIGKILL {mode}: {KILLS[mode]}")


@pytest.mark.slow
def test_sigkill_200_times_accumulating(tmp_path):
    """Heavier: 200 kills of writers that all append to the same, growing file (the full
    chain is re-verified every 10th kill and at the end; every kill checks its own ops)."""
    rng = random.Random(7)
    path = os.path.join(tmp_path, "grow.db")
    _setup(path)
    acked_all: list[tuple[str, str]] = []
    for k in range(200):
        mode = MODES[k % 4]
        (before,) = sqlite3.connect(path).execute("SELECT COUNT(*) FROM events").fetchone()
        acked = _run_and_kill(path, 10_000 + k, rng, mode)
        _check(path, acked, full=(k % 10 == 9), mode=mode, before=before)
        acked_all += acked
    print(f"\nSIGKILL accumulating, by mode: {KILLS}")
    _check(path, acked_all)
    assert len(acked_all) > 500
