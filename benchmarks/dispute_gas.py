"""Gas of the on-chain one-layer check of ``protocols/Dispute.vy``, and the largest layer a block holds.

The checked-in build bounds tensors at ``MAX_DIM = 256`` (Vyper lays memory
out by the bound, so a larger bound makes every check dearer). This script
compiles the same source with other bounds (benchmark builds, never checked
in), plays one dispute per (build, width, rows) on an embedded revm, honest
claimant against a challenger lying at the last layer, and prints the gas
of ``decide`` (the one-step check: Freivalds over F_p plus requantisation)
and whether it fits the 30M block gas limit. The transaction carries a
block's gas limit, so "does not fit" is an out-of-gas revert.

Run: python benchmarks/dispute_gas.py [--builds 256 384 512] [--widths 256 320 384 448 512] [--rows 1 32]
"""

from __future__ import annotations

import argparse
import re

BLOCK = 30_000_000


def build(max_dim: int) -> dict:
    """Compile Dispute.vy with ``MAX_DIM = max_dim`` (and the word bounds it implies)."""
    import vyper

    from vcompute.ledger.contracts import protocols_dir

    src = (protocols_dir() / "Dispute.vy").read_text()
    for name, value in (("MAX_DIM", max_dim), ("MAX_W8", max_dim * max_dim // 32), ("MAX_W32", max_dim * max_dim // 8)):
        src, n = re.subn(rf"^{name}: constant\(uint256\) = \d+", f"{name}: constant(uint256) = {value}", src, flags=re.M)
        assert n == 1, name
    out = vyper.compile_code(src, output_formats=["abi", "bytecode"])
    return {"abi": out["abi"], "bytecode": out["bytecode"]}


def decide_gas(b: dict, width: int, rows: int) -> int | None:
    """Gas of the one-step check of a ``width`` x ``width`` layer on ``rows`` rows; None if it does not fit a block."""
    from vcompute.ledger.dispute_client import DisputeChain, play
    from vcompute.verify.dispute.players import make_player
    from vcompute.verify.dispute.trace import QuantNet

    # this benchmark probes past the checked-in limits on purpose
    net = QuantNet.random(dims=(width,) * 3, rows=rows, seed=0, max_dim=1024, max_step_lanes=2**40)
    x0 = net.random_input(seed=1)
    chain = DisputeChain(move_timeout=100, build=b)
    h = make_player("honest", net, x0, seed=0, name="h")
    liar = make_player("lie_last", net, x0, seed=3, name="l")
    r = play(chain, h, liar, ops_root=net.ops_tree.root, input_state=h.honest_trace.leaves[0], bond=10**18)
    return r.decide_gas if r.how == "step" else None


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", type=int, nargs="+", default=[256, 384, 512])
    ap.add_argument("--widths", type=int, nargs="+", default=[128, 256, 320, 384, 448, 512])
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 32, 128])
    a = ap.parse_args()
    print(f"{'MAX_DIM':>7} {'width':>5} {'rows':>4} {'decide gas':>12}  fits 30M")
    for m in a.builds:
        b = build(m)
        for w in (w for w in a.widths if w <= m):
            for rows in a.rows:
                g = decide_gas(b, w, rows)
                print(f"{m:>7} {w:>5} {rows:>4} {g if g else '-':>12}  {'yes' if g else 'no'}", flush=True)


if __name__ == "__main__":
    main()
