"""What settling ledger operations on an Ethereum chain costs: gas per operation, gas prices, USD.

The gas of every operation of ``protocols/VLedger.vy`` and
``protocols/JobEscrow.vy`` is measured by ``benchmarks/gas.py`` and shipped
as data, ``protocols/gas.json`` (with its table ``protocols/gas.md``); this
module reads it. A run's settlement cost is its ledger operations
(:meth:`vcompute.ledger.Ledger.op_counts`) times their gas
(:func:`settlement_gas`), times a gas price in gwei and ETH's price in USD
(:class:`GasPrice`, :data:`PRESETS`, :func:`gas_usd`).

Example:
    >>> g = settlement_gas({"escrow_open": 1, "stake_lock": 1, "escrow_release": 1})
    >>> g == sum(gas_table()[k] for k in ("escrow_open", "stake_lock", "escrow_release"))
    True
    >>> round(gas_usd(g, PRESETS["l1"]) / gas_usd(g, PRESETS["l2"]))
    300
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["PRESETS", "GasPrice", "gas_table", "gas_usd", "preset", "settlement_gas"]


@dataclass(frozen=True)
class GasPrice:
    """A gas price and an ETH price: what one unit of gas costs in USD.

    Attributes:
        name: what the price is for.
        gwei: price of one gas, in gwei (1e-9 ETH).
        eth_usd: price of one ETH in USD.
        source: where the figures come from, and on what date.
    """

    name: str
    gwei: float
    eth_usd: float
    source: str = ""

    def __post_init__(self) -> None:
        for f in ("gwei", "eth_usd"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e9:
                raise ValueError(f"GasPrice.{f} must be a finite number >= 0, got {v!r}")

    @property
    def usd_per_gas(self) -> float:
        """USD per unit of gas."""
        return self.gwei * 1e-9 * self.eth_usd


_ETH_USD = 2921.0
_ETH_SOURCE = "ETH at 2,921 USD on 2025-12-25 (GlobeNewswire, 2025-12-26, via menafn.com/1110527355)"

#: Named gas prices (a config picks one by name: ``settlement.gas.chain``).
PRESETS: dict[str, GasPrice] = {
    "l1": GasPrice("Ethereum mainnet (L1)", 3.0, _ETH_USD,
                   "L1 gas about 3 gwei: 3.146 gwei average in February 2025 (vidyoda.com/14066.html, Ethereum "
                   "gas fee statistics 2025), 2.7 gwei average for 2025 (mexc.com learn, ETH gas fees guide, "
                   f"2025); {_ETH_SOURCE}"),
    "l2": GasPrice("Arbitrum One (L2), execution gas only", 0.01, _ETH_USD,
                   "Arbitrum One's L2 gas price floor, 0.01 gwei (docs.arbitrum.io, How Arbitrum works: gas and "
                   "fees, read 2025; ArbOS 51 raised it to 0.02 gwei); the L1 data fee a rollup adds per "
                   f"transaction is not included; {_ETH_SOURCE}"),
}


def preset(name: str) -> GasPrice:
    """The preset ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown gas price preset {name!r}; known: {', '.join(PRESETS)}") from None


@lru_cache(maxsize=None)
def _load() -> dict:
    from vcompute.ledger.contracts import protocols_dir

    path = protocols_dir() / "gas.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no gas table at {path}; generate it with `python benchmarks/gas.py --write`") \
            from None


def gas_table(contract: str = "VLedger") -> dict[str, int]:
    """Gas of each operation of ``contract`` (``VLedger``: keyed by ledger operation kind; ``JobEscrow``).

    Raises:
        ValueError: for a contract the table does not have.
    """
    tables = _load()["contracts"]
    if contract not in tables:
        raise ValueError(f"protocols/gas.json has no contract {contract!r}; it has {', '.join(tables)}")
    return dict(tables[contract])


def settlement_gas(op_counts: Mapping[str, int]) -> int:
    """Gas of settling these ledger operations on chain: each count times its VLedger gas.

    Args:
        op_counts: operation kind -> how many (e.g. :meth:`vcompute.ledger.Ledger.op_counts`).

    Raises:
        ValueError: for an operation kind the gas table does not have, or a count that is not an int >= 0.
    """
    table = gas_table("VLedger")
    total = 0
    for kind, n in op_counts.items():
        if kind not in table:
            raise ValueError(f"no gas for ledger operation {kind!r}; the table has {', '.join(table)}")
        if type(n) is not int or n < 0:
            raise ValueError(f"op_counts[{kind!r}] must be an int >= 0, got {n!r}")
        total += n * table[kind]
    return total


def gas_usd(gas: int, price: GasPrice) -> float:
    """USD of ``gas`` at ``price``."""
    return gas * price.usd_per_gas
