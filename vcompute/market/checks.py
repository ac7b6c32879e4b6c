"""A consumer's check for one kind of job: which verifier, how many replicas, real or modelled.

Consumers may check each job kind with a different scheme (``verifier_by_kind``,
e.g. Freivalds on matmul jobs and proof-of-learning on training runs); the
market asks :func:`build_check` once per scheme and then only talks to the
:class:`Check` (and, through it, to ``Verifier``/``Claim``/``Verdict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompute.market.fidelity import ModelledWork, RealWork

__all__ = ["Check", "build_check"]


@dataclass
class Check:
    """How jobs of one kind are checked.

    Attributes:
        scheme: the verifier's registry name (``"none"`` for no checking).
        work: a :class:`~vcompute.market.fidelity.RealWork` or
            :class:`~vcompute.market.fidelity.ModelledWork`.
        k: claims (replicas) a checked job needs.
        table: the calibration table (estimates for auditors and providers).
    """

    scheme: str
    work: Any
    k: int
    table: Any

    def detect_est(self, cheat: str) -> float:
        """Probability a checked claim with ``cheat`` is caught, as the market's agents estimate it."""
        if self.scheme == "none":
            return 0.0
        if self.k > 1:
            return 1.0  # a lone deviating replica always disagrees with the honest ones
        try:
            return self.table.detect(self.scheme, cheat)
        except KeyError:
            return 1.0

    def frac_est(self, n: int, running: float) -> float:
        """Expected checking work as a share of the job's compute (``running``: real mode's mean)."""
        if self.scheme != "none" and self.table.has(self.scheme):
            return self.table.verify_fraction(self.scheme, n)
        return running


def build_check(scheme: str, params: dict[str, Any], *, mode: str, table: Any, seed: int,
                rng: np.random.Generator, backend: str = "numpy") -> Check:
    """Set up checking with ``scheme`` in ``mode`` (real jobs run on array ``backend``).

    Raises:
        ValueError: in real mode, for a verifier that rejects honest matmul
            proxy jobs; in modelled mode, for a scheme or parameters the
            calibration table lacks. Each message says what to do instead.
    """
    if mode == "real":
        from vcompute.verify import VERIFIERS

        verifier = None if scheme == "none" else VERIFIERS.create(scheme, **params)
        work: Any = RealWork(verifier, seed=seed, backend=backend)
        if verifier is not None:
            hint = ("real mode runs matmul proxy jobs: use mode='modelled' (calibrated on its own workloads, "
                    "e.g. `python -m vcompute.market.calibration_pol`)")
            try:
                probe = work.run(job_key=2**62, n=8, cheats=[None] * work.replicas(), audit=True)
            except (TypeError, ValueError) as e:  # a verifier of another job kind refuses the job as misuse
                raise ValueError(f"verifier {scheme!r} cannot check matmul jobs ({e}); {hint}") from None
            if probe.accepted is False:
                raise ValueError(f"verifier {scheme!r} rejects honest matmul jobs ({probe.reason}); {hint}")
        return Check(scheme, work, work.replicas(), table)
    if not table.has(scheme):
        raise ValueError(f"verifier {scheme!r} is not calibrated for modelled mode (calibrated: "
                         f"{', '.join(table.schemes)}); run `python -m vcompute.market.calibration "
                         f"--schemes {scheme}` or use mode='real'")
    replicas = 1
    if scheme != "none":
        row = table.schemes[scheme]
        if dict(row.get("params", {})) != dict(params):
            raise ValueError(f"the calibration of {scheme!r} used parameters {row.get('params')}, "
                             f"not {params}; recalibrate or use mode='real'")
        replicas = int(row.get("replicas", 1))
    return Check(scheme, ModelledWork(table, scheme, replicas, rng), replicas, table)
