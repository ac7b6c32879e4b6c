"""A router that also explores at the policy level: a bandit over cloud-only, market-only and per-job hybrid.

The per-job :class:`~vcompute.market.routing.Hybrid` router judges the market
by the market its own flow meets. That market depends on the flow: a lazy
cheater answers at once, so under a thin flow it is idle first and wins most
jobs, and a per-job comparison sees a worse market than a consumer sending
everything would (``proofs/market.md``, "A router that explores policies").

:class:`PolicyBandit` runs whole policies in blocks of ``block_jobs`` routed
jobs per consumer and kind, long enough for the market to reach the steady
state of that policy's flow. A block's evidence is what the consumer observed
in its second half (results resolved after the block's flow had settled in),
valued by :meth:`~vcompute.market.routing.ConsumerView.dec_cost` on those
counts alone: public evidence only (payments, audit and dispute outcomes, no
results), never hidden truth. The cloud's cost per correct result is public
(its price and availability), so the cloud arm needs no exploration.

Schedule: block 0 runs market-only, block 1 the per-job hybrid; from then on
each block exploits the arm with the lowest estimated cost, except at blocks
``n = m^2`` (m >= 2), which re-run the arm measured least recently among the
two market arms. Up to block ``N`` that is at most ``2 + sqrt(N)`` exploring
blocks, a vanishing share of the run (the bound is in ``proofs/market.md``).
"""

from __future__ import annotations

import math
from typing import Any

from vcompute.market.routing import ROUTERS, ConsumerView, Hybrid, Seen

__all__ = ["ARMS", "PolicyBandit"]

#: The policies :class:`PolicyBandit` chooses among.
ARMS = ("cloud", "dec", "hybrid")


class _Kind:
    __slots__ = ("n", "block", "arm", "mark", "est", "age", "last_cloud")

    def __init__(self) -> None:
        self.n = 0  # jobs of this kind routed in the current block
        self.block = 0
        self.arm = "dec"
        self.mark: Seen | None = None  # the counts at the block's midpoint
        self.est: dict[str, float] = {}
        self.age: dict[str, int] = {}
        self.last_cloud = 0.0


@ROUTERS.register("bandit")
class PolicyBandit:
    """Whole policies in blocks; exploit the cheapest measured one, re-explore at square block numbers.

    Args:
        block_jobs: jobs of one kind a consumer routes per block (use at least
            a challenge window's and a deadline's worth of its jobs).
        fallback_at: the per-job hybrid arm's fallback (see
            :class:`~vcompute.market.routing.Hybrid`); the market-only arm never
            falls back, as the pure policy does not.
        **hybrid: further keyword arguments of the per-job
            :class:`~vcompute.market.routing.Hybrid` arm.
    """

    def __init__(self, *, block_jobs: int = 500, fallback_at: float | None = 0.5, **hybrid: Any) -> None:
        if isinstance(block_jobs, bool) or not isinstance(block_jobs, int) or block_jobs < 2:
            raise ValueError(f"routing_params.block_jobs must be an int >= 2, got {block_jobs!r}")
        self.block_jobs = block_jobs
        self.inner = Hybrid(fallback_at=fallback_at, **hybrid)
        self.kinds: dict[str, _Kind] = {}
        self._arm = "dec"

    @property
    def fallback_at(self) -> float | None:
        """The fallback of the arm now running (the market-only arm has none)."""
        return self.inner.fallback_at if self._arm == "hybrid" else None

    def arm(self, kind: str) -> str:
        """The policy now running for ``kind`` (``"dec"`` before any job of it)."""
        k = self.kinds.get(kind)
        return "dec" if k is None else k.arm

    def route(self, view: ConsumerView, job: Any) -> str:
        """Route ``job`` by the arm of its kind's current block, measuring and switching at block edges."""
        kind = job.jtype.kind
        k = self.kinds.get(kind)
        if k is None:
            k = self.kinds[kind] = _Kind()
        k.n += 1
        if k.n == self.block_jobs // 2:
            k.mark, k.last_cloud = view._s(kind).copy(), 0.0
        elif k.n > self.block_jobs:
            self._close(view, job, k)
        self._arm = k.arm
        if k.arm == "cloud":
            return "cloud"
        if k.arm == "dec":
            return "dec"
        side = self.inner.route(view, job)
        k.last_cloud += side == "cloud"
        return side

    def _close(self, view: ConsumerView, job: Any, k: _Kind) -> None:
        if k.arm != "cloud" and k.mark is not None:
            k.est[k.arm] = self._cost(view, job, k)
            k.age[k.arm] = k.block
        k.est["cloud"] = view.cloud_cost(job)
        k.block += 1
        k.n, k.mark, k.last_cloud = 1, None, 0.0
        if k.block == 1:
            k.arm = "hybrid"
        elif math.isqrt(k.block) ** 2 == k.block and k.block >= 4:
            k.arm = min(("dec", "hybrid"), key=lambda a: k.age.get(a, -1))
        else:
            k.arm = min(k.est, key=lambda a: (k.est[a], ARMS.index(a)))

    def _cost(self, view: ConsumerView, job: Any, k: _Kind) -> float:
        """The block's realised cost per correct result, from its second half's public evidence."""
        seen = view._s(job.jtype.kind).since(k.mark)
        d = view.dec_cost(job, seen=seen) if seen.resolved else float("inf")
        if k.arm == "dec":
            return d
        # The per-job arm's mix: its cloud jobs at the cloud's (public) cost, its market jobs at the block's.
        n_cloud, n = k.last_cloud, max(seen.routed, 1)
        c = view.cloud_cost(job)
        if n_cloud >= n:
            return c
        return (n_cloud * c + (n - n_cloud) * d) / n
