"""The checked-in builds under protocols/build/ are exactly what the sources compile to."""

from __future__ import annotations

import json

import pytest

# protocols/testing/ForceSend.vy uses selfdestruct on purpose: it forces ether into a contract to test
# JobEscrow's held <= balance invariant; vyper's deprecation warning about it is expected.
pytestmark = pytest.mark.filterwarnings("ignore:.*selfdestruct.*is deprecated")

from vcompute.ledger.contracts import CONTRACTS, compile_contract, load_contract, protocols_dir

pytest.importorskip("vyper")


@pytest.mark.parametrize("name", CONTRACTS)
def test_checked_in_build_matches_a_fresh_compile(name):
    stored = json.loads((protocols_dir() / "build" / f"{name}.json").read_text())
    fresh = compile_contract(name)
    assert stored["source_sha256"] == fresh["source_sha256"], \
        f"{name}.vy changed since its build: run `python -m vcompute.ledger.contracts`"
    assert stored["abi"] == fresh["abi"]
    assert stored["bytecode"] == fresh["bytecode"], f"rebuild {name}: `python -m vcompute.ledger.contracts`"
    assert stored["vyper"] == fresh["vyper"]


def test_stale_build_is_refused(tmp_path, monkeypatch):
    import shutil

    d = tmp_path / "protocols"
    shutil.copytree(protocols_dir(), d)
    (d / "VLedger.vy").write_text((d / "VLedger.vy").read_text() + "\n# edited\n")
    monkeypatch.setenv("VCOMPUTE_PROTOCOLS", str(d))
    with pytest.raises(RuntimeError, match="stale"):
        load_contract("VLedger")
