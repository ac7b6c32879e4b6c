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

__all__ = ["ARMS", "SCHEDULES", "PolicyBandit"]

#: The policies :class:`PolicyBandit` chooses among.
ARMS = ("cloud", "dec", "hybrid")


class _Kind:
    __slots__ = ("n", "block", "arm", "mark", "est", "low", "age", "last_cloud", "seen_market")

    def __init__(self) -> None:
        self.n = 0  # jobs of this kind routed in the current block
        self.block = 0
        self.arm = "dec"
        self.mark: Seen | None = None  # the counts at the block's midpoint
        self.est: dict[str, float] = {}  # each arm's cost per correct result, last measured
        self.low: dict[str, float] = {}  # the same at the lower ends of its Wilson intervals
        self.age: dict[str, int] = {}
        self.last_cloud = 0.0
        self.seen_market = float("inf")  # the market's cost as the per-job arm's last block saw it


def _explores(block: int, schedule: str) -> bool:
    """Whether ``block`` (>= 2) is a re-exploration point of ``schedule``."""
    if schedule == "square":
        return block >= 4 and math.isqrt(block) ** 2 == block
    if schedule == "power4":
        return block >= 4 and block & (block - 1) == 0 and (block.bit_length() - 1) % 2 == 0
    return False


#: Re-exploration schedules (:class:`PolicyBandit`'s ``schedule``).
SCHEDULES = ("square", "power4", "none")


@ROUTERS.register("bandit")
class PolicyBandit:
    """Whole policies in blocks; exploit the cheapest measured one, re-explore on a sparse schedule.

    Args:
        block_jobs: jobs of one kind a consumer routes per block (use at least
            a challenge window's and a deadline's worth of its jobs, and more
            than the market's start-up transient: its second half is the
            evidence).
        first_jobs: the length of block 0, the market alone from a cold start (None: twice
            ``block_jobs``), long enough that its second half is past the start-up transient in
            which idle lazy cheaters win most jobs.
        fallback_at: the per-job hybrid arm's fallback (see
            :class:`~vcompute.market.routing.Hybrid`); the market-only arm never
            falls back, as the pure policy does not.
        schedule: the re-exploration points: ``square`` (blocks ``m^2``,
            m >= 2), ``power4`` (blocks ``4^m``, m >= 1) or ``none``.
        reexplore_z: re-explore an arm only if the lower end of its last
            measurement (Wilson intervals of this width on its fraud and
            no-result rates) is below the exploited arm's cost; None
            re-explores on every point of the schedule.
        **hybrid: further keyword arguments of the per-job
            :class:`~vcompute.market.routing.Hybrid` arm.
    """

    def __init__(self, *, block_jobs: int = 1000, first_jobs: int | None = None, fallback_at: float | None = 0.5,
                 schedule: str = "power4", reexplore_z: float | None = 2.0, **hybrid: Any) -> None:
        if isinstance(block_jobs, bool) or not isinstance(block_jobs, int) or block_jobs < 2:
            raise ValueError(f"routing_params.block_jobs must be an int >= 2, got {block_jobs!r}")
        if first_jobs is not None and (isinstance(first_jobs, bool) or not isinstance(first_jobs, int)
                                       or first_jobs < 2):
            raise ValueError(f"routing_params.first_jobs must be an int >= 2 or None, got {first_jobs!r}")
        self.first_jobs = 2 * block_jobs if first_jobs is None else first_jobs
        if schedule not in SCHEDULES:
            raise ValueError(f"routing_params.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if reexplore_z is not None and (isinstance(reexplore_z, bool) or not isinstance(reexplore_z, (int, float))
                                        or not reexplore_z >= 0):
            raise ValueError(f"routing_params.reexplore_z must be a number >= 0 or None, got {reexplore_z!r}")
        self.block_jobs, self.schedule = block_jobs, schedule
        self.reexplore_z = None if reexplore_z is None else float(reexplore_z)
        self.inner = Hybrid(fallback_at=fallback_at, **hybrid)
        self.kinds: dict[str, _Kind] = {}
        self._arm = "dec"
        # Each market arm's own view: what the jobs it sent to the market showed, so that one arm's
        # backlog resolving during another's block is not taken for the other's evidence.
        self.views: dict[str, ConsumerView] = {}
        self.tagged: dict[Any, str] = {}  # market job key -> the arm that sent it

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
            for arm in ("dec", "hybrid"):
                if arm not in self.views:
                    self.views[arm] = ConsumerView(view.mk, view.costs, view.cloud)
        k.n += 1
        size = self.first_jobs if k.block == 0 else self.block_jobs
        if k.n == size // 2:
            mine = self.views.get(k.arm)
            k.mark, k.last_cloud = (mine._s(kind).copy() if mine is not None else None), 0.0
        elif k.n > size:
            self._close(view, job, k)
        self._arm = k.arm
        if k.arm == "cloud":
            return "cloud"
        mine = self.views[k.arm]
        mine.routed(job)
        side = "dec" if k.arm == "dec" else self.inner.route(mine, job)
        if side == "dec":
            self.tagged[job.key] = k.arm
        else:
            k.last_cloud += 1
        return side

    def observe(self, job: Any, what: str, *args: Any, **kw: Any) -> None:
        """The consumer's view was told ``what`` of ``job``: tell the view of the arm that sent it."""
        arm = self.tagged.get(job.key)
        if arm is None:
            return
        getattr(self.views[arm], what)(job, *args, **kw)
        if what in ("missed", "settled"):
            del self.tagged[job.key]

    def _close(self, view: ConsumerView, job: Any, k: _Kind) -> None:
        if k.arm != "cloud" and k.mark is not None:
            k.est[k.arm] = self._cost(view, job, k)
            k.low[k.arm] = self._cost(view, job, k, z=self.reexplore_z or 0.0)
            k.age[k.arm] = k.block
            if k.arm == "hybrid":
                seen = self.views["hybrid"]._s(job.jtype.kind).since(k.mark)
                k.seen_market = view.dec_cost(job, seen=seen) if seen.resolved else float("inf")
        cloud = k.est["cloud"] = k.low["cloud"] = view.cloud_cost(job)
        k.block += 1
        k.n, k.mark, k.last_cloud = 1, None, 0.0
        best = min(k.est, key=lambda a: (k.est[a], ARMS.index(a)))
        if best == "cloud" and "hybrid" not in k.est:
            # The market alone lost to the cloud: try the per-job arm, which may beat both. Where the
            # market alone is cheaper the better pure policy is met by staying on it, untried.
            k.arm = "hybrid"
        elif _explores(k.block, self.schedule):
            # An arm is worth another block if its last measurement may have been unlucky (the lower
            # end of its intervals beats the exploited arm), or, for the market alone, if the market
            # has looked cheaper since, to the per-job arm, than when it was last run alone.
            cand = [a for a in ("dec", "hybrid") if a != best and a in k.est and
                    (self.reexplore_z is None or k.low[a] < k.est[best]
                     or (a == "dec" and k.seen_market < k.est["dec"]))]
            k.arm = min(cand, key=lambda a: k.age[a]) if cand else best
        else:
            k.arm = best

    def fell_back(self, job: Any) -> None:
        """A market job of this consumer went to the cloud because its deadline was at risk."""
        arm = self.tagged.pop(job.key, None)
        k = self.kinds.get(job.jtype.kind)
        if k is not None and k.mark is not None and arm == k.arm:
            k.last_cloud += 1

    def _cost(self, view: ConsumerView, job: Any, k: _Kind, z: float = 0.0) -> float:
        """The block's realised cost per correct result, from its second half's public evidence.

        The per-job arm's is pooled: its cloud jobs (deadline fallbacks included) at the cloud's
        public spend and availability, its market jobs at the half's spend and correct-result rate
        (:meth:`~vcompute.market.routing.ConsumerView.dec_terms`), total spend over total correct.
        """
        view = self.views[k.arm]
        seen = view._s(job.jtype.kind).since(k.mark)
        if k.arm == "dec":
            return view.dec_cost(job, seen=seen, z=z) if seen.resolved else float("inf")
        n = max(seen.routed, 1)
        n_cloud = min(k.last_cloud, n)
        c_spend, c_ok = view.cloud_terms(job)
        d_spend, d_ok = view.dec_terms(job, seen=seen, z=z) if seen.resolved else (0.0, 0.0)
        if n_cloud < n and not seen.resolved:
            return float("inf")  # market jobs without any evidence yet
        spend = n_cloud * c_spend + (n - n_cloud) * d_spend
        ok = n_cloud * c_ok + (n - n_cloud) * max(d_ok, 0.0)
        return spend / ok if ok > 0 else float("inf")
