"""Gas of every ledger and escrow operation, measured on the reference EVM (py-evm, ``evm://tester``).

Runs each operation of ``protocols/VLedger.vy`` through the ``Ledger`` API and
each transition of ``protocols/JobEscrow.vy`` directly, reads the gas each
transaction used from its receipt, and prints the table with what it costs
at the L1 and L2 gas price presets of :mod:`vcompute.ledger.gas`.
``--write`` regenerates ``protocols/gas.md`` and ``protocols/gas.json``, the
data the market's settlement cost reads (``vcompute.ledger.gas.gas_table``).

    python benchmarks/gas.py            # print the table
    python benchmarks/gas.py --write    # also write protocols/gas.md and protocols/gas.json

Gas is deterministic for a given bytecode and EVM version, so the table does
not depend on the machine; the prices are the presets' (their sources are in
the output).
py-evm, not revm, measures it: the embedded revm chain never ends a
transaction's journal (so that any snapshot can be restored), so storage it
touched stays warm and its receipts' gas is a lower bound (about 20% low for
a transfer).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import vcompute.ledger as vl
from vcompute.core.signing import key_from_name
from vcompute.ledger.gas import PRESETS

ROOT = Path(__file__).resolve().parents[1]
#: (column label, gas price in gwei, ETH price in USD): the presets of vcompute.ledger.gas
PRICES = tuple((f"{k.upper()} USD ({p.gwei:g} gwei, {p.eth_usd:,.0f} USD/ETH)", p.gwei, p.eth_usd)
               for k, p in PRESETS.items())


def ledger_gas() -> list[tuple[str, int]]:
    """(operation, gas) for each VLedger operation, in a realistic order."""
    led = vl.open("evm://tester?withdraw_delay=10")
    alice, bob, vera = key_from_name("gas-alice"), key_from_name("gas-bob"), key_from_name("gas-vera")
    minter = vl.default_minter()
    rows: list[tuple[str, int]] = []

    def op(label, fn, *args, **kw):
        ref = fn(*args, **kw).ref
        rc = led.chain.tester.get_transaction_receipt(ref if ref.startswith("0x") else "0x" + ref)
        rows.append((label, int(rc["gas_used"])))

    op("open_account", led.open_account, alice, "alice", op_id="o-a")
    led.open_account(bob, "bob", op_id="o-b")
    led.open_account(vera, "vera", op_id="o-v")
    op("mint", led.mint, minter, "alice", 10**6, op_id="m-a")
    led.mint(minter, "bob", 10**6, op_id="m-b")
    op("transfer", led.transfer, alice, "bob", 100, op_id="t-1")
    op("transfer (to a fresh balance slot)", led.transfer, alice, "vera", 100, op_id="t-2")
    op("burn", led.burn, alice, 10, op_id="b-1")
    dl = led.now() + 100
    op("escrow_open (with verifier)", led.escrow_open, alice, "job-1", provider="bob", amount=500, deadline=dl,
       verifier="vera", op_id="e-1")
    op("stake_deposit", led.stake_deposit, bob, 1000, op_id="s-d")
    op("stake_lock", led.stake_lock, bob, "job-1", 300, op_id="s-l")
    op("escrow_release (by the verifier)", led.escrow_release, vera, "job-1", op_id="e-r")
    led.escrow_open(alice, "job-2", provider="bob", amount=500, deadline=led.now() + 100, verifier="vera", op_id="e-2")
    led.stake_lock(bob, "job-2", 300, op_id="s-l2")
    op("stake_slash", led.stake_slash, vera, "job-2", 300, to="alice", op_id="s-s")
    op("escrow_refund (by the verifier)", led.escrow_refund, vera, "job-2", op_id="e-f")
    op("stake_unbond", led.stake_unbond, bob, 400, op_id="s-u")
    led.advance(11)
    op("stake_withdraw", led.stake_withdraw, bob, op_id="s-w")
    op("commit (digest + metadata)", led.commit, alice, "result-1", b"\x11" * 32, metadata={"job": "job-1"},
       op_id="c-1")
    led.close()
    return rows


def escrow_gas() -> list[tuple[str, int]]:
    """(transition, gas) for the JobEscrow happy path and its slash / cancel / timeout paths."""
    from eth_abi import encode

    from eth_tester import EthereumTester, PyEVMBackend

    from vcompute.ledger.abi import keccak256
    from vcompute.ledger.contracts import load_contract

    tester = EthereumTester(PyEVMBackend())
    deployer, consumer, provider, verifier = tester.get_accounts()[:4]
    build = load_contract("JobEscrow")
    abi = {f["name"]: f for f in build["abi"] if f.get("type") == "function"}
    ctor = next((f for f in build["abi"] if f.get("type") == "constructor"), {"inputs": []})
    ctor_args = encode([i["type"] for i in ctor["inputs"]],
                       [[] if i["type"].endswith("[]") else 0 for i in ctor["inputs"]]) if ctor["inputs"] else b""
    h = tester.send_transaction({"from": deployer, "gas": 8_000_000,
                                 "data": "0x" + build["bytecode"].removeprefix("0x") + ctor_args.hex()})
    address = tester.get_transaction_receipt(h)["contract_address"]

    def call(fn, sender, *args, value=0):
        types = [i["type"] for i in abi[fn]["inputs"]]
        data = keccak256(f"{fn}({','.join(types)})".encode())[:4] + encode(types, list(args))
        h = tester.send_transaction({"from": sender, "to": address, "data": "0x" + data.hex(), "value": value,
                                     "gas": 3_000_000})
        rc = tester.get_transaction_receipt(h)
        assert rc["status"] == 1, fn
        return int(rc["gas_used"])

    class _Clock:
        @staticmethod
        def advance(seconds):
            tester.time_travel(int(tester.get_block_by_number("pending")["timestamp"]) + seconds)

    chain = _Clock()

    pay, stake = 10**18, 3 * 10**17
    rows = []

    def job(n):
        return n.to_bytes(32, "big")

    rows.append(("post", call("post", consumer, job(1), verifier, consumer, stake, 100, 200, 300, value=pay)))
    rows.append(("accept (with stake)", call("accept", provider, job(1), value=stake)))
    rows.append(("commit_result", call("commit_result", provider, job(1), b"\xaa" * 32)))
    chain.advance(301)
    rows.append(("finalize (after the challenge window)", call("finalize", provider, job(1))))
    rows.append(("withdraw", call("withdraw", provider)))
    call("post", consumer, job(2), verifier, consumer, stake, 100, 200, 300, value=pay)
    call("accept", provider, job(2), value=stake)
    call("commit_result", provider, job(2), b"\xbb" * 32)
    rows.append(("slash (by the verifier)", call("slash", verifier, job(2))))
    call("post", consumer, job(3), verifier, consumer, stake, 100, 200, 300, value=pay)
    rows.append(("cancel (before acceptance)", call("cancel", consumer, job(3))))
    call("post", consumer, job(4), verifier, consumer, stake, 100, 200, 300, value=pay)
    call("accept", provider, job(4), value=stake)
    chain.advance(201)
    rows.append(("timeout (no result in time)", call("timeout", consumer, job(4))))
    return rows


def table(rows: list[tuple[str, int]]) -> list[str]:
    """Markdown rows: operation, gas, and USD at each price of :data:`PRICES`."""
    out = ["| operation | gas | " + " | ".join(p[0] for p in PRICES) + " |",
           "| --- | ---: | " + " | ".join("---:" for _ in PRICES) + " |"]
    for name, g in rows:
        usd = [g * gwei * 1e-9 * eth for _, gwei, eth in PRICES]
        out.append(f"| {name} | {g:,} | " + " | ".join(f"{u:.4g}" for u in usd) + " |")
    return out


def by_kind(rows: list[tuple[str, int]]) -> dict[str, int]:
    """Operation kind (a label's first word) -> gas, the first row of each kind (the common case)."""
    out: dict[str, int] = {}
    for label, g in rows:
        out.setdefault(label.split(" ")[0], g)
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure and print (``--write``: also write protocols/gas.md and protocols/gas.json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the same run (it takes seconds)")
    ap.add_argument("--write", action="store_true", help="regenerate protocols/gas.md and protocols/gas.json")
    args = ap.parse_args(argv)
    led_rows, esc_rows = ledger_gas(), escrow_gas()
    sources = [f"- **{k.upper()}**: {p.name}, {p.gwei:g} gwei, {p.eth_usd:,.0f} USD/ETH. Source: {p.source}."
               for k, p in PRESETS.items()]
    lines = ["# Gas per operation", "",
             "<!-- generated by `python benchmarks/gas.py --write`; do not edit by hand -->", "",
             "Measured on the reference EVM (py-evm through eth-tester, `evm://tester`) from each transaction's receipt, with "
             "the compiled `protocols/*.vy` bytecode (vyper 0.4.3). Gas does not depend on the machine; the "
             "USD columns price it at the presets of `vcompute.ledger.gas` (`settlement.gas.chain` in a market "
             "config), whose sources are below. 21,000 of each figure is the base cost of any transaction. "
             "The same figures, keyed by operation, are in `protocols/gas.json`, which the market's settlement "
             "cost reads.", "", *sources, "",
             "## VLedger (the ledger: `evm://`, `evm+http://`)", "", *table(led_rows), "",
             "## JobEscrow (per-job escrow with stake, challenge window and slashing)", "", *table(esc_rows), ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        data = {"generated_by": "python benchmarks/gas.py --write",
                "evm": "py-evm (eth-tester), compiled protocols/*.vy (vyper 0.4.3)",
                "contracts": {"VLedger": by_kind(led_rows), "JobEscrow": by_kind(esc_rows)},
                "rows": {"VLedger": dict(led_rows), "JobEscrow": dict(esc_rows)}}
        (ROOT / "protocols" / "gas.md").write_text(text)
        (ROOT / "protocols" / "gas.json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {ROOT / 'protocols' / 'gas.md'} and gas.json")


if __name__ == "__main__":
    main()
