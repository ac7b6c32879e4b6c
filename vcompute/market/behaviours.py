"""Deprecated: the market's when-to-cheat decisions are *strategies*, in :mod:`vcompute.market.strategies`.

This module re-exports them under their old names so that outside code
keeps working: ``MARKET_BEHAVIOURS`` is :data:`~vcompute.market.strategies.STRATEGIES`
(the same registry object) and ``ProviderBehaviour`` is
:class:`~vcompute.market.strategies.Strategy`. "Behaviour" now means only
how a provider computes a job's output (:mod:`vcompute.workloads.behaviours`).
"""

from vcompute.market.strategies import (CHEAT_SAVINGS, STRATEGIES, CheatOffer, Colluding, Honest, Lazy, LowPrecision,
                                        Strategic, Strategy, StreakThenCheat, unit_hash)

__all__ = ["CHEAT_SAVINGS", "MARKET_BEHAVIOURS", "CheatOffer", "Colluding", "Honest", "Lazy", "LowPrecision",
           "ProviderBehaviour", "Strategic", "StreakThenCheat", "unit_hash"]

#: Deprecated alias of :data:`vcompute.market.strategies.STRATEGIES`.
MARKET_BEHAVIOURS = STRATEGIES
#: Deprecated alias of :class:`vcompute.market.strategies.Strategy`.
ProviderBehaviour = Strategy

import warnings  # noqa: E402

warnings.warn("vcompute.market.behaviours is deprecated: import vcompute.market.strategies",
              DeprecationWarning, stacklevel=2)
