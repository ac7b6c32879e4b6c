"""EVM ledger throughput side by side: ``evm://`` (revm, embedded) and ``evm+http://`` on a real anvil node.

Each row runs ledger transfers through the ``Ledger`` API (every one a
signed transaction on anvil, acknowledged only with its mined receipt) and
prints transfers/s and the client's own CPU time per transfer (what the
client costs, apart from what the node and the machine's other load cost).
anvil gets a fresh node per repetition; the median of the repetitions is
printed with the range. The node's own ceiling is measured on the same node,
alternating with the ledger transfer by transfer: the same contract call from
another account, signed beforehand and sent raw with
``eth_sendRawTransactionSync``, without the ledger client; the ledger row is
printed as a fraction of it (1.0: the client adds nothing the node notices). Targets (issue 16): ``evm://`` >=
5,000/s, anvil >= 300/s.

Timings on a shared machine are noisy: anvil competes with everything else for the
same cores. Read the CPU-per-transfer column and rerun.

Run: python benchmarks/evm.py [--quick] [--no-anvil]
"""

from __future__ import annotations

import argparse
import statistics
import time

import vcompute.ledger as vl
from vcompute.core.signing import key_from_name


def _transfers(led, n: int) -> tuple[float, float]:
    """(transfers/s, client CPU seconds per transfer) of ``n`` transfers after a short warm-up."""
    a, b = key_from_name("bench-a"), key_from_name("bench-b")
    led.open_account(a, "a", op_id="open-a")
    led.open_account(b, "b", op_id="open-b")
    led.mint(vl.default_minter(), "a", 10**17, op_id="fund")
    for i in range(10):
        led.transfer(a, "b", 1, op_id=f"w{i}")
    ids = [f"t{i}" for i in range(n)]
    wall, cpu = time.perf_counter(), time.process_time()
    for i in ids:
        led.transfer(a, "b", 1, op_id=i)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    vl.check_conservation(led)
    return n / wall, cpu / n


def bench_revm(n: int) -> tuple[float, float]:
    """``evm://`` transfers."""
    led = vl.open("evm://")
    try:
        return _transfers(led, n)
    finally:
        led.close()


def bench_anvil(n: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """``evm+http://`` transfers on a fresh anvil node, and the node's ceiling for the same transfers.

    The ceiling: as many ledger transfers from another account (the same contract call), signed
    beforehand and sent raw with ``eth_sendRawTransactionSync``: the node alone, without the
    ledger client. The two alternate one transfer at a time, so both see the same chain length
    (anvil slows as its chain grows) and the same machine load. Returns ((transfers/s, client CPU
    s per transfer) of the ledger, the same of the ceiling).
    """
    from vcompute.ledger.evm import _name_id
    from vcompute.ledger.node import AnvilNode
    from vcompute.ledger.tx import sign_1559

    with AnvilNode() as node:
        led = vl.open(node.url)
        try:
            a, b, c = key_from_name("bench-a"), key_from_name("bench-b"), key_from_name("bench-c")
            for k, name in ((a, "a"), (b, "b"), (c, "c")):
                led.open_account(k, name, op_id=f"open-{name}")
            for name in ("a", "c"):
                led.mint(vl.default_minter(), name, 10**17, op_id=f"fund-{name}")
            acct, chain = led._account_of(c), led.chain
            nonce = chain.nonce(acct.address)
            raws = ["0x" + sign_1559(bytes(acct.key), chain_id=chain.chain_id, nonce=nonce + i,
                                     max_priority_fee=led.gas.tip, max_fee=led.gas.max_fee, gas=3_000_000,
                                     to=led.address, value=0,
                                     data=led._encode("transfer", [_name_id("b"), 1, f"c{i}"])).hex()
                    for i in range(n)]
            for i in range(10):
                led.transfer(a, "b", 1, op_id=f"w{i}")
            t_led = t_raw = c_led = c_raw = 0.0
            for i in range(n):
                w, p = time.perf_counter(), time.process_time()
                led.transfer(a, "b", 1, op_id=f"t{i}")
                w2, p2 = time.perf_counter(), time.process_time()
                if int(chain.request("eth_sendRawTransactionSync", [raws[i]])["status"], 16) != 1:
                    raise RuntimeError("a pre-signed ledger transfer reverted")
                w3, p3 = time.perf_counter(), time.process_time()
                t_led, c_led, t_raw, c_raw = t_led + w2 - w, c_led + p2 - p, t_raw + w3 - w2, c_raw + p3 - p2
            vl.check_conservation(led)
            assert led.balance("b") == 10 + 2 * n
            return (n / t_led, c_led / n), (n / t_raw, c_raw / n)
        finally:
            led.close()


def _row(label: str, runs: list[tuple[float, float]], target: float) -> str:
    rates = [r for r, _ in runs]
    cpu_us = statistics.median(c for _, c in runs) * 1e6
    med = statistics.median(rates)
    return (f"{label:<44} {med:>9,.0f}/s  (range {min(rates):,.0f}-{max(rates):,.0f})  "
            f"client CPU {cpu_us:>7,.0f} us/transfer  target >= {target:,.0f}: {'ok' if med >= target else 'MISSED'}")


def main(argv: list[str] | None = None) -> None:
    """Measure and print both rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (well under a minute)")
    ap.add_argument("--no-anvil", action="store_true", help="skip the anvil row")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per row (default 3)")
    args = ap.parse_args(argv)
    n_revm, n_anvil = (1000, 200) if args.quick else (5000, 500)
    revm, anvil, ceiling = [], [], []
    for _ in range(args.reps):  # interleaved, so both rows see the same machine load
        revm.append(bench_revm(n_revm))
        if not args.no_anvil:
            from vcompute.ledger.node import find_anvil

            if find_anvil() is None:
                print("anvil not installed (make setup): the anvil row is skipped")
                args.no_anvil = True
            else:
                led_run, node_run = bench_anvil(n_anvil)
                anvil.append(led_run)
                ceiling.append(node_run)
    print(_row(f"evm:// transfer (revm, {n_revm} per run)", revm, 5_000))
    if anvil:
        print(_row(f"evm+http:// transfer (anvil, {n_anvil} per run)", anvil, 300))
        print(_row("  node ceiling: the same, pre-signed, raw", ceiling, 300))
        ratio = statistics.median(a / c for (a, _), (c, _) in zip(anvil, ceiling))
        print(f"  ledger / node ceiling, median of the runs: {ratio:.2f}")


if __name__ == "__main__":
    main()
