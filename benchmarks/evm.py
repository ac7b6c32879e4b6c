"""EVM ledger throughput side by side: ``evm://`` (revm, embedded) and ``evm+http://`` on a real anvil node.

Each row runs ledger transfers through the ``Ledger`` API (every one a
signed transaction on anvil, acknowledged only with its mined receipt) and
prints transfers/s and the client's own CPU time per transfer (what the
client costs, apart from what the node and the machine's other load cost).
anvil gets a fresh node per repetition; the median of the repetitions is
printed with the range. The node's own ceiling is measured beside it on the
same fresh node: plain ether transfers, signed beforehand, sent one at a time
with ``eth_sendRawTransactionSync`` (no contract, no ledger client), and the
ledger row is printed as a fraction of it. Targets (issue 16): ``evm://`` >=
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


def bench_anvil(n: int) -> tuple[float, float]:
    """``evm+http://`` transfers on a fresh anvil node."""
    from vcompute.ledger.node import AnvilNode

    with AnvilNode() as node:
        led = vl.open(node.url)
        try:
            return _transfers(led, n)
        finally:
            led.close()


def bench_anvil_ceiling(n: int) -> tuple[float, float]:
    """The node alone: ``n`` pre-signed plain ether transfers, each sent and mined in one round trip."""
    from vcompute.core.signing import key_from_name as _k
    from vcompute.ledger.node import AnvilNode
    from vcompute.ledger.rpc_chain import NodeChain
    from vcompute.ledger.tx import sign_1559

    secret = _k("bench-ceiling").derive_secret("evm")
    from eth_account import Account

    sender = Account.from_key(secret).address
    with AnvilNode() as node:
        chain = NodeChain(node.rpc_url)
        chain.send_from_node({"to": sender, "value": 10**20})
        fee = 2 * chain.base_fee() + 1
        raws = ["0x" + sign_1559(secret, chain_id=chain.chain_id, nonce=i, max_priority_fee=1, max_fee=fee,
                                 gas=21_000, to=chain.deployer, value=1, data=b"").hex() for i in range(n + 10)]
        for r in raws[:10]:
            chain.request("eth_sendRawTransactionSync", [r])
        wall, cpu = time.perf_counter(), time.process_time()
        for r in raws[10:]:
            chain.request("eth_sendRawTransactionSync", [r])
        return n / (time.perf_counter() - wall), (time.process_time() - cpu) / n


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
                anvil.append(bench_anvil(n_anvil))
                ceiling.append(bench_anvil_ceiling(n_anvil))
    print(_row(f"evm:// transfer (revm, {n_revm} per run)", revm, 5_000))
    if anvil:
        print(_row(f"evm+http:// transfer (anvil, {n_anvil} per run)", anvil, 300))
        print(_row("  node ceiling (raw signed ether transfers)", ceiling, 300))
        ratio = statistics.median(a / c for (a, _), (c, _) in zip(anvil, ceiling))
        print(f"  ledger / node ceiling, median of the runs: {ratio:.2f}")


if __name__ == "__main__":
    main()
