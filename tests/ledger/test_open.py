"""Opening ledgers by URL, the LEDGERS registry and third-party backends, lean imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

import vcompute.ledger as vl
from vcompute.core.signing import key_from_name
from vcompute.ledger.memory import MemoryLedger


@pytest.mark.parametrize("url, match", [
    ("", "scheme://"),
    ("memory", "scheme://"),
    (None, "scheme://"),
    ("postgres://db", "unknown ledger scheme 'postgres'.*known schemes: .*memory"),
    ("memory://somewhere", "no location"),
    ("memory://?withdraw_delay=soon", "must be a number"),
    ("memory://?withdraw_delay=-1", "withdraw_delay"),
    ("memory://?colour=blue", "unknown option"),
    ("sqlite://host/x.db", "no host"),
    ("sqlite:///", "names no file"),
    ("evm://mainnet", "evm://tester"),
    ("evm+http://", "names no host"),
])
def test_malformed_urls_are_clear_errors(url, match):
    with pytest.raises(vl.InvalidURL, match=match):
        vl.open(url)


def test_unreachable_node_is_a_clear_error():
    pytest.importorskip("web3")
    with pytest.raises(vl.InvalidURL, match="no usable JSON-RPC node"):
        vl.open("evm+http://127.0.0.1:9")


def test_options_and_minter():
    led = vl.open("memory://?withdraw_delay=7")
    assert led.withdraw_delay == 7.0 and led.minter_public == vl.default_minter().public_bytes
    boss = key_from_name("boss")
    led = vl.open("memory://", minter=boss)
    led.open_account(boss, "boss", op_id="o")
    with pytest.raises(vl.Unauthorized):
        led.mint(vl.default_minter(), "boss", 1, op_id="m")
    led.mint(boss, "boss", 1, op_id="m")
    with pytest.raises(vl.InvalidRequest, match="minter"):
        vl.open("memory://", minter=b"short")


def test_sqlite_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with vl.open("sqlite:///rel.db") as led:       # three slashes: relative path
        assert led.path == "rel.db"
    with vl.open(f"sqlite:///{tmp_path}/abs.db") as led:  # four slashes: absolute
        assert led.path == f"{tmp_path}/abs.db"
    assert (tmp_path / "rel.db").exists() and (tmp_path / "abs.db").exists()


def test_third_party_backend_registers_by_scheme():
    def factory(url, *, minter, clock=None, **options):
        return MemoryLedger(minter=minter, clock=clock, url=url)

    vl.LEDGERS.register("toy", factory)
    try:
        assert "toy" in vl.LEDGERS.names()
        assert vl.open("toy://anything").url == "toy://anything"
    finally:
        vl.LEDGERS.unregister("toy")


def test_entry_point_group_is_scanned(monkeypatch):
    from importlib import metadata

    class EP:
        name, value, group = "epledger", "vcompute.ledger.memory:open_memory", "vcompute.ledgers"

    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: [EP()] if kw.get("group") == "vcompute.ledgers" else real(**kw))
    reg = vl.LEDGERS.__class__("ledger", group="vcompute.ledgers")
    assert "epledger" in reg.names()
    from vcompute.ledger.memory import open_memory

    assert reg.get("epledger") is open_memory


def test_builtin_backends_are_registered():
    assert {"memory", "sqlite", "evm", "evm+http", "evm+https"} <= set(vl.LEDGERS.names())


def test_import_and_memory_ledger_pull_in_no_heavy_framework():
    code = ("import sys, vcompute.ledger as vl; led = vl.open('memory://'); "
            "print(' '.join(m for m in ('web3', 'eth_tester', 'vyper', 'Crypto', 'py_ecc', 'torch', 'jax', "
            "'simpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == []


def test_sqlite_synchronous_option(tmp_path):
    with pytest.raises(vl.InvalidURL, match="synchronous"):
        vl.open(f"sqlite:///{tmp_path}/a.db?synchronous=off")
    with vl.open(f"sqlite:///{tmp_path}/b.db?synchronous=normal") as led:
        assert led._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with vl.open(f"sqlite:///{tmp_path}/c.db") as led:
        assert led._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert led._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
