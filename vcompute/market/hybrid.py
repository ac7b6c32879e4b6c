"""A market with a cloud tier and routing consumers: when does renting untrusted GPUs beat the cloud?

:class:`HybridParams` extends :class:`~vcompute.market.config.MarketParams`
with the cloud tier (:mod:`vcompute.market.cloud`), the consumers' routing
policies (:mod:`vcompute.market.routing`) and the all-in cost model
(:mod:`vcompute.market.costs`). A :class:`~vcompute.market.sim.Market`
given HybridParams attaches :class:`HybridHooks`; with plain MarketParams
nothing here runs and the market is unchanged.

:func:`compare_policies` runs the same seeded market three times, all
consumers cloud-only, decentralized-only and hybrid, and reports each
policy's cost per correct result, the break-even decentralized discount
and the hybrid router's margin over the better pure policy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from vcompute.market.cloud import CloudConfig, CloudTier, cloud_price_usd
from vcompute.market.config import HARDWARE, UNITS_PER_USD, MarketParams
from vcompute.market.core import MarketView, Settled
from vcompute.market.costs import CostBook, CostConfig, break_even_discount, settlement_gas_metrics

__all__ = ["DISPUTE_DECIDES", "POLICIES", "HybridHooks", "HybridParams", "compare_policies", "dispute_decides",
           "scheme_applies"]

#: The pure and the routed policy :func:`compare_policies` runs (the routed one is ``HybridParams.routing``).
POLICIES = ("cloud", "decentralized", "hybrid")

#: Built-in job kinds whose results a dispute game decides, so that the ``optimistic`` trust policy
#: applies to them: the kinds declaring a dispute adapter (their ``dispute`` hook,
#: :mod:`vcompute.verify.dispute.market`), which the market plays on chain in real mode. ``matmul``: one
#: product, its accumulation over blocks decided by ``Dispute.vy`` (float32 within a rounding bound,
#: C6, C7); ``forward``: the ReLU MLP operator by operator on ``OperatorGame.vy`` (C12). Not ``train``
#: (a torch PoL step is nonlinear with a backward pass, "Not covered") nor ``generate``: the operator
#: game decides a tiny LM's prefill (C13), but neither the tied head nor the sampling that makes the
#: claimed tokens, so a provider replaying another prompt's tokens with an honest prefill over them
#: could not be shown wrong. A plug-in kind with a hook is decided too (:func:`dispute_decides`).
DISPUTE_DECIDES = frozenset({"matmul", "forward"})


def dispute_decides(kind: str) -> bool:
    """Whether a dispute game decides jobs of ``kind``: it declares a dispute adapter."""
    from vcompute.workloads.kinds import get_kind

    return kind in DISPUTE_DECIDES or bool(get_kind(kind).dispute)


class HybridParams(MarketParams):
    """A market run with a cloud tier and routing consumers.

    Attributes:
        cloud: the cloud tier.
        costs: how the all-in cost values stake, gas, fraud and misses.
        routing: a router name from :data:`~vcompute.market.routing.ROUTERS`
            for every consumer, or a list assigned to consumers in turn
            (consumer ``i`` gets ``routing[i % len]``).
        routing_params: keyword arguments of the ``hybrid`` and ``bandit`` routers.
        kind: restrict the job mix to one job kind, any registered in
            :data:`~vcompute.workloads.kinds.KINDS` or an alias (``all`` keeps
            the whole mix); the mix must have an entry of that kind.
        compare: run the two pure policies beside ``routing`` (:func:`compare_policies`)
            instead of ``routing`` alone; ``routing`` is then the routed policy whose
            margin is reported (``hybrid_margin``).
        side_routing: with ``compare``, a second routed policy run on the same seed
            beside the first, reported as ``cpc_side``, ``share_cloud_side`` and
            ``side_margin`` (None: not run), so two routers meet the same pure runs.
    """

    cloud: CloudConfig = Field(default_factory=CloudConfig)
    costs: CostConfig = Field(default_factory=CostConfig)
    routing: str | list[str] = "hybrid"
    routing_params: dict[str, Any] = Field(default_factory=dict)
    kind: str = "all"
    compare: bool = True
    side_routing: str | list[str] | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v != "all":
            from vcompute.workloads.kinds import canonical_kind

            canonical_kind(v)  # raises, listing the known kinds and aliases
        return v

    @field_validator("routing", "side_routing")
    @classmethod
    def _known_routers(cls, v: str | list[str] | None) -> str | list[str] | None:
        from vcompute.market.routing import ROUTERS

        for name in [] if v is None else [v] if isinstance(v, str) else v:
            ROUTERS.get(name)  # raises, listing the known routers
        if isinstance(v, list) and not v:
            raise ValueError("routing: give at least one router name")
        return v

    @model_validator(mode="after")
    def _kind_in_mix(self) -> HybridParams:
        if self.kind != "all" and not self._of_kind():
            raise ValueError(f"kind = {self.kind!r} but consumers.mix has no job of that kind; add a "
                             f"[[params.consumers.mix]] entry with kind = {self.kind!r}")
        for routing in (self.routing, self.side_routing):
            for name in [] if routing is None else [routing] if isinstance(routing, str) else routing:
                if name in _TAKES_PARAMS:
                    _router(name, self.routing_params)  # raises on bad parameters
        return self

    def routed(self, routing: str | list[str]) -> HybridParams:
        """These parameters with every consumer on ``routing`` (and the mix cut to :attr:`kind`)."""
        upd: dict[str, Any] = {"routing": routing, "compare": False}
        if self.kind != "all":
            upd["consumers"] = self.consumers.model_copy(update={"mix": self._of_kind()})
        return self.model_copy(update=upd)

    def _of_kind(self) -> list[Any]:
        from vcompute.workloads.kinds import canonical_kind

        want = canonical_kind(self.kind)
        return [j for j in self.consumers.mix if j.job_kind == want]

    def applicable(self) -> bool:
        """Whether the trust scheme can check every kind of job this run sends to the market.

        A kind's scheme is ``consumers.verifier_by_kind`` for it, else
        ``consumers.verifier``; it applies when it is one of the kind's
        verifiers (:func:`scheme_applies`). Freivalds cannot check a training
        run, proof-of-learning cannot check a product: such a cell of a grid is
        not simulated. Under ``consumers.trust = "optimistic"`` the scheme is
        the watchers' first look (``none`` and ``replication``: re-execution,
        which applies to every kind), and the kind must also be one the dispute
        game decides (:func:`dispute_decides`).
        """
        from vcompute.workloads.kinds import canonical_kind

        cons = self.consumers
        optimistic = cons.trust == "optimistic"
        overrides = {canonical_kind(k): v for k, v in cons.verifier_by_kind.items()}
        mix = cons.mix if self.kind == "all" else self._of_kind()
        for jt in mix:
            scheme = overrides.get(jt.job_kind, "default")
            scheme = cons.verifier if scheme == "default" else scheme
            if optimistic and not dispute_decides(jt.job_kind):
                return False
            if not (scheme_applies(jt.job_kind, scheme) or (optimistic and scheme == "replication")):
                return False
        return True


def scheme_applies(kind: str, scheme: str) -> bool:
    """Whether ``scheme`` (a verifier name, or ``none``) can check jobs of ``kind``: one of its verifiers.

    Example:
        >>> scheme_applies("generate", "generate"), scheme_applies("train", "freivalds")
        (True, False)
    """
    from vcompute.workloads.kinds import get_kind

    return scheme == "none" or scheme in get_kind(kind).verifiers


def _router(name: str, params: dict[str, Any]) -> Any:
    from vcompute.market.routing import ROUTERS

    cls = ROUTERS.get(name)
    if name == "hybrid":  # the bandit's own parameters do not reach its per-job arm
        params = {k: v for k, v in params.items() if k != "block_jobs"}
    return cls(**params) if name in _TAKES_PARAMS else cls()


#: Routers configured by ``routing_params`` (the others take none).
_TAKES_PARAMS = frozenset({"hybrid", "bandit"})


class HybridHooks:
    """What a market with HybridParams does beyond the plain market: routing, the cloud, all-in costs.

    It implements :class:`~vcompute.market.core.MarketHooks`: the market
    calls :meth:`route` on each arrival, :meth:`at_risk` for each queued job
    it looks at, :meth:`expired`, :meth:`started` and :meth:`settled`;
    nothing here draws from the market's own generator.

    Args:
        mk: the market's public facts (:class:`~vcompute.market.core.MarketView`).
    """

    def __init__(self, mk: MarketView) -> None:
        from vcompute.market.routing import ConsumerView

        p: HybridParams = mk.p
        self.mk, self.p = mk, p
        rng = np.random.default_rng([mk.seed, 0x48594252])  # the tier's own stream
        self.cloud = CloudTier(mk, p.cloud, rng)
        names = [p.routing] if isinstance(p.routing, str) else list(p.routing)
        self.routers = {c: _router(names[i % len(names)], p.routing_params) for i, c in enumerate(mk.consumers)}
        # Routing estimates a job's settlement gas per operation: from the gas table unless set flat.
        costs = p.costs if p.costs.gas_usd_per_op is not None else p.costs.model_copy(
            update={"gas_usd_per_op": p.settlement.gas.usd_per_op()})
        self.views = {c: ConsumerView(mk, costs, p.cloud) for c in mk.consumers}
        self.book = CostBook(p.costs)
        self.fallbacks = 0
        self.sent = {"dec": 0, "cloud": 0}
        # Accounts opened, funded and staked before the first job are the market's, not a policy's cost.
        self.ops_at_start = mk.settle.ledger.op_counts()
        a100 = HARDWARE["a100"]
        vhw = HARDWARE[p.costs.verifier_hardware]
        # Settlement books checkers' compute at A100 cost: rescale to the verifier's hardware.
        self.verify_scale = (vhw.hourly_cost / vhw.tflops) / (a100.hourly_cost / a100.tflops)
        fd = p.costs.finality_deadline_h
        self.finality_s = float("inf") if fd is None else fd * 3600.0
        self.late = 0
        self.optimistic = p.consumers.trust == "optimistic"
        # Optimistic results in their challenge window, by the time it closes (a constant window: FIFO),
        # and the keys of those not final yet / found under dispute when it closed.
        self.windows: deque[tuple[float, Any]] = deque()
        self.window_s = p.optimistic.window_h * 3600.0
        self.open: set[int] = set()
        self.disputed: set[int] = set()

    def _to_cloud(self, job: Any) -> None:
        book, view = self.book, self.views[job.consumer]
        self.sent["cloud"] += 1
        book.jobs["cloud"] += 1
        before = self.cloud.paid_usd
        if self.cloud.serve(job):
            book.correct["cloud"] += 1
            book.add("cloud", "compute", self.cloud.paid_usd - before)
        else:
            book.add("cloud", "misses", view.miss_value(job))

    def _observe(self, job: Any, what: str, *args: Any, **kw: Any) -> None:
        """Tell the job's router what its consumer's view was told, if it keeps views of its own."""
        observe = getattr(self.routers[job.consumer], "observe", None)
        if observe is not None:
            observe(job, what, *args, **kw)

    def _windows_closed(self) -> None:
        """Tell each consumer of its results whose window closed under dispute (see ConsumerView.disputed)."""
        now, w = self.mk.now(), self.windows
        while w and w[0][0] < now:
            job = w.popleft()[1]
            if job.key in self.open:
                self.disputed.add(job.key)
                self.views[job.consumer].disputed(job)
                self._observe(job, "disputed")

    def route(self, job: Any) -> bool:
        """Route an arriving job; True if it went to the cloud (the market does not queue it)."""
        if self.windows:
            self._windows_closed()
        self.views[job.consumer].routed(job)
        if self.routers[job.consumer].route(self.views[job.consumer], job) == "cloud":
            self._to_cloud(job)
            return True
        self.sent["dec"] += 1
        self.book.jobs["dec"] += 1
        self.book.cloud_ref_usd += cloud_price_usd(self.p.cloud, job.jtype.pflop)
        return False

    def at_risk(self, job: Any, now: float, deadline_s: float) -> bool:
        """If ``job``'s consumer falls back and its deadline is at risk, send it to the cloud (True)."""
        at = self.routers[job.consumer].fallback_at
        if at is None or now - job.submitted <= at * deadline_s:
            return False
        self.fallbacks += 1
        told = getattr(self.routers[job.consumer], "fell_back", None)
        if told is not None:  # a policy-level router counts its arm's cloud jobs
            told(job)
        self.sent["dec"] -= 1
        self.book.jobs["dec"] -= 1
        self.book.cloud_ref_usd -= cloud_price_usd(self.p.cloud, job.jtype.pflop)
        self._to_cloud(job)
        return True

    def expired(self, job: Any) -> None:
        """A decentralized job found no provider before its deadline: a miss."""
        self.views[job.consumer].missed(job)
        self._observe(job, "missed")
        self.book.add("dec", "misses", self.views[job.consumer].miss_value(job))

    def started(self, job: Any) -> None:
        """A decentralized job's claims are in (matched, escrowed, computed); an optimistic one's window opens."""
        self.views[job.consumer].matched(job, UNITS_PER_USD)
        self._observe(job, "matched", UNITS_PER_USD)
        if self.optimistic:
            self.open.add(job.key)
            self.windows.append((self.mk.now() + self.window_s, job))

    def settled(self, s: Settled) -> None:
        """A decentralized job was settled (``s.live`` empty: every replica vanished)."""
        job, live, audited, verdicts, correct = s.job, s.live, s.audited, s.verdicts, s.correct
        book, view, mk = self.book, self.views[job.consumer], self.mk
        if self.optimistic:
            self.open.discard(job.key)
            disputed = job.key in self.disputed
            self.disputed.discard(job.key)
        else:
            disputed = False
        held = mk.now() - job.started
        book.add("dec", "capital", book.capital(self.p.consumers.stake_usd, held) * len(job.replicas))
        if not live:
            view.missed(job)
            self._observe(job, "missed")
            book.add("dec", "misses", view.miss_value(job))
            return
        paid = sum(job.prices[r] for r, v in zip(live, verdicts) if v) / UNITS_PER_USD
        # Final too late to use (a challenge window, a dispute, replicas queueing): paid for, yet a miss.
        late = correct is not None and mk.now() - job.submitted > self.finality_s
        self.late += late
        # Under the optimistic policy every result is open to the watchers: the consumer's evidence is
        # each result and whether a dispute overturned it (ConsumerView.detection prices the watching).
        view.settled(job, audited or self.optimistic, list(verdicts), paid_usd=paid,
                     verify_usd=s.verify_usd * self.verify_scale, result=correct is not None and not late,
                     disputed=disputed)
        self._observe(job, "settled", audited or self.optimistic, list(verdicts), paid_usd=paid,
                      verify_usd=s.verify_usd * self.verify_scale, result=correct is not None and not late,
                      disputed=disputed)
        if 0 in live and verdicts[live.index(0)]:
            book.dec_pflop_paid += job.jtype.pflop
        if late:
            book.add("dec", "misses", view.miss_value(job))
        elif correct is True:
            book.correct["dec"] += 1
        elif correct is False:
            book.add("dec", "fraud", self.p.costs.fraud_loss_multiple * job.prices[0] / UNITS_PER_USD)
        else:
            book.add("dec", "misses", view.miss_value(job))

    def summary(self, totals: Mapping[str, float], ledger_ops: Mapping[str, int], *,
                correct: int) -> dict[str, float]:
        """The routed run's metrics (see :mod:`vcompute.market.costs`), from the market's money totals.

        Args:
            totals: the market's money totals (:meth:`~vcompute.market.metrics.Metrics.totals`).
            ledger_ops: the ledger's operation counts at the end (:meth:`~vcompute.ledger.Ledger.op_counts`).
            correct: the decentralized side's correct results, as the plain market counts them.
        """
        market_correct = correct
        book = self.book
        dec = book.usd["dec"]
        dec["compute"], dec["replicas"] = totals["base_usd"], totals["replica_usd"]
        dec["verification"] = totals["verify_compute_usd"] * self.verify_scale
        correct = book.correct["dec"] + book.correct["cloud"]
        # The jobs' own settlement: operations since the market was set up; the cloud's bills are off-chain.
        off = dict(self.ops_at_start)
        off["transfer"] = off.get("transfer", 0) + self.cloud.correct
        gas = settlement_gas_metrics(ledger_ops, self.p.settlement.gas, correct, off_chain=off)
        flat = self.p.costs.gas_usd_per_op
        dec["gas"] = gas["settlement_gas_usd"] if flat is None else gas["settlement_ops"] * flat
        opt = getattr(getattr(self.mk, "checking", None), "optimistic", None)
        if opt is not None:  # the watchers' compute (their own hardware's price) and the disputes' gas
            dec["verification"] += opt.watch_usd
            dec["gas"] += opt.total_gas_usd
        out = book.summary()
        out["job_settlement_ops"] = gas["settlement_ops"]
        # The run's whole settlement, as a plain market reports it, less the cloud's account and bills.
        out.update(settlement_gas_metrics(ledger_ops, self.p.settlement.gas, market_correct,
                                          off_chain={"open_account": 1, "transfer": self.cloud.correct}))
        comp = totals["slashed_usd"] * (1 - self.p.auditors.whistleblower_share)
        out["compensation_credit"] = comp / correct if correct else float("nan")
        n = max(self.sent["dec"] + self.sent["cloud"], 1)
        out["results_correct"] = correct
        out["cloud_share"] = self.sent["cloud"] / n
        out["dec_share"] = self.sent["dec"] / n
        out["fallback_share"] = self.fallbacks / n
        out["late_share"] = self.late / n
        out["cloud_outages"] = self.cloud.outages
        out["dec_cost_per_correct"] = book.side_cost_per_correct("dec")
        out["cloud_cost_per_correct"] = book.side_cost_per_correct("cloud")
        hw = HARDWARE[self.p.cloud.hardware]
        out.update(break_even_discount(book, cloud_usd_per_pflop=self.p.cloud.hourly() / (hw.tflops * 3.6),
                                       availability=self.p.cloud.availability,
                                       miss_multiple=self.p.costs.miss_multiple))
        return out


def compare_policies(params: HybridParams, seed: int) -> dict[str, Any]:
    """Run ``params`` with every consumer cloud-only, decentralized-only and on ``params.routing`` (same seed).

    The routed policy is ``params.routing`` (default the per-job ``hybrid``
    router; ``bandit``: :class:`~vcompute.market.policy_router.PolicyBandit`),
    reported in the ``hybrid`` slot whichever router it is. With
    ``params.side_routing`` a second routed policy runs on the same seed and
    is compared with the same pure runs.

    Returns:
        The routed run's metrics, plus per policy ``cpc_<policy>`` (all-in cost
        per correct result) and ``share_cloud_<policy>`` (``cloud``,
        ``decentralized``, ``hybrid``: the routed one), the decentralized-only
        run's ``break_even_discount`` and ``price_discount``, and
        ``hybrid_margin`` = cpc_hybrid / min(cpc_cloud, cpc_decentralized) - 1
        (the target is <= 0.02), with ``runtime_s`` of the runs; with
        ``side_routing`` also ``cpc_side``, ``share_cloud_side`` and
        ``side_margin``, the same for the second routed policy.
    """
    import time

    from vcompute.market.sim import Market

    t0 = time.perf_counter()
    routes = {"cloud": "cloud", "decentralized": "decentralized", "hybrid": params.routing}
    if params.side_routing is not None:
        routes["side"] = params.side_routing
    runs = {pol: Market(params.routed(r), seed).run() for pol, r in routes.items()}
    out = dict(runs["hybrid"])
    for pol, r in runs.items():
        out[f"cpc_{pol}"] = r["cost_all_in"]
        out[f"share_cloud_{pol}"] = r["cloud_share"]
    for key in ("break_even_discount", "price_discount", "cloud_reference_cpc"):
        out[key] = runs["decentralized"][key]
    # A policy without a correct result (nan) is infinitely costly, never the better one.
    best = min(c if c == c else float("inf") for c in (out["cpc_cloud"], out["cpc_decentralized"]))
    for pol, name in (("hybrid", "hybrid_margin"), ("side", "side_margin")):
        if pol in runs:
            out[name] = out[f"cpc_{pol}"] / best - 1.0 if 0 < best < float("inf") else float("nan")
    out["runtime_s"] = time.perf_counter() - t0
    return out
