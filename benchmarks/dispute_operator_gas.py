"""Gas of the operator checks of ``protocols/OperatorStep.vy`` called directly, against the row width.

``decide`` of ``protocols/OperatorGame.vy`` adds the Merkle openings to these
(``experiments/dispute-operator-gas.toml`` measures the whole transaction);
this isolates the arithmetic: ``add_ok`` and ``gelu_ok`` decode one or two
float32 values, ``ln_ok`` decodes the whole row, computes its statistics
exactly and one integer square root. Each call is a transaction on an
embedded revm (21,000 of each figure is the base cost of any transaction).

Run: python benchmarks/dispute_operator_gas.py [--widths 8 32 128 256]
"""

from __future__ import annotations

import argparse


def main() -> None:
    """Print the table."""
    import numpy as np

    from vcompute.ledger.op_dispute import OpChain
    from vcompute.verify.dispute.float_trace import pack_float32

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 32, 128, 256])
    a = ap.parse_args()
    chain = OpChain()
    chain.fund("bench", 10**20)
    rng = np.random.default_rng(0)
    bits = lambda v: int(np.float32(v).view("<u4"))  # noqa: E731
    gas = {}
    for x in (-2.5, 0.3, 1e-20, 9.0):
        chain.call("bench", "gelu_ok", bits(x), bits(0.0), 18, on="op_step")
        gas.setdefault("gelu_ok", []).append(chain.last_gas)
        chain.call("bench", "add_ok", bits(x), bits(1.5), bits(x + 1.5), 24, on="op_step")
        gas.setdefault("add_ok", []).append(chain.last_gas)
    for name, g in gas.items():
        print(f"{name:>8}: {min(g):,}-{max(g):,} gas (any width)")
    print(f"{'width':>8} {'ln_ok gas':>10}")
    for d in a.widths:
        x = rng.standard_normal(d).astype(np.float32)
        chain.call("bench", "ln_ok", pack_float32(x), d, bits(1.0), bits(0.0), d // 2, bits(0.0), 12, on="op_step")
        print(f"{d:>8} {chain.last_gas:>10,}", flush=True)


if __name__ == "__main__":
    main()
