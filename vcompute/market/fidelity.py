"""The two fidelity modes: what happens to a job once it is matched.

Both turn "these providers, cheating like so, ran this job; was it
audited?" into an :class:`Outcome`: the providers' output commitments,
the verdict, and what checking cost as a share of the job's compute.

- :class:`RealWork` builds a real matmul job, has each provider execute it
  with its workload behaviour (``honest``, ``skip_k``, ``random_output``,
  ``low_precision``) and runs the real :class:`~vcompute.verify.Verifier`
  on the claims. Detection is whatever the verifier decides.
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

__all__ = ["Outcome", "ModelledWork", "RealWork", "resolve", "verify_fraction"]

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


class RealWork:
    """Providers execute real matmul jobs; a real verifier checks them.

    Args:
        verifier: any :class:`~vcompute.verify.Verifier`, or None (no checking).
        backend: array backend of the jobs (``numpy``, ``torch``, ``jax``).
        dtype: input dtype.
        seed: root seed; job inputs, cheats and challenges derive from it.

    Example:
        >>> from vcompute.verify import Freivalds
        >>> w = RealWork(Freivalds(rounds=2), seed=0)
        >>> w.run(job_key=1, n=16, cheats=[None], audit=True).accepted
        True
        >>> w.run(job_key=2, n=16, cheats=["random_output"], audit=True).accepted
        False
    """

    def __init__(self, verifier: Any, *, backend: str = "numpy", dtype: str = "float32", seed: int = 0) -> None:
        self.verifier = verifier
        self.backend = backend
        self.dtype = dtype
        self.seed = int(seed)

    def replicas(self, n: int = 8) -> int:
        """Claims the verifier needs for a job (1 when there is no verifier)."""
        if self.verifier is None:
            return 1
        from vcompute.workloads.matmul import make_matmul_job

        return int(self.verifier.replicas(make_matmul_job(n, seed=0)))

    def run(self, *, job_key: int, n: int, cheats: Sequence[str | None], audit: bool,
            colluding: Sequence[bool] | None = None) -> Outcome:
        """Execute one job on ``len(cheats)`` providers and maybe check it.

        Args:
            job_key: the job's sequence number (seeds its inputs).
            n: matrix size of the proxy job.
            cheats: per provider, the workload behaviour of its cheat or None (honest).
            audit: whether the verifier checks the claims.
            colluding: per provider, whether it shares its cheat with the
                other colluders (same randomness, hence the same output).
        """
        from vcompute.verify.base import VerifyContext
        from vcompute.workloads.behaviours import execute
        from vcompute.workloads.matmul import make_matmul_job, matmul_flops

        job = make_matmul_job(n, backend=self.backend, dtype=self.dtype, seed=_mix(self.seed, job_key, 1))
        colluding = colluding or [False] * len(cheats)
        claims = []
        for i, cheat in enumerate(cheats):
            salt = _mix(self.seed, 7, 7) if colluding[i] else _mix(self.seed, job_key, 100 + i)
            rng = np.random.default_rng([salt, job_key])
            claims.append(execute(job, cheat or "honest", rng=rng, provider=f"p{i}"))
        tokens = tuple(c.commitment for c in claims)
        if not audit or self.verifier is None:
            return Outcome(tokens, None, 0.0)
        # Challenges are drawn only now, after every claim is committed.
        ctx = VerifyContext(rng=np.random.default_rng([self.seed, job_key, 2]),
                            reexecute=lambda j, piece: execute(j, "honest", rng=np.random.default_rng(0)).output)
        verdict = self.verifier.verify(job, claims, ctx)
        flops = matmul_flops(job)
        frac = max(verify_fraction(verdict.cost, flops), verify_fraction(ctx.cost, flops))
        # Schemes that meter their extra replicas as re-execution (replication)
        # had that work done by the paid replicas, not by the checker.
        frac = max(0.0, frac - (len(claims) - 1))
        reference, referee = resolve(tokens)
        if referee:
            reference = execute(job, "honest", rng=np.random.default_rng(0), provider="referee").commitment
            frac += 1.0
        if verdict.blame or not verdict.accepted and len(set(tokens)) <= 1:
            blame = verdict.blamed(len(claims))
        elif len(set(tokens)) > 1:  # a referee (or the majority) settles who was wrong
            blame = frozenset(i for i, t in enumerate(tokens) if t != reference)
        else:
            blame = verdict.blamed(len(claims))
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
    """

    def __init__(self, table: Any, scheme: str, replicas: int, rng: np.random.Generator) -> None:
        self.table = table
        self.scheme = scheme
        self._replicas = int(replicas)
        self.rng = rng
        self._unique = 1000

    def replicas(self, n: int = 8) -> int:
        """Claims the scheme needs per checked job."""
        return self._replicas

    def detect_p(self, cheat: str | None) -> float:
        """Probability one checked claim with this cheat (None: honest) is rejected."""
        if self.scheme == "none":
            return 0.0
        return self.table.detect(self.scheme, cheat or "honest")

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
        frac = self.table.verify_fraction(self.scheme, n)
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
