"""Where a consumer sends each job: the cloud, the decentralized market, or whichever is cheaper.

A router is pluggable (:data:`ROUTERS`): anything with ``route(view, job)``
returning ``"cloud"`` or ``"dec"`` and a ``fallback_at`` (a share of the
deadline after which a job still waiting for a provider goes to the cloud;
None never falls back). Built-ins:

- ``cloud``: every job to the cloud.
- ``decentralized``: every job to the market (the market without a cloud tier).
- ``hybrid``: each job where its expected cost per correct result is lowest
  (:meth:`ConsumerView.dec_cost` against :meth:`ConsumerView.cloud_cost`),
  estimated from what this consumer has seen, optimistic about the market by
  ``z sqrt(ln t)`` standard errors so that a wrong early verdict against it
  is revisited.

A :class:`ConsumerView` holds what one consumer has observed of the
decentralized side per job kind: how many of its jobs got no result, how
many audited claims were rejected, what it paid per PFLOP and per replica.
It never reads hidden truth (which claims cheated, which accepted results
are wrong): fraud is inferred from audits only.
"""

from __future__ import annotations

import math
from typing import Any

from vcompute.core.registry import Registry
from vcompute.market.calibration import CHEATS, wilson_interval
from vcompute.market.core import MarketView
from vcompute.market.optimistic import REEXECUTE as _REEXECUTE

__all__ = ["ROUTERS", "CloudOnly", "ConsumerView", "DecentralizedOnly", "Hybrid", "Seen"]

#: Routing policies by name (entry-point group ``vcompute.routers``).
ROUTERS: Registry = Registry("router", group="vcompute.routers")


@ROUTERS.register("cloud")
class CloudOnly:
    """Every job to the cloud."""

    fallback_at = None

    def route(self, view: ConsumerView, job: Any) -> str:
        """Always ``"cloud"``."""
        return "cloud"


@ROUTERS.register("decentralized")
class DecentralizedOnly:
    """Every job to the decentralized market, never falling back."""

    fallback_at = None

    def route(self, view: ConsumerView, job: Any) -> str:
        """Always ``"dec"``."""
        return "dec"


@ROUTERS.register("hybrid")
class Hybrid:
    """Each job to the side with the lower expected cost per correct result.

    It compares the cloud's cost with an optimistic estimate of the
    market's: the fraud and no-result rates are the lower ends of Wilson
    intervals of width ``z sqrt(ln t)`` (``t``: jobs of this kind the
    consumer has routed), so a market it has stopped using looks better as
    time passes and is tried again, while a market it keeps using is judged
    on ever tighter evidence. Before that, the job goes to the market while
    fewer than ``explore_min + explore_log ln t`` of its market jobs are
    resolved, or while the audits are too few to tell a fraud rate from
    noise (``explore_info``).

    Args:
        fallback_at: a job still unmatched after this share of its deadline
            goes to the cloud (None: never).
        explore_min: market jobs resolved before the estimates are trusted.
        explore_log: growth of the exploration quota with ``ln t``.
        explore_info: audited claims times the assumed detection probability
            (the catches expected if every claim cheated) needed before the
            fraud estimate is trusted: weak checks need more audits.
        z: scale of the optimism, ``z sqrt(ln t)`` standard errors (0: greedy
            on point estimates, which can lock onto the cloud after an unlucky
            start).
    """

    def __init__(self, *, fallback_at: float | None = 0.5, explore_min: int = 10, explore_log: float = 3.0,
                 explore_info: float = 10.0, z: float = 0.5) -> None:
        if fallback_at is not None and not 0 < fallback_at <= 1:
            raise ValueError(f"routing_params.fallback_at must be in (0, 1] or None, got {fallback_at!r}")
        if not (explore_min >= 0 and explore_log >= 0 and explore_info >= 0 and z >= 0):
            raise ValueError("routing_params.explore_min, explore_log, explore_info and z must be >= 0, got "
                             f"{explore_min!r}, {explore_log!r}, {explore_info!r}, {z!r}")
        self.fallback_at = fallback_at
        self.explore_min, self.explore_log, self.z = int(explore_min), float(explore_log), float(z)
        self.explore_info = float(explore_info)

    def route(self, view: ConsumerView, job: Any) -> str:
        """``"dec"`` while exploring or when the market's estimate beats the cloud's cost."""
        s = view.seen.get(job.jtype.kind)
        routed = s.routed if s is not None else 1
        resolved = s.resolved if s is not None else 0
        if resolved < self.explore_min + self.explore_log * math.log(max(routed, 1)):
            return "dec"
        check = view.mk.checks[job.jtype.kind]
        d = view.detection(check)
        if d > 0 and view.checked_p(check) > 0 and s.claims * d < self.explore_info:
            return "dec"  # too few audits (or watched results) yet to tell a fraud rate from noise
        z = self.z * math.sqrt(math.log(max(routed, 3)))  # optimism that grows with neglect
        return "dec" if view.dec_cost(job, z=z) < view.cloud_cost(job) else "cloud"


class Seen:
    """Counts of what a consumer observed of one job kind on the market (see :class:`ConsumerView`)."""


    __slots__ = ("routed", "resolved", "noresult", "failed", "audited", "claims", "caught", "paid", "verify", "matched",
                 "replicas", "price_sum", "price_n")

    def __init__(self) -> None:
        for s in self.__slots__:
            setattr(self, s, 0)

    def copy(self) -> Seen:
        """A snapshot of these counts."""
        out = Seen()
        for k in self.__slots__:
            setattr(out, k, getattr(self, k))
        return out

    def since(self, before: Seen) -> Seen:
        """The counts observed after the snapshot ``before``."""
        out = Seen()
        for k in self.__slots__:
            setattr(out, k, getattr(self, k) - getattr(before, k))
        return out


class ConsumerView:
    """One consumer's estimates of the decentralized side, from its own observations.

    What it sees of each of its market jobs: whether it got a result, whether
    it was audited and how many claims the audit rejected, what it paid the
    providers and what the checking cost (the verifier's bill). Fraud that was
    accepted is invisible; it is inferred from the audits' rejection rate and
    the scheme's calibrated detection probability.

    Args:
        mk: the market (its public facts: the trust policy, posted prices, stake).
        cost_cfg: the :class:`~vcompute.market.costs.CostConfig`.
        cloud: the :class:`~vcompute.market.cloud.CloudConfig`.
    """

    def __init__(self, mk: MarketView, cost_cfg: Any, cloud: Any) -> None:
        from vcompute.market.config import HARDWARE

        self.mk, self.costs, self.cloud = mk, cost_cfg, cloud
        self.seen: dict[str, Seen] = {}
        provs = mk.providers
        # Posted prices are public: the prior for the price until it has paid some.
        self.prior_price = sum(p.price for p in provs) / len(provs)
        self.tflops = sum(p.hw.tflops for p in provs) / len(provs)
        hw = HARDWARE[cost_cfg.verifier_hardware]
        self.verifier_cpp = hw.hourly_cost / (hw.tflops * 3.6)
        p = mk.p
        self.optimistic = p.consumers.trust == "optimistic"
        if self.optimistic:  # the policy's public terms: watchers, their hardware, the game's gas
            from vcompute.market.optimistic import game_model

            o = p.optimistic
            self.watch_p = p.consumers.audit_p if o.watch_p is None else o.watch_p
            self.watchers = o.watchers
            whw = HARDWARE[o.hardware]
            self.watcher_cpp = whw.hourly_cost / (whw.tflops * 3.6)
            usd_per_gas = p.settlement.gas.price().usd_per_gas
            #: per job type: its kind's game's modelled gas (vcompute.market.optimistic.game_model), in USD
            self.dispute_usd = {jt.name: game_model(jt, o.trace_steps)[1] * usd_per_gas for jt in p.consumers.mix}
            self.window_s = o.window_h * 3600.0

    def _s(self, kind: str) -> Seen:
        s = self.seen.get(kind)
        if s is None:
            s = self.seen[kind] = Seen()
        return s

    # -- observations ---------------------------------------------------------
    def routed(self, job: Any) -> None:
        """This consumer routed a job of ``job``'s kind (to either side)."""
        self._s(job.jtype.kind).routed += 1

    def missed(self, job: Any) -> None:
        """A market job of this consumer got no provider in time, or all its replicas vanished."""
        s = self._s(job.jtype.kind)
        s.resolved += 1
        s.noresult += 1
        s.failed += 1

    def matched(self, job: Any, units_per_usd: int) -> None:
        """A market job was matched: its replica count and escrowed prices are known."""
        s = self._s(job.jtype.kind)
        s.matched += 1
        s.replicas += len(job.prices)
        s.price_sum += sum(job.prices) / units_per_usd / job.jtype.pflop
        s.price_n += len(job.prices)

    def disputed(self, job: Any) -> None:
        """An optimistic market job's challenge window closed without its result final: it is disputed.

        That is public (the claim's state on chain) hours before the game ends, so it is evidence as
        soon as the window closes; otherwise a router would see honest results final after one window
        and fraud only after the game, and take the market for better than it is meanwhile. Counted as
        a rejected claim without a result until :meth:`settled` (``disputed=True``) says how it ended.
        """
        s = self._s(job.jtype.kind)
        s.resolved += 1
        s.noresult += 1
        s.audited += 1
        s.claims += 1
        s.caught += 1

    def settled(self, job: Any, audited: bool, verdicts: list[bool], *, paid_usd: float, verify_usd: float,
                result: bool, disputed: bool = False) -> None:
        """A market job was settled: per-claim verdicts, what it paid and whether a result stood.

        ``disputed``: :meth:`disputed` counted it already; its count is replaced by how it ended.
        """
        s = self._s(job.jtype.kind)
        if disputed:
            s.resolved -= 1
            s.noresult -= 1
            s.audited -= 1
            s.claims -= 1
            s.caught -= 1
        s.resolved += 1
        s.noresult += not result
        s.paid += paid_usd
        s.verify += verify_usd
        if audited:
            s.audited += 1
            s.claims += len(verdicts)
            s.caught += sum(1 for v in verdicts if not v)

    # -- estimates ------------------------------------------------------------
    def detection(self, check: Any) -> float:
        """The detection probability the fraud estimate assumes for ``check`` (see :meth:`dec_cost`).

        Under the ``optimistic`` policy every result is open to dispute, so it is the chance that a
        wrong result is overturned: some watcher both looks and finds it with its first look, each
        independently, ``1 - (1 - p_w d_w)^w``.
        """
        if self.optimistic:  # each watcher looks and finds independently (vcompute.market.optimistic)
            d = self._least_detect(check, reexecutes=check.scheme in _REEXECUTE)
            return 1.0 - (1.0 - self.watch_p * d) ** self.watchers
        if check.scheme == "none":
            return 0.0
        return self._least_detect(check, reexecutes=False)

    @staticmethod
    def _least_detect(check: Any, *, reexecutes: bool) -> float:
        if reexecutes:
            return 1.0
        # The cheat the adversary uses is unknown: assume its best one, the least detectable
        # calibrated cheat (a rate of rejections then means the most fraud it can).
        return max(min(check.detect_est(c) for c in CHEATS if c != "honest"), 1e-6)

    def checked_p(self, check: Any) -> float:
        """The configured chance that a result is looked at: ``audit_p``, or that one of the watchers watches.

        It is what the policy promises, not what it does: rational watchers who stop watching (the
        verifier's dilemma) make the consumer's fraud estimate too low (``proofs/market.md``).
        """
        if self.optimistic:
            return 1.0 - (1.0 - self.watch_p) ** self.watchers
        return self.mk.p.consumers.audit_p if check.scheme != "none" else 0.0

    def miss_value(self, job: Any) -> float:
        """What a job without a result costs this consumer (USD)."""
        from vcompute.market.cloud import cloud_price_usd

        return self.costs.miss_multiple * cloud_price_usd(self.cloud, job.jtype.pflop)

    def cloud_cost(self, job: Any) -> float:
        """Expected cost per correct result of ``job`` in the cloud (USD)."""
        spend, av = self.cloud_terms(job)
        return spend / av

    def cloud_terms(self, job: Any) -> tuple[float, float]:
        """:meth:`cloud_cost` as expected spend per cloud job (USD) and its chance of a result."""
        from vcompute.market.cloud import cloud_price_usd

        av = self.cloud.availability
        return cloud_price_usd(self.cloud, job.jtype.pflop) + (1 - av) * self.miss_value(job), av

    def dec_cost(self, job: Any, *, z: float = 0.0, seen: Any = None) -> float:
        """Expected cost per correct result of ``job`` on the market (USD; derived in proofs/market.md).

        With ``z > 0`` the fraud and no-result rates are the lower ends of
        their Wilson intervals (optimism about what is not yet known).
        ``seen``: evidence to use instead of everything seen of the kind (a
        block's, see :class:`~vcompute.market.policy_router.PolicyBandit`).
        """
        spend, correct = self.dec_terms(job, z=z, seen=seen)
        if correct <= 0:
            return float("inf")
        return spend / correct

    def dec_terms(self, job: Any, *, z: float = 0.0, seen: Any = None) -> tuple[float, float]:
        """:meth:`dec_cost` as its two terms: expected spend per market job (USD) and its chance of a
        correct result (<= 0: none expected), so that a mix of market and cloud jobs can be pooled."""
        mk, jt = self.mk, job.jtype
        s = self._s(jt.kind) if seen is None else seen
        check = mk.checks[jt.kind]
        # Optimistic results are never replicated; each one counts as checked, with the chance of a
        # dispute as its detection (see detection()).
        a_cfg = 1.0 if self.optimistic else self.checked_p(check)
        d, k = self.detection(check), 1 if self.optimistic else check.k
        q = min(_rate(s.caught, s.claims, z) / d, 1.0) if d > 0 else 0.0
        u = _rate(s.noresult, s.resolved, z)
        f = s.failed / s.resolved if s.resolved else 0.0
        ran = s.resolved - s.failed
        a = s.audited / ran if ran else a_cfg
        price = (s.price_sum / s.price_n if s.price_n else self.prior_price) * jt.pflop
        r = s.replicas / s.matched if s.matched else 1 + a_cfg * (k - 1)
        if s.resolved:
            pay, verif = s.paid / s.resolved, s.verify / s.resolved
        else:
            pay = price * r
            verif = 0.0 if self.optimistic else a_cfg * mk.verify_fraction_est(job) * jt.pflop * \
                self.verifier_cpp * mk.p.auditors.cost_factor
        # Wrong results slip through unaudited jobs, and audited single-claim ones the check missed;
        # a lone deviating replica is outvoted.
        wrong = (1 - f) * q * ((1 - a) + (a * (1 - d) if k == 1 else 0.0))
        dur = jt.pflop * 1000.0 / self.tflops + (self.window_s if self.optimistic else 0.0)  # stake locked
        cap = mk.p.consumers.stake_usd * self.costs.stake_rate_annual * r * dur / (365.0 * 24 * 3600)
        gas = self.costs.gas_usd_per_op * 3.0 * r
        fraud = wrong * self.costs.fraud_loss_multiple * price  # valued at the first replica's price
        if self.optimistic:  # watchers bill nobody: their compute and the disputes' gas, from the terms
            verif += self._watch_usd(check, job, q * (1 - f))
            gas += q * (1 - f) * d * self.dispute_usd[jt.name]
        miss = u * self.miss_value(job)
        return pay + verif + cap + gas + fraud + miss, 1.0 - u - wrong

    def _watch_usd(self, check: Any, job: Any, wrong_p: float) -> float:
        """Expected watchers' compute on ``job`` (USD): each watcher that looks takes its first look,
        and re-executes a result it found wrong to commit its own trace (``vcompute.market.optimistic``)."""
        reexec = check.scheme in _REEXECUTE
        share = 1.0 if reexec else self.mk.verify_fraction_est(job)
        redo = 0.0 if reexec else wrong_p * self._least_detect(check, reexecutes=False)
        return self.watchers * self.watch_p * (share + redo) * job.jtype.pflop * self.watcher_cpp


def _rate(hits: int, n: int, z: float) -> float:
    if n == 0:
        return 0.0
    return wilson_interval(hits, n, z)[0] if z > 0 else hits / n


# The policy-level router registers itself in ROUTERS; imported last because it builds on Hybrid.
from vcompute.market import policy_router as _policy_router  # noqa: E402,F401
