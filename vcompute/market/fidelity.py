"""The two fidelity modes: what happens to a job once it is matched.

Both turn "these providers, cheating like so, ran this job; was it
audited?" into an :class:`Outcome`: the providers' output commitments,
the verdict, and what checking cost as a share of the job's compute.

- :class:`RealWork` builds a real job of the job type's kind
  (:data:`~vcompute.workloads.kinds.KINDS`: matmul, forward, generate, train
  or a plugin), has each provider execute it with the behaviour its market
  cheat means for that kind (:meth:`~vcompute.workloads.kinds.JobKind.behaviour_for`)
  and runs the real :class:`~vcompute.verify.Verifier` on the claims.
  Detection is whatever the verifier decides; its blame is the outcome's. Where
  replicas disagree and the verdict names nobody, the majority's output stands if
  the verdict accepted it, and a trusted referee's if it rejected. Each provider
  executes its own copy of the job, so no provider's code can rewrite the job the
  verifier checks against.
- :class:`ModelledWork` replaces execution and checking by the
  calibration table measured with :class:`RealWork`
  (:mod:`vcompute.market.calibration`), so a run scales to 10^5+ jobs.

The market sees only ``Verifier``, ``Claim`` and ``Verdict`` (through
:class:`Outcome`): a new scheme needs no change here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["KindStats", "Outcome", "ModelledWork", "RealWork", "resolve", "verify_fraction"]

# Modelled output tokens: equal tokens mean bit-identical outputs.
_HONEST = 0
_DETERMINISTIC = {"low_precision": 1}  # the same shortcut gives the same bits
_COLLUDED = 2


@dataclass(frozen=True)
class Outcome:
    """What one matched job produced.

    Attributes:
        tokens: one output commitment (or modelled token) per replica;
            equal values mean identical outputs.
        accepted: the verdict, or None when the job was not checked.
        verify_fraction: checking work as a share of the job's compute.
        reason: the verdict's reason (empty when not checked).
        reference: when checked replicas disagree, the honest output's
            commitment from a trusted re-execution (a referee, as in
            Truebit's dispute game), else None. Its cost is in ``verify_fraction``.
        blame: indices of the claims judged wrong (from the verdict's
            :attr:`~vcompute.core.Verdict.blame`); settlement pays every
            other claim and slashes these. Empty when not checked.
    """

    tokens: tuple[Any, ...]
    accepted: bool | None
    verify_fraction: float
    reason: str = ""
    reference: Any = None
    blame: frozenset[int] = frozenset()


def verify_fraction(cost: Any, job_flops: float) -> float:
    """Checking work ``cost`` (a :class:`~vcompute.core.Cost`) as a share of the job's FLOPs.

    Uses the metered FLOPs, or the re-executed fraction for schemes that
    meter re-execution instead.

    Example:
        >>> from vcompute.core import Cost
        >>> verify_fraction(Cost(flops=10.0), 100.0)
        0.1
    """
    frac = cost.flops / job_flops if job_flops > 0 else 0.0
    return float(max(frac, cost.reexecuted_fraction))


@dataclass
class KindStats:
    """What real mode measured for one job kind (the per-kind table of a run).

    Attributes:
        jobs: jobs executed (each by every replica).
        checked: jobs a verifier checked.
        compute_s: wall-clock seconds the providers spent executing.
        verify_s: wall-clock seconds the verifier spent on the checked jobs.
        honest_s: execution seconds of the honest claims of checked jobs (the compute checking is compared with).
        honest_claims: honest claims of checked jobs.
        cheats: cheating claims executed.
        cheats_checked: cheating claims a verifier saw.
        caught: cheating claims the verdict blamed.
        wrong_accepted: cheating claims that stood (not blamed, checked or not).
        false_rejects: honest claims the verdict blamed.
        verify_share: summed checking work as a share of each checked job's compute (FLOPs or
            re-executed fraction, :attr:`Outcome.verify_fraction`).
    """

    jobs: int = 0
    checked: int = 0
    compute_s: float = 0.0
    verify_s: float = 0.0
    honest_s: float = 0.0
    honest_claims: int = 0
    cheats: int = 0
    cheats_checked: int = 0
    caught: int = 0
    wrong_accepted: int = 0
    false_rejects: int = 0
    verify_share: float = 0.0

    def merge(self, other: KindStats) -> None:
        """Add ``other``'s counts to these."""
        for f in self.__dataclass_fields__:
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def summary(self, kind: str, *, timing: bool = False) -> dict[str, float]:
        """The kind's metrics (nan where nothing was measured).

        ``real_jobs_<kind>``, ``verify_flops_share_<kind>``, ``detection_<kind>`` and
        ``wrong_accepted_<kind>`` are reproducible bit for bit; with ``timing`` the wall-clock
        ``jobs_per_s_<kind>`` and ``verify_over_compute_<kind>`` are added (they are not).
        """
        nan = float("nan")
        out = {f"real_jobs_{kind}": float(self.jobs),
               f"verify_flops_share_{kind}": self.verify_share / self.checked if self.checked else nan,
               f"detection_{kind}": self.caught / self.cheats_checked if self.cheats_checked else nan,
               f"wrong_accepted_{kind}": float(self.wrong_accepted)}
        if timing:
            busy = self.compute_s + self.verify_s
            per_honest = self.honest_s / self.honest_claims if self.honest_claims else nan
            per_check = self.verify_s / self.checked if self.checked else nan
            out[f"jobs_per_s_{kind}"] = self.jobs / busy if busy > 0 else nan
            out[f"verify_over_compute_{kind}"] = per_check / per_honest if per_honest > 0 else nan
        return out


class RealWork:
    """Providers execute real jobs of one kind; a real verifier checks them.

    Args:
        verifier: any :class:`~vcompute.verify.Verifier`, or None (no checking).
        kind: the job kind (a :data:`~vcompute.workloads.kinds.KINDS` name or alias).
        size: the kind's job size (None: ``n`` of each :meth:`run` for matmul, the kind's default otherwise).
        backend: array backend of the jobs, for kinds that run on it (others use their own framework).
        dtype: input dtype (matmul).
        seed: root seed; job inputs, cheats and challenges derive from it.

    Attributes:
        stats: the :class:`KindStats` measured so far.

    Example:
        >>> from vcompute.verify import Freivalds
        >>> w = RealWork(Freivalds(rounds=2), seed=0)
        >>> w.run(job_key=1, n=16, cheats=[None], audit=True).accepted
        True
        >>> w.run(job_key=2, n=16, cheats=["random_output"], audit=True).blame
        frozenset({0})
    """

    def __init__(self, verifier: Any, *, kind: str = "matmul", size: Any = None, backend: str = "numpy",
                 dtype: str = "float32", seed: int = 0) -> None:
        from vcompute.workloads.kinds import get_kind

        self.verifier = verifier
        self.kind = get_kind(kind)
        self.size = None if size is None else self.kind.size(size)
        self.backend = backend if backend in self.kind.backends else self.kind.backends[0]
        self.dtype = dtype
        self.seed = int(seed)
        self.stats = KindStats()
        self._replicas: int | None = None

    def make_job(self, job_key: int, n: int | None = None) -> Any:
        """The job with sequence number ``job_key`` (its inputs seeded from it)."""
        size = self.size if self.size is not None else (n if self.kind.name == "matmul" else None)
        extra = {"dtype": self.dtype} if self.kind.name == "matmul" else {}
        return self.kind.make_job(size, seed=_mix(self.seed, job_key, 1), backend=self.backend, **extra)

    def replicas(self, n: int = 8) -> int:
        """Claims the verifier needs for a job (1 when there is no verifier)."""
        if self.verifier is None:
            return 1
        if self._replicas is None:
            self._replicas = int(self.verifier.replicas(self.make_job(2**62 + 1, n)))
        return self._replicas

    def run(self, *, job_key: int, n: int, cheats: Sequence[str | None], audit: bool,
            colluding: Sequence[bool] | None = None) -> Outcome:
        """Execute one job on ``len(cheats)`` providers and maybe check it.

        Args:
            job_key: the job's sequence number (seeds its inputs).
            n: matrix size of a matmul job without a configured size (ignored by other kinds).
            cheats: per provider, its market cheat (``random_output``, ``skip_k``, ``low_precision``,
                or a behaviour name of the kind) or None (honest).
            audit: whether the verifier checks the claims.
            colluding: per provider, whether it shares its cheat with the
                other colluders (same randomness, hence the same output).
        """
        import time

        from vcompute.verify.base import VerifyContext

        kind = self.kind
        job = self.make_job(job_key, n)
        colluding = colluding or [False] * len(cheats)
        claims, seconds = [], []
        for i, cheat in enumerate(cheats):
            salt = _mix(self.seed, 7, 7) if colluding[i] else _mix(self.seed, job_key, 100 + i)
            rng = np.random.default_rng([salt, job_key])
            # each provider runs its own copy of the job: in one process a behaviour holds the job
            # object, and one that rewrote its inputs (or a module cached on it) would rewrite what
            # the verifier checks against and what a co-provider computes on
            own = self.make_job(job_key, n)
            t0 = time.perf_counter()
            claims.append(kind.execute(own, kind.behaviour_for(cheat), rng=rng, provider=f"p{i}"))
            seconds.append(time.perf_counter() - t0)
        st = self.stats
        st.jobs += 1
        st.compute_s += sum(seconds)
        st.cheats += sum(c is not None for c in cheats)
        tokens = tuple(c.commitment for c in claims)
        if not audit or self.verifier is None:
            st.wrong_accepted += sum(c is not None for c in cheats)
            return Outcome(tokens, None, 0.0)
        # Challenges are drawn only now, after every claim is committed.
        ctx = VerifyContext(rng=np.random.default_rng([self.seed, job_key, 2]),
                            reexecute=kind.reexecute, challenge=kind.challenge_channel(job, claims))
        t0 = time.perf_counter()
        verdict = self.verifier.verify(job, claims, ctx)
        st.verify_s += time.perf_counter() - t0
        flops = kind.flops(job)
        frac = max(verify_fraction(verdict.cost, flops), verify_fraction(ctx.cost, flops))
        # Schemes that meter their extra replicas as re-execution (replication)
        # had that work done by the paid replicas, not by the checker.
        frac = max(0.0, frac - (len(claims) - 1))
        reference, referee = resolve(tokens)
        if not verdict.accepted and not verdict.blame and len(set(tokens)) > 1:
            # the scheme refused the majority's answer and named nobody: the votes must not decide
            # (a colluding majority would be paid and the honest minority slashed); a referee does
            referee = True
        if referee:
            reference = kind.execute(job, "honest", rng=np.random.default_rng(0), provider="referee").commitment
            frac += 1.0
        if verdict.blame or not verdict.accepted and len(set(tokens)) <= 1:
            blame = verdict.blamed(len(claims))
        elif len(set(tokens)) > 1:  # a referee (or the majority) settles who was wrong
            blame = frozenset(i for i, t in enumerate(tokens) if t != reference)
        else:
            blame = verdict.blamed(len(claims))
        st.checked += 1
        st.verify_share += frac
        for i, cheat in enumerate(cheats):
            if cheat is None:
                st.honest_s += seconds[i]
                st.honest_claims += 1
                st.false_rejects += i in blame
            else:
                st.cheats_checked += 1
                st.caught += i in blame
                st.wrong_accepted += i not in blame
        return Outcome(tokens, verdict.accepted, frac, verdict.reason, reference, blame)


class ModelledWork:
    """Execution and checking drawn from a calibration table.

    A single claim is rejected with the calibrated detection probability
    of its cheat (or the false-reject rate when honest); several replicas
    are compared token by token, as replication compares commitments.

    Args:
        table: a :class:`~vcompute.market.calibration.CalibrationTable`.
        scheme: the verifier's name (``"none"`` for no checking).
        replicas: claims the scheme needs per checked job.
        rng: the run's generator for detection draws.
        kind: the job kind whose (kind, scheme) calibration row applies (the scheme's own row
            where the table has none), or None for the scheme's row.
        size: the kind's job size (None: ``n`` of each :meth:`run`).
    """

    def __init__(self, table: Any, scheme: str, replicas: int, rng: np.random.Generator, *,
                 kind: str | None = None, size: Any = None) -> None:
        from vcompute.workloads.kinds import get_kind

        self.table = table
        self.scheme = scheme
        self._replicas = int(replicas)
        self.rng = rng
        self.kind = None if kind is None else get_kind(kind)
        self.size = size
        self._unique = 1000
        # Table look-ups, once each: the table, scheme, kind and size are fixed for the run.
        self._detect: dict[str | None, float] = {}
        self._fraction: dict[Any, float] = {}

    def replicas(self, n: int = 8) -> int:
        """Claims the scheme needs per checked job."""
        return self._replicas

    def detect_p(self, cheat: str | None) -> float:
        """Probability one checked claim with this cheat (None: honest) is rejected."""
        d = self._detect.get(cheat)
        if d is None:
            d = self._detect[cheat] = self._detect_p(cheat)
        return d

    def _detect_p(self, cheat: str | None) -> float:
        if self.scheme == "none":
            return 0.0
        if self.kind is not None:
            return self.kind.detect(self.table, self.scheme, cheat or "honest")
        return self.table.detect(self.scheme, cheat or "honest")

    def fraction(self, n: int) -> float:
        """Calibrated checking work as a share of the job's compute (size ``n`` unless one is configured)."""
        f = self._fraction.get(n)
        if f is None:
            f = self._fraction[n] = self._fraction_at(n)
        return f

    def _fraction_at(self, n: int) -> float:
        if self.kind is not None:
            return self.kind.verify_fraction(self.table, self.scheme, self.size, n=n)
        return self.table.verify_fraction(self.scheme, n)

    def run(self, *, job_key: int, n: int, cheats: Sequence[str | None], audit: bool,
            colluding: Sequence[bool] | None = None) -> Outcome:
        """Like :meth:`RealWork.run`, drawn from the table instead of computed."""
        colluding = colluding or [False] * len(cheats)
        tokens = []
        for cheat, coll in zip(cheats, colluding):
            if cheat is None:
                tokens.append(_HONEST)
            elif coll:
                tokens.append(_COLLUDED)
            elif cheat in _DETERMINISTIC:
                tokens.append(_DETERMINISTIC[cheat])
            else:
                self._unique += 1
                tokens.append(self._unique)
        tokens_t = tuple(tokens)
        if not audit or self.scheme == "none":
            return Outcome(tokens_t, None, 0.0)
        frac = self.fraction(n)
        if len(tokens_t) > 1:
            if all(t == tokens_t[0] for t in tokens_t):
                return Outcome(tokens_t, True, frac, "replicas agree")
            reference, referee = resolve(tokens_t)
            if referee:
                reference, frac = _HONEST, frac + 1.0
            blame = frozenset(i for i, t in enumerate(tokens_t) if t != reference)
            return Outcome(tokens_t, reference == _HONEST, frac, "replicas disagree", reference, blame)
        caught = self.rng.random() < self.detect_p(cheats[0])
        return Outcome(tokens_t, not caught, frac, "modelled rejection" if caught else "modelled acceptance",
                       blame=frozenset({0}) if caught else frozenset())


def resolve(tokens: Sequence[Any]) -> tuple[Any, bool]:
    """Which output stands when replicas disagree: ``(token, needs_referee)``.

    A strict majority's output stands (even a colluding one: the weakness
    of replication); without one a trusted referee re-executes the job.
    All-equal tokens need neither.

    Example:
        >>> resolve(["a", "a", "b"]), resolve(["a", "b"]), resolve(["a", "a"])
        (('a', False), (None, True), (None, False))
    """
    if len(set(tokens)) <= 1:
        return None, False
    counts: dict[Any, int] = {}
    for t in tokens:
        counts[t] = counts.get(t, 0) + 1
    best = max(counts.values())
    if 2 * best > len(tokens):
        return next(t for t in tokens if counts[t] == best), False
    return None, True


def _mix(*xs: int) -> int:
    h = 0x12345
    for x in xs:
        h = (h * 0x100000001B3 ^ (int(x) & 0xFFFFFFFFFFFFFFFF)) & 0x7FFFFFFFFFFFFFFF
    return h
