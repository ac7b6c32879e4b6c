"""A consumer's check for one kind of job: which verifier, how many replicas, real or modelled.

Each job type of the mix names a job kind (:data:`~vcompute.workloads.kinds.KINDS`);
:func:`build_checks` picks the scheme per kind and asks :func:`build_check` once
per (scheme, kind, size); the market then only talks to the :class:`Check`
(and, through it, to ``Verifier``/``Claim``/``Verdict``).

Which scheme checks a kind: ``consumers.verifier_by_kind[kind]`` when set (an
explicit choice; an alias such as ``training`` names the same kind as
``train``); otherwise ``consumers.verifier``, except that in real mode a kind
whose verifiers (:attr:`~vcompute.workloads.kinds.JobKind.verifiers`) do not
include it is checked by the kind's default verifier (the first of them):
Freivalds cannot check a training run, proof-of-learning cannot check a
product. Modelled mode keeps ``consumers.verifier`` for every kind without an
override, as before kinds were registered (its per-scheme calibration rows
stand in where the table has no (kind, scheme) row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompute.market.fidelity import KindStats, ModelledWork, RealWork

__all__ = ["Check", "build_check", "build_checks", "kind_metrics"]


@dataclass
class Check:
    """How jobs of one kind are checked.

    Attributes:
        scheme: the verifier's registry name (``"none"`` for no checking).
        work: a :class:`~vcompute.market.fidelity.RealWork` or
            :class:`~vcompute.market.fidelity.ModelledWork`.
        k: claims (replicas) a checked job needs.
        table: the calibration table (estimates for auditors and providers).
        kind: the job kind (a :data:`~vcompute.workloads.kinds.KINDS` name).
        size: the kind's job size, or None (matmul: the job type's ``real_n``).
    """

    scheme: str
    work: Any
    k: int
    table: Any
    kind: str = "matmul"
    size: Any = None

    def detect_est(self, cheat: str) -> float:
        """Probability a checked claim with ``cheat`` is caught, as the market's agents estimate it."""
        if self.scheme == "none":
            return 0.0
        if self.k > 1:
            return 1.0  # a lone deviating replica always disagrees with the honest ones
        try:
            return self.table.detect(self.scheme, cheat, kind=self.kind)
        except KeyError:
            return 1.0

    def frac_est(self, n: int, running: float) -> float:
        """Expected checking work as a share of the job's compute (``running``: real mode's mean)."""
        if self.scheme != "none" and self.table.has(self.scheme, self.kind):
            from vcompute.workloads.kinds import get_kind

            return get_kind(self.kind).verify_fraction(self.table, self.scheme, self.size, n=n)
        return running


def build_check(scheme: str, params: dict[str, Any], *, mode: str, table: Any, seed: int,
                rng: np.random.Generator, backend: str = "numpy", kind: str = "matmul", size: Any = None) -> Check:
    """Set up checking ``kind`` jobs with ``scheme`` in ``mode`` (real jobs run on array ``backend`` if the kind can).

    Raises:
        ValueError: in real mode, for a verifier that cannot check (or rejects) an honest job of
            the kind; in modelled mode, for a scheme or parameters the calibration table lacks.
            Each message says what to do instead.
    """
    from vcompute.workloads.kinds import get_kind

    jk = get_kind(kind)
    if mode == "real":
        from vcompute.verify import VERIFIERS

        verifier = None if scheme == "none" else VERIFIERS.create(scheme, **{**jk.verifier_params(scheme), **params})
        work: Any = RealWork(verifier, kind=jk.name, size=size, seed=seed, backend=backend)
        if verifier is not None:
            hint = (f"check {jk.name} jobs with one of its verifiers ({', '.join(jk.verifiers)}) in "
                    f"consumers.verifier_by_kind, or use mode='modelled'")
            try:
                probe = work.run(job_key=2**62, n=8, cheats=[None] * work.replicas(), audit=True)
            except (TypeError, ValueError) as e:  # a verifier of another job kind refuses the job as misuse
                raise ValueError(f"verifier {scheme!r} cannot check {jk.name} jobs ({e}); {hint}") from None
            if probe.accepted is False:
                raise ValueError(f"verifier {scheme!r} rejects honest {jk.name} jobs ({probe.reason}); {hint}")
            work.stats = KindStats()  # the probe is not part of the run
        return Check(scheme, work, work.replicas(), table, jk.name, work.size)
    if not table.has(scheme, jk.name):
        rows = [f"{k}:{sc}" for k, by in sorted(table.kinds.items()) for sc in sorted(by)]
        raise ValueError(f"verifier {scheme!r} is not calibrated for {jk.name} jobs in modelled mode (calibrated: "
                         f"{', '.join(table.schemes)}; per kind: {', '.join(rows) or 'none'}); run "
                         f"`python -m vcompute.market.calibration --schemes {scheme}` (matmul proxy jobs) or "
                         f"`--kinds {jk.name}:{scheme}` (real {jk.name} jobs), or use mode='real'")
    replicas = 1
    if scheme != "none":
        row = table.row(scheme, jk.name)
        if dict(row.get("params", {})) != dict(params):
            raise ValueError(f"the calibration of {scheme!r} used parameters {row.get('params')}, "
                             f"not {params}; recalibrate or use mode='real'")
        replicas = int(row.get("replicas", 1))
    return Check(scheme, ModelledWork(table, scheme, replicas, rng, kind=jk.name, size=size), replicas, table,
                 jk.name, size)


def build_checks(params: Any, *, table: Any, seed: int, rng: np.random.Generator) -> dict[str, Check]:
    """One :class:`Check` per job kind of ``params.consumers.mix`` (keyed by the kind as the mix names it).

    Args:
        params: the :class:`~vcompute.market.config.MarketParams`.
        table: the calibration table.
        seed: the run's seed (real jobs and challenges derive from it).
        rng: the run's generator (modelled detection draws).

    Raises:
        ValueError: as :func:`build_check`.
    """
    from vcompute.workloads.kinds import canonical_kind, get_kind

    cons = params.consumers
    overrides = {canonical_kind(k): v for k, v in cons.verifier_by_kind.items()}
    built: dict[tuple[str, str, Any], Check] = {}
    checks: dict[str, Check] = {}
    for jt in cons.mix:
        jk = get_kind(jt.kind)
        scheme = overrides.get(jk.name, "default")
        if scheme == "default":
            scheme = cons.verifier
            if params.mode == "real" and scheme != "none" and scheme not in jk.verifiers and jk.verifiers:
                scheme = jk.verifiers[0]
        size = jt.size if jt.size is not None or jk.name != "matmul" else None
        key = (scheme, jk.name, size)
        if key not in built:
            vparams = cons.verifier_params if scheme == cons.verifier else {}
            built[key] = build_check(scheme, vparams, mode=params.mode, table=table, seed=seed, rng=rng,
                                     backend=params.real_backend, kind=jk.name, size=size)
        checks[jt.kind] = built[key]
    return checks


def kind_metrics(checks: Any, *, timing: bool = False) -> dict[str, float]:
    """Per job kind, what real mode measured (:meth:`KindStats.summary`, wall-clock metrics with
    ``timing``); empty in modelled mode."""
    stats: dict[str, KindStats] = {}
    seen: set[int] = set()
    for check in (checks.values() if hasattr(checks, "values") else checks):
        work = check.work
        if id(work) in seen or not isinstance(work, RealWork):
            continue
        seen.add(id(work))
        stats.setdefault(check.kind, KindStats()).merge(work.stats)
    out: dict[str, float] = {}
    for kind, st in sorted(stats.items()):
        out.update(st.summary(kind, timing=timing))
    return out
