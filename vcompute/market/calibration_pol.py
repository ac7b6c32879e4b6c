"""Calibrating proof-of-learning for modelled mode, on real training runs.

Real mode runs matmul proxy jobs, which PoL does not check; PoL's row of the
calibration table is therefore measured here on real (small) training jobs:
an honest prover and three real PoL spoofs from
:mod:`vcompute.workloads.training.pol.adversaries`, standing in for the market's cheats:

==================  =================  =========================================================
market cheat        PoL adversary      why
==================  =================  =========================================================
``random_output``   ``interpolate``    no training at all: a fabricated path to a stolen model
``skip_k``          ``truncate``       trains part of the run, fabricates the rest
``low_precision``   ``low_precision``  trains every step under fp16 autocast and claims fp32
==================  =================  =========================================================

Checking cost is the verifier's metered re-executed fraction on these
short runs; it is far above what PoL costs on long runs (it replays a fixed
number of segments), so the row is conservative on cost.

Run: python -m vcompute.market.calibration_pol [--trials 10]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from vcompute.workloads.kinds.train import TrainKind

__all__ = ["POL_STANDINS", "calibrate_pol"]

#: Market cheat -> the PoL adversary that stands in for it (the train kind's cheat map).
POL_STANDINS = dict(TrainKind.cheats)


def calibrate_pol(*, trials: int = 10, steps: int = 16, checkpoint_every: int = 1, seed: int = 0,
                  verifier_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Measure PoL's detection rates and checking cost on real training jobs.

    Args:
        trials: training jobs per cheat (each a fresh seed).
        steps: training steps per job.
        checkpoint_every: steps per committed segment.
        seed: root seed.
        verifier_params: keyword arguments for :class:`~vcompute.verify.pol.PoLVerifier`.

    Returns:
        The ``"pol"`` row of a :class:`~vcompute.market.calibration.CalibrationTable`.
    """
    from vcompute.verify.pol import PoLVerifier, pol_context, prove
    from vcompute.workloads.training.pol.adversaries import run_adversary
    from vcompute.workloads.training import make_training_job

    verifier_params = dict(verifier_params or {})
    verifier = PoLVerifier(**verifier_params)
    detect: dict[str, list[int]] = {}
    fractions = []
    for ci, cheat in enumerate(("honest", *POL_STANDINS)):
        hits = 0
        for t in range(trials):
            job = make_training_job(dataset="synthetic", steps=steps, checkpoint_every=checkpoint_every,
                                    seed=seed * 100_003 + ci * 1009 + t + 1)
            if cheat == "honest":
                claim, transcript = prove(job, "prover")
            else:
                spoof = run_adversary(POL_STANDINS[cheat], job, "prover", rng=np.random.default_rng([seed, ci, t]))
                claim, transcript = spoof.claim, spoof.transcript
            ctx = pol_context([claim], {"prover": transcript}, seed=seed + t)
            verdict = verifier.verify(job, [claim], ctx)
            hits += not verdict.accepted
            if cheat == "honest":
                fractions.append(max(verdict.cost.reexecuted_fraction, ctx.cost.reexecuted_fraction))
        detect[cheat] = [hits, trials]
    frac = float(np.mean(fractions)) if fractions else 1.0
    return {"detect": detect, "verify_fraction": {"16": frac}, "replicas": 1, "params": verifier_params,
            "standins": dict(POL_STANDINS), "steps": steps, "checkpoint_every": checkpoint_every}


def main(argv: list[str] | None = None) -> None:
    """Command line: measure the PoL row and merge it into a calibration table file."""
    from vcompute.market.calibration import _DEFAULT_PATH, CalibrationTable

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table", default=str(_DEFAULT_PATH), help="table to merge the row into")
    ap.add_argument("--out", default=None, help="where to write (default: --table)")
    a = ap.parse_args(argv)
    table = CalibrationTable.load(a.table)
    table.schemes["pol"] = calibrate_pol(trials=a.trials, seed=a.seed)
    out = a.out or a.table
    Path(out).write_text(table.to_json() + "\n")
    print(f"wrote {out}: pol {table.schemes['pol']['detect']}")


if __name__ == "__main__":
    main()
