"""The calibration table behind modelled mode, measured by running real mode.

For each verifier and each cheat, :func:`calibrate` runs real matmul jobs
through :class:`~vcompute.market.fidelity.RealWork` (real providers, the
real verifier) and records how often the check rejects (with the count,
so a confidence interval can be drawn) and what checking cost as a share
of the job's compute at each measured size. Modelled mode then draws
detections and costs from this table instead of computing them.

The built-in table ships as ``calibration.json`` next to this module;
regenerate it with::

    python -m vcompute.market.calibration --out vcompute/market/calibration.json

The per-scheme rows are measured on matmul proxy jobs and are the fallback
for every job kind; rows measured on real jobs of another kind
(:attr:`CalibrationTable.kinds`, per (kind, scheme)) are added with::

    python -m vcompute.market.calibration --kinds forward:model generate:generate --trials 40
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcompute.workloads.kinds.base import MARKET_CHEATS

__all__ = ["CalibrationTable", "calibrate", "calibrate_kind", "default_table", "wilson_interval"]

_DEFAULT_PATH = Path(__file__).with_name("calibration.json")
CHEATS = ("honest", *MARKET_CHEATS)
#: Schemes that check the matmul proxy jobs of real mode.
MATMUL_SCHEMES = ("freivalds", "spotcheck", "replication")


def wilson_interval(hits: int, n: int, z: float = 2.576) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (99 % by default).

    Example:
        >>> lo, hi = wilson_interval(50, 100)
        >>> round(lo, 2), round(hi, 2)
        (0.38, 0.62)
    """
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


@dataclass
class CalibrationTable:
    """Detection rates and verification costs per scheme, measured in real mode.

    Attributes:
        schemes: ``{scheme: {"detect": {cheat: [hits, trials]},
            "verify_fraction": {n: fraction}}}``, measured on matmul proxy jobs:
            the fallback for every job kind.
        kinds: ``{kind: {scheme: row}}``, rows of the same form measured on real jobs of
            that kind (``verify_fraction`` keyed by the kind's size names).
        meta: how the table was measured (sizes, trials, seed, versions).
    """

    schemes: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # rows keyed by the kind's registered name: a row written under an alias ("training") would
        # otherwise never be read for the kind, which would silently fall back to matmul proxy rows
        kinds: dict[str, dict[str, dict[str, Any]]] = {}
        for name, rows in self.kinds.items():
            kind = _kind_key(name)
            if kind in kinds:
                raise ValueError(f"the calibration table has rows for kind {kind!r} under both {kind!r} and "
                                 f"an alias ({name!r}); keep one")
            kinds[kind] = rows
        self.kinds = kinds

    def has(self, scheme: str, kind: str | None = None) -> bool:
        """Whether ``scheme`` was calibrated (for ``kind``, or as the per-scheme fallback)."""
        return scheme == "none" or scheme in self.schemes or self.has_kind(kind, scheme)

    def has_kind(self, kind: str | None, scheme: str) -> bool:
        """Whether the table has a row measured on real ``kind`` jobs for ``scheme``."""
        return kind is not None and scheme in self.kinds.get(_kind_key(kind), {})

    def row(self, scheme: str, kind: str | None = None) -> dict[str, Any]:
        """The (kind, scheme) row, else the scheme's own row.

        Raises:
            KeyError: if neither was calibrated (says how to calibrate it).
        """
        if self.has_kind(kind, scheme):
            return self.kinds[_kind_key(kind)][scheme]  # type: ignore[arg-type]
        return self._row(scheme)

    def _row(self, scheme: str) -> dict[str, Any]:
        try:
            return self.schemes[scheme]
        except KeyError:
            raise KeyError(f"verifier {scheme!r} is not in the calibration table (has: "
                           f"{', '.join(self.schemes) or 'nothing'}); run "
                           f"`python -m vcompute.market.calibration --schemes {scheme}` or use mode='real'") from None

    def detect(self, scheme: str, cheat: str, kind: str | None = None) -> float:
        """Measured probability that a checked claim with ``cheat`` is rejected (on ``kind`` jobs if measured).

        Raises:
            KeyError: if the scheme or cheat was not calibrated (says how to calibrate it).
        """
        row = self.row(scheme, kind)["detect"]
        if cheat not in row:
            raise KeyError(f"cheat {cheat!r} not calibrated for {scheme!r} (has: {', '.join(row)})")
        hits, n = row[cheat]
        return hits / n if n else 0.0

    def interval(self, scheme: str, cheat: str, kind: str | None = None) -> tuple[float, float]:
        """99 % Wilson interval of :meth:`detect`."""
        hits, n = self.row(scheme, kind)["detect"][cheat]
        return wilson_interval(hits, n)

    def verify_fraction(self, scheme: str, n: int | str, kind: str | None = None) -> float:
        """Checking work as a share of the job's compute at matrix size ``n`` (or ``kind``'s size named ``n``).

        Matrix sizes are interpolated linearly in log-log between measured
        sizes and extrapolated with the slope of the nearest two; a named
        size is looked up (the nearest measured one if it was not).
        """
        key = (scheme, n, kind if self.has_kind(kind, scheme) else None)
        cache = self.__dict__.setdefault("_fractions", {})
        if key not in cache:
            cache[key] = self._fraction(scheme, n, key[2])
        return cache[key]

    def _fraction(self, scheme: str, n: int | str, kind: str | None = None) -> float:
        measured = self.row(scheme, kind)["verify_fraction"]
        if isinstance(n, str) or not all(str(k).isdigit() for k in measured):
            if str(n) in measured:
                return float(measured[str(n)])
            return float(next(iter(measured.values())))  # a size not measured: the first one that was
        pts = sorted((int(k), float(v)) for k, v in measured.items())
        if len(pts) == 1 or any(v <= 0 for _, v in pts):  # no log-log line: nearest size
            return min(pts, key=lambda p: abs(p[0] - n))[1]
        i = 1
        while i < len(pts) - 1 and pts[i][0] < n:
            i += 1
        (x0, y0), (x1, y1) = pts[i - 1], pts[i]
        t = (math.log(n) - math.log(x0)) / (math.log(x1) - math.log(x0))
        return math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0)))

    def to_json(self) -> str:
        """The table as JSON text."""
        data: dict[str, Any] = {"meta": self.meta, "schemes": self.schemes}
        if self.kinds:
            data["kinds"] = self.kinds
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def load(cls, path: str | Path) -> CalibrationTable:
        """Read a table written by :meth:`to_json`.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
        """
        data = json.loads(Path(path).read_text())
        return cls(schemes=data["schemes"], meta=data.get("meta", {}), kinds=data.get("kinds", {}))


def _kind_key(name: str) -> str:
    """The registered name of the kind ``name`` (an alias resolved); an unregistered plugin's as given."""
    from vcompute.core.registry import UnknownPluginError
    from vcompute.workloads.kinds import canonical_kind

    try:
        return canonical_kind(name)
    except UnknownPluginError:
        return name


_CACHE: dict[str, CalibrationTable] = {}


def default_table(path: str | None = None) -> CalibrationTable:
    """The built-in calibration table (or the one at ``path``), cached."""
    key = str(path or _DEFAULT_PATH)
    if key not in _CACHE:
        _CACHE[key] = CalibrationTable.load(key)
    return _CACHE[key]


def calibrate(schemes: Sequence[str] = ("freivalds",), *, sizes: Sequence[int] = (16, 48, 128, 256),
              trials: int = 200, fraction_trials: int = 50, seed: int = 0,
              verifier_params: dict[str, dict[str, Any]] | None = None) -> CalibrationTable:
    """Measure detection rates and checking costs by running real mode.

    Every trial is a fresh real matmul job; one provider cheats (or not)
    and, for schemes that need several claims, the others are honest.

    Args:
        schemes: registered verifier names.
        sizes: matrix sizes at which checking cost is measured (detection
            is measured at the middle size).
        trials: jobs per (scheme, cheat).
        fraction_trials: honest jobs per size for the checking cost (schemes
            that re-execute at random need many for a stable mean).
        seed: root seed.
        verifier_params: per scheme, keyword arguments for the verifier.

    Returns:
        The measured :class:`CalibrationTable`.
    """
    from vcompute.market.fidelity import RealWork
    from vcompute.verify import VERIFIERS

    out: dict[str, dict[str, Any]] = {}
    verifier_params = verifier_params or {}
    n_detect = sorted(sizes)[len(sizes) // 2]
    for scheme in schemes:
        work = RealWork(VERIFIERS.create(scheme, **verifier_params.get(scheme, {})), seed=seed)
        k = work.replicas()
        detect = {}
        for ci, cheat in enumerate(CHEATS):
            hits = 0
            for t in range(trials):
                first = None if cheat == "honest" else cheat
                o = work.run(job_key=ci * 1_000_003 + t, n=n_detect, cheats=[first] + [None] * (k - 1), audit=True)
                hits += 0 in o.blame  # the cheating claim blamed (a replicated scheme accepts the others)
            detect[cheat] = [hits, trials]
        fractions = {}
        for n in sizes:
            fs = [work.run(job_key=10**9 + t, n=n, cheats=[None] * k, audit=True).verify_fraction
                  for t in range(fraction_trials)]
            fractions[str(n)] = sum(fs) / len(fs)
        out[scheme] = {"detect": detect, "verify_fraction": fractions, "replicas": k,
                       "params": verifier_params.get(scheme, {})}
    import numpy

    meta = {"sizes": list(sizes), "detect_n": n_detect, "trials": trials, "seed": seed,
            "numpy": numpy.__version__, "backend": "numpy", "dtype": "float32"}
    return CalibrationTable(schemes=out, meta=meta)


def calibrate_kind(kind: str, scheme: str | None = None, *, sizes: Sequence[Any] | None = None, trials: int = 40,
                   fraction_trials: int = 10, seed: int = 0, verifier_params: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Measure one (kind, scheme) row on real jobs of the kind (:class:`~vcompute.market.fidelity.RealWork`).

    Each market cheat runs as the behaviour it means for the kind
    (:attr:`~vcompute.workloads.kinds.JobKind.cheats`).

    Args:
        kind: a registered job kind.
        scheme: a verifier name (default: the kind's default verifier).
        sizes: the kind's sizes at which checking cost is measured (default: its default size);
            detection is measured at the first.
        trials: jobs per cheat.
        fraction_trials: honest jobs per size for the checking cost.
        seed: root seed.
        verifier_params: keyword arguments for the verifier.

    Returns:
        The row for ``CalibrationTable.kinds[kind][scheme]``.
    """
    from vcompute.market.fidelity import RealWork
    from vcompute.verify import VERIFIERS
    from vcompute.workloads.kinds import get_kind

    jk = get_kind(kind)
    scheme = scheme or jk.verifiers[0]
    params = dict(verifier_params or {})
    sizes = list(sizes) if sizes else [jk.size()]
    works = {str(s): RealWork(VERIFIERS.create(scheme, **{**jk.verifier_params(scheme), **params}), kind=jk.name,
                              size=s, seed=seed) for s in sizes}
    first = works[str(sizes[0])]
    k = first.replicas()
    detect = {}
    for ci, cheat in enumerate(CHEATS):
        hits = 0
        for t in range(trials):
            o = first.run(job_key=ci * 1_000_003 + t, n=0, cheats=[None if cheat == "honest" else cheat]
                          + [None] * (k - 1), audit=True)
            hits += 0 in o.blame  # the cheating claim blamed (a replicated scheme accepts the others)
        detect[cheat] = [hits, trials]
    fractions = {}
    for name, work in works.items():
        fs = [work.run(job_key=10**9 + t, n=0, cheats=[None] * k, audit=True).verify_fraction
              for t in range(fraction_trials)]
        fractions[name] = sum(fs) / len(fs)
    return {"detect": detect, "verify_fraction": fractions, "replicas": k, "params": params,
            "standins": {c: jk.behaviour_for(c) for c in CHEATS if c != "honest"},
            "measured_by": f"python -m vcompute.market.calibration --kinds {jk.name}:{scheme} --trials {trials}"}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: measure a table (or (kind, scheme) rows merged into one) and write it as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", nargs="+", default=list(MATMUL_SCHEMES),
                    help=f"verifiers (default: {' '.join(MATMUL_SCHEMES)})")
    ap.add_argument("--kinds", nargs="+", default=None, metavar="KIND:SCHEME",
                    help="measure (kind, scheme) rows on real jobs of each kind and merge them into --out")
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(_DEFAULT_PATH))
    a = ap.parse_args(argv)
    if a.kinds:
        table = CalibrationTable.load(a.out)
        for spec in a.kinds:
            from vcompute.workloads.kinds import get_kind

            kind, _, scheme = spec.partition(":")
            scheme = scheme or get_kind(kind).verifiers[0]
            row = calibrate_kind(kind, scheme, trials=a.trials, seed=a.seed)
            table.kinds.setdefault(get_kind(kind).name, {})[scheme] = row
            print(f"{kind}: {row['detect']} verify_fraction {row['verify_fraction']}")
        Path(a.out).write_text(table.to_json() + "\n")
        print(f"wrote {a.out}: {', '.join(a.kinds)}")
        return
    schemes = a.schemes
    table = calibrate(schemes, trials=a.trials, seed=a.seed)
    Path(a.out).write_text(table.to_json() + "\n")
    print(f"wrote {a.out}: {', '.join(schemes)}")


if __name__ == "__main__":
    main()
