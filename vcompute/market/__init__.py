"""The SimPy marketplace: providers, consumers, auditors, matching, settlement.

``import vcompute.market`` loads the configuration models and the plugin
registries only; SimPy is imported when a market runs
(:func:`run_market` / :class:`Market`).

Example:
    >>> from vcompute.market import run_market
    >>> out = run_market({"jobs": 40, "adversary": {"strategy": "strategic", "fraction": 0.25}}, seed=0)
    >>> out["ledger_conserved"], out["jobs_submitted"]
    (1, 40)
"""

from typing import Any

from vcompute.market.config import HARDWARE, UNITS_PER_USD, MarketParams
from vcompute.market.matching import MATCHERS
from vcompute.market.strategies import STRATEGIES, CheatOffer

#: Deprecated name of :data:`STRATEGIES` (the same registry).
MARKET_BEHAVIOURS = STRATEGIES

__all__ = ["HARDWARE", "MARKET_BEHAVIOURS", "MATCHERS", "STRATEGIES", "UNITS_PER_USD", "CheatOffer", "Market",
           "MarketParams", "run_market"]


def __getattr__(name: str) -> Any:
    # Market and run_market pull in SimPy: load them on first use only.
    if name in ("Market", "run_market"):
        from vcompute.market import sim

        return getattr(sim, name)
    raise AttributeError(f"module 'vcompute.market' has no attribute {name!r}")
