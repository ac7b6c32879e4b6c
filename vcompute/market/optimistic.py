"""The ``optimistic`` trust policy: a result is final after a challenge window unless a watcher disputes it.

Under ``consumers.trust = "optimistic"`` nobody checks a claim before it is
paid. :class:`Optimistic` opens a challenge window of ``optimistic.window_h``
hours on it instead. **Watchers** are agents who look at a share
(``watch_p``, default ``consumers.audit_p``) of the jobs on their own hardware,
at its price, and dispute a result they find wrong: with the consumers'
verifier where it is cheaper than re-execution (Freivalds, a spot-check: its
calibrated cost and detection), then re-executing to commit their own trace;
with ``none`` or ``replication`` by re-executing at once. In modelled mode the dispute game
(``protocols/Dispute.vy``, ``proofs/dispute.md``) is modelled: the honest party wins (claims
C1 and C2), after :func:`dispute_rounds` rounds of at most ``move_timeout_s``
each, at the gas :func:`dispute_gas` measured for that many rounds (claim C4); a kind
whose disputes the operator game decides (``forward``) at its own rounds and measured gas
(:func:`game_model`).
In real mode on an EVM ledger it is **played** on the deployed contract
(:mod:`vcompute.market.chain_disputes`): every provider commits its trace, a
dispute is played move by move, and the contract's outcome decides who is
paid and who slashed, even where it differs from the model's.
The winning watcher is paid the cheater's stake, less ``burn_share`` (to the
treasury); the consumer is refunded. A watcher who finishes re-executing only
after the window closed is too late: that result stands, wrong or not
(``optimistic_missed``).

**Griefers** dispute honest results without re-executing. They lose their
bond (``bond_usd``: the honest provider gets all but the burned share), and
the honest result is final one window after the game, since a won game
restarts the window (``proofs/dispute.md``, Known limits).

**Forced errors** (Truebit): at rate ``auditors.forced_error_rate`` the
protocol plants a known-wrong result beside a job's; the watchers who
re-executed that job find it and share ``auditors.jackpot_usd`` from the
treasury (funded by ``auditors.tax``). A ``rational`` watcher re-executes
only when ``q ((1 - b) S - G) + f J >= C``: its belief ``q`` that a result
is wrong (from what it found), the stake ``S``, the burn share ``b``, its
gas ``G``, the forced-error rate ``f``, the jackpot ``J`` and its cost ``C``.
Without forced errors that is the verifier's dilemma: once cheating is rare,
watching stops paying and stops.

Example:
    >>> dispute_rounds(32), dispute_gas(32)
    (5, 2350000)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vcompute.market.agents import Auditor, MarketJob
from vcompute.market.checks import Check
from vcompute.market.config import HARDWARE, UNITS_PER_USD, MarketParams
from vcompute.market.core import Scheduler
from vcompute.market.fidelity import Outcome
from vcompute.market.metrics import Metrics
from vcompute.market.settlement import Settlement

__all__ = ["BASE_GAS", "ROUND_GAS", "Optimistic", "Watcher", "dispute_gas", "dispute_rounds", "game_model",
           "trust_metrics"]

#: Gas of one bisection round (two Merkle openings), measured: ``proofs/dispute.md`` C4,
#: ``experiments/dispute-games.toml`` (a full dispute grows ~105k gas per doubling of L).
ROUND_GAS = 105_000
#: Gas of a full dispute less its rounds: the ``dispute`` transaction and ``decide`` on a
#: width-32 int8 layer (1.93M gas for L = 2, one round; same source).
BASE_GAS = 1_825_000

_H = 3600.0
#: Schemes a watcher applies by re-executing the whole job (and so finds every wrong result).
_REEXECUTE = frozenset({"none", "replication"})
#: The same set, public: routing (``vcompute.market.routing``) prices re-executing watchers by it.
REEXECUTE = _REEXECUTE


def dispute_rounds(steps: int) -> int:
    """Rounds of a binary dispute over ``steps`` committed steps: ``ceil(log2 steps)``."""
    return (int(steps) - 1).bit_length()


def dispute_gas(steps: int) -> int:
    """Gas of a dispute played to the one-step check over ``steps`` committed steps."""
    return BASE_GAS + ROUND_GAS * dispute_rounds(steps)



def game_model(jt: Any, trace_steps: int) -> tuple[int, int, int]:
    """The modelled game of a job type: ``(rounds, gas, gas per round)``.

    A kind whose dispute adapter (:func:`vcompute.verify.dispute.market.dispute_for`) plays an
    operator game is modelled from its adapter: ``ceil(log2 n)`` rounds over the ``n`` operators of
    a job of its size, at the gas measured on those games
    (:data:`vcompute.verify.dispute.market.DISPUTE_GAS`). A float (``Dispute.vy``) game, or a kind
    without an adapter, keeps the layer game's figure: :func:`dispute_rounds` and :func:`dispute_gas`
    over ``trace_steps`` (C4).
    """
    from vcompute.verify.dispute.market import DISPUTE_GAS, dispute_for

    ad = dispute_for(jt.job_kind)
    if ad is None or ad.game == "float":
        return dispute_rounds(trace_steps), dispute_gas(trace_steps), ROUND_GAS
    size = _size_of(jt)
    return ad.rounds(size, trace_steps), ad.modelled_gas(size, trace_steps), ad.round_gas


def _size_of(jt: Any) -> Any:
    """A job type's size as its kind names it (matmul: ``real_n`` without one; others: the kind's default)."""
    if jt.size is not None:
        return jt.size
    if jt.job_kind == "matmul":
        return jt.real_n
    from vcompute.workloads.kinds import get_kind

    return get_kind(jt.job_kind).size(None)


class _Game:
    """One job type's modelled dispute: rounds, duration and gas (USD), the loser's and the winner's share."""

    __slots__ = ("rounds", "seconds", "round_gas", "gas_usd", "loser_gas_usd", "winner_gas_usd")

    def __init__(self, rounds: int, gas: int, round_gas: int, move_timeout_s: float, usd_per_gas: float) -> None:
        self.rounds, self.round_gas = int(rounds), int(round_gas)
        self.seconds = self.rounds * move_timeout_s
        self.gas_usd = gas * usd_per_gas
        # Each party pays its own openings; the winner also sends dispute / decide.
        self.loser_gas_usd = self.rounds * round_gas / 2 * usd_per_gas
        self.winner_gas_usd = self.gas_usd - self.loser_gas_usd

class Watcher:
    """A watcher (or a griefer): its account and its record.

    The ``found``/``rewards`` pair is what :class:`~vcompute.market.settle_job.JobSettler`
    updates for the party it pays a slashed stake to, as it does for an auditor.

    Args:
        name: ledger account name.
        griefer: whether it disputes honest results instead of re-executing.
        prior_cheat: prior belief that a result is wrong, worth ``prior_jobs`` watched jobs.
        prior_jobs: weight of the prior.
    """

    __slots__ = ("name", "griefer", "prior", "prior_jobs", "drawn", "watched", "seen_wrong", "found", "rewards",
                 "cost", "gas_usd", "disputes", "bonds_lost")

    def __init__(self, name: str, *, griefer: bool, prior_cheat: float, prior_jobs: float = 20.0) -> None:
        self.name, self.griefer, self.prior, self.prior_jobs = name, griefer, prior_cheat, prior_jobs
        self.drawn = self.watched = self.seen_wrong = self.found = self.rewards = 0
        self.disputes = self.bonds_lost = 0
        self.cost = self.gas_usd = 0.0

    def belief(self) -> float:
        """Current belief that a result it watches is found wrong."""
        return (self.seen_wrong + self.prior * self.prior_jobs) / (self.watched + self.prior_jobs)

    def profit(self) -> float:
        """USD gained: stakes and jackpots won, less bonds lost, compute and gas."""
        return (self.rewards - self.bonds_lost) / UNITS_PER_USD - self.cost - self.gas_usd


#: ``Checking._settle``: (job, live, audited, outcome, paid party, verify USD, latency, split).
SettleFn = Callable[..., None]


class Optimistic:
    """The challenge window, the watchers and the modelled dispute of every optimistic job.

    Args:
        params: the run's parameters (``consumers.trust == "optimistic"``).
        checks: per job kind, the consumers' check: the watchers' first look at a result
            (re-execution for ``none`` and ``replication``).
        settle: the ledger accounts (watchers' accounts are opened here).
        metrics: the run's counters.
        rng: the run's generator (watch, grief and forced-error draws, in event order).
        clock: the simulation clock and its timer.
    """

    def __init__(self, *, params: MarketParams, checks: Mapping[str, Check], settle: Settlement, metrics: Metrics,
                 rng: np.random.Generator, clock: Scheduler) -> None:

        o, aud = params.optimistic, params.auditors
        self.o, self.aud, self.st, self.m, self.rng, self.clock = o, aud, settle, metrics, rng, clock
        self.checks, self.stake_usd = checks, params.consumers.stake_usd
        self.watch_p = params.consumers.audit_p if o.watch_p is None else o.watch_p
        hw = HARDWARE[o.hardware]
        self.cpp = hw.hourly_cost / (hw.tflops * 3.6)  # USD per PFLOP on the watchers' hardware
        self.tflops = hw.tflops
        self.window = o.window_h * _H
        usd_per_gas = params.settlement.gas.price().usd_per_gas
        self.usd_per_gas = usd_per_gas
        #: Per job type of the mix: its modelled game (:func:`game_model`) and what it costs.
        self._games = {jt.name: _Game(*game_model(jt, o.trace_steps), o.move_timeout_s, usd_per_gas)
                       for jt in params.consumers.mix}
        self.rounds = max(g.rounds for g in self._games.values())
        self.game_s = self.rounds * o.move_timeout_s
        #: Longest time from a claim to its settlement: a dispute ends by ``window + game_s``
        #: (begun within the window), a griefed honest result one window after its game.
        self.hold_s = self.window + self.game_s + 1.0
        self.bond = int(round(o.bond_usd * UNITS_PER_USD))
        self.watchers = [Watcher(f"w{i}", griefer=False, prior_cheat=aud.prior_cheat) for i in range(o.watchers)]
        self.griefers = [Watcher(f"g{i}", griefer=True, prior_cheat=aud.prior_cheat) for i in range(o.griefers)]
        for w in self.watchers + self.griefers:
            settle.open_account(w.name, int(round(o.watcher_usd * UNITS_PER_USD)))
        self.jobs = self.missed = self.won = self.griefed = self.lost_by_watchers = 0
        self.watch_usd = self.total_gas_usd = 0.0
        self.games = None  # real mode: the disputes are played on Dispute.vy
        if params.mode == "real":
            from vcompute.market.chain_disputes import ChainDisputes

            seed = next(iter(checks.values())).work.seed
            self.games = ChainDisputes(steps=o.trace_steps, move_timeout_s=o.move_timeout_s,
                                       window_s=self.window + self.game_s, burn_share=o.burn_share,
                                       bond=self.bond, seed=seed)
            # a watcher can lose a played game (the contract decides): the wrong result then
            # stands one window after the game, which began up to a window after the claim
            self.hold_s += self.window

    @staticmethod
    def _detect(check: Check, cheat: str | None) -> float:
        """A watcher's chance to find ``cheat``: certain by re-execution, else the scheme's calibrated rate."""
        return 1.0 if check.scheme in _REEXECUTE else check.detect_est(cheat)

    @staticmethod
    def _check_share(check: Check, job: MarketJob) -> float:
        """The watcher's first look at a result, as a share of the job's compute (1: re-execution)."""
        return 1.0 if check.scheme in _REEXECUTE else check.frac_est(job.jtype.real_n, 0.1)

    def _will_watch(self, w: Watcher, cost: float, frac: float, redo: float, game: _Game) -> bool:
        if self.o.policy == "always":
            return True
        q = w.belief()
        win = (1.0 - self.o.burn_share) * self.stake_usd - game.winner_gas_usd
        jackpot = self.aud.forced_error_rate * self.aud.jackpot_usd
        return q * win + jackpot >= frac * cost + q * redo * cost

    def open(self, job: MarketJob, live: Sequence[int], out: Outcome, auditor: Auditor, settle_fn: SettleFn) -> None:
        """Open the challenge window on ``job``'s one live claim; settle it when the window or its dispute ends.

        Args:
            job: the job (one replica: optimistic jobs are never replicated).
            live: ``[0]``, the replica that returned a claim.
            out: the unchecked outcome (nobody blamed).
            auditor: the party settlement is told of when nobody disputes.
            settle_fn: settles the job (``Checking._settle``).
        """
        o, m, st = self.o, self.m, self.st
        game = self._games[job.jtype.name]
        self.jobs += 1
        r = live[0]
        pr = job.replicas[r]
        wrong = job.cheats[r] is not None
        pflop = job.jtype.pflop
        cost, reexec_s = pflop * self.cpp, pflop * 1000.0 / self.tflops
        # One draw per watcher, per griefer and for the forced error, whatever happens: the
        # stream stays aligned across runs that differ only in a rate (common random numbers).
        u = self.rng.random(2 * len(self.watchers) + len(self.griefers) + 1)
        forced = bool(u[-1] < self.aud.forced_error_rate)
        check = self.checks[job.jtype.kind]
        frac, d_forced = self._check_share(check, job), self._detect(check, "random_output")
        d = self._detect(check, job.cheats[r]) if wrong else 0.0
        nw, redo = len(self.watchers), 0.0 if frac >= 1.0 else 1.0
        finders: list[Watcher] = []
        forced_finders: list[Watcher] = []
        for i, w in enumerate(self.watchers):
            if u[i] >= self.watch_p:
                continue
            w.drawn += 1
            if not self._will_watch(w, cost, frac, redo, game):
                continue
            w.watched += 1
            w.cost += frac * cost
            self.watch_usd += frac * cost
            found = wrong and bool(u[nw + i] < d)
            if found:  # after a cheaper check, the watcher re-executes to commit its own trace for the dispute
                w.seen_wrong += 1
                w.cost += redo * cost
                self.watch_usd += redo * cost
                finders.append(w)
            if forced and frac * reexec_s <= self.window and u[nw + i] < d_forced:
                forced_finders.append(w)
        if forced:
            self._forced_error(forced_finders)
        claim = None
        if self.games is not None:  # the provider commits its result and trace on the contract
            claim = self.games.commit(check.work.make_job(job.key, job.jtype.real_n), provider=pr.name,
                                      cheat=job.cheats[r], key=job.key, size=_size_of(job.jtype))
        reexec_s *= frac + redo  # the check, then the re-execution for the trace
        in_time = reexec_s <= self.window
        if wrong and finders and not in_time:
            self.missed += 1
        if wrong and finders and in_time:  # the first watcher disputes; the honest party wins (C1, C2)
            w = finders[0]
            winner, game_s = "challenger", game.seconds
            if claim is not None:  # played: the contract decides, the model is not consulted
                played = self.games.dispute(claim, w.name, griefer=False, key=job.key)
                winner, game_s = played.winner, played.rounds * o.move_timeout_s
                self._dispute(w, pr, game, challenger_won=winner == "challenger", gas=played.gas,
                              rounds=played.rounds)
            else:
                self._dispute(w, pr, game, challenger_won=True)
            if winner == "claimant":  # the wrong result stood its game: the watcher's bond is lost
                self.lost_by_watchers += 1
                self._bond_lost(w, pr)
                delay = reexec_s + game_s + self.window
                self._after(delay, lambda: settle_fn(job, live, False, out, auditor, 0.0, delay))
                return
            self.won += winner == "challenger"
            lost = Outcome((), False, 0.0, f"lost a dispute to watcher {w.name}", blame=frozenset({0}))
            # nobody proved the last step: the whole stake goes to the treasury
            split = (1.0 - o.burn_share, st.treasury) if winner == "challenger" else (0.0, st.treasury)
            self._after(reexec_s + game_s,
                        lambda: settle_fn(job, live, True, lost, w, 0.0, reexec_s + game_s, split))
            return
        # A griefer disputes only with its bond in hand: a dispute without one would be free.
        grief = next((g for i, g in enumerate(self.griefers)
                      if u[2 * nw + i] < o.grief_p and st.balance(g.name) >= self.bond), None)
        if grief is not None and not wrong:  # an honest result disputed: the griefer loses its bond
            winner, game_s = "claimant", game.seconds
            if claim is not None:
                played = self.games.dispute(claim, grief.name, griefer=True, key=job.key)
                winner, game_s = played.winner, played.rounds * o.move_timeout_s
                self._dispute(grief, pr, game, challenger_won=winner != "claimant", gas=played.gas,
                              rounds=played.rounds)
            else:
                self._dispute(grief, pr, game, challenger_won=False)
            self.griefed += 1
            if winner != "claimant":  # the contract slashed an honest claim: the market follows it
                lost = Outcome((), False, 0.0, f"lost a dispute to {grief.name}", blame=frozenset({0}))
                split = (1.0 - o.burn_share, st.treasury) if winner == "challenger" else (0.0, st.treasury)
                self._after(game_s, lambda: settle_fn(job, live, True, lost, grief, 0.0, game_s, split))
                return
            self._bond_lost(grief, pr)
            delay = game_s + self.window  # a won game restarts the window
        else:
            delay = self.window
        self._after(delay, lambda: settle_fn(job, live, False, out, auditor, 0.0, delay))

    def _bond_lost(self, challenger: Watcher, pr: Any) -> None:
        """A challenger lost its game: its bond to the provider, less the burned share."""
        st, b = self.st, self.o.burn_share
        paid = st.transfer(challenger.name, pr.name, int(self.bond * (1.0 - b)))
        burned = st.transfer(challenger.name, st.treasury, self.bond - int(self.bond * (1.0 - b)))
        challenger.bonds_lost += paid + burned
        pr.earned += paid
        self.m.paid_units += paid  # a provider's ledger gain the ledger check must account for

    def _forced_error(self, finders: list[Watcher]) -> None:
        self.m.forced += 1
        if not finders:
            return
        self.m.forced_found += 1
        share = int(round(self.aud.jackpot_usd * UNITS_PER_USD)) // len(finders)
        for w in finders:
            w.rewards += self.st.transfer(self.st.treasury, w.name, share)

    def _dispute(self, challenger: Watcher, pr: Any, game: _Game, *, challenger_won: bool, gas: int | None = None,
                 rounds: int | None = None) -> None:
        """Book a dispute's gas: the modelled figures of ``game``, or a played game's ``gas`` over ``rounds``."""
        challenger.disputes += 1
        total, loser = game.gas_usd, game.loser_gas_usd
        if gas is not None:
            total = gas * self.usd_per_gas
            loser = min(total, (rounds or 0) * game.round_gas / 2 * self.usd_per_gas)
        self.total_gas_usd += total
        if challenger_won:  # the cheating provider paid its openings
            challenger.gas_usd += total - loser
            pr.compute_cost += loser
        else:  # the challenger lost: the provider sent the last step
            challenger.gas_usd += loser
            pr.compute_cost += total - loser

    def _after(self, delay: float, fn: Callable[[], None]) -> None:
        self.clock.after(delay, fn)

    def summary(self) -> dict[str, float]:
        """The policy's metrics: disputes, watchers' and griefers' profit, watching, missed windows."""
        ws, gs = self.watchers, self.griefers
        drawn = sum(w.drawn for w in ws)
        nan = float("nan")
        return {
            "optimistic_disputes": self.won + self.griefed,
            "optimistic_disputes_won": self.won,
            "optimistic_griefing": self.griefed,
            "optimistic_missed": self.missed,
            "watcher_profit": sum(w.profit() for w in ws) / len(ws) if ws else nan,
            "griefer_profit": sum(g.profit() for g in gs) / len(gs) if gs else nan,
            "watch_participation": sum(w.watched for w in ws) / drawn if drawn else nan,
            "watch_compute_usd": self.watch_usd,
            "dispute_gas_usd": self.total_gas_usd,
            "dispute_rounds": self.rounds,
            "optimistic_watchers_lost": self.lost_by_watchers,
            **(self.games.summary() if self.games is not None else {}),
        }


def trust_metrics(m: Metrics, optimistic: Optimistic | None, time_to_settlement_s: float) -> dict[str, float]:
    """Metrics every run reports, so that audits, replication and the optimistic policy compare.

    ``economy_cost_per_correct``: the price paid for results (extra replicas
    included) plus the checkers' and watchers' compute and the disputes' gas,
    per correct result; ``time_to_finality_s``: from arrival until the result
    is final (settled: checked, or its window closed). With the optimistic
    policy, its :meth:`Optimistic.summary` as well.
    """
    extra = (optimistic.watch_usd + optimistic.total_gas_usd) if optimistic is not None else 0.0
    out = {"economy_cost_per_correct": (m.paid_usd + m.verify_compute_usd + extra) / m.correct
           if m.correct else float("nan"),
           "time_to_finality_s": time_to_settlement_s}
    if optimistic is not None:
        out.update(optimistic.summary())
    return out
