"""``vcompute pol calibrate``: measure honest replay error and print the delta it implies.

The lead wires it into ``vcompute/cli.py`` with ``pol_cli.add_parser(subparsers)``;
the parser's ``func`` default is the handler.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_parser", "handle"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``pol calibrate`` to a CLI's subparsers and return the ``pol`` parser."""
    pol = subparsers.add_parser("pol", help="proof-of-learning tools")
    sub = pol.add_subparsers(dest="pol_command", required=True)
    cal = sub.add_parser("calibrate", help="run honest reproductions and choose delta")
    cal.add_argument("--frameworks", default="torch,jax", help="comma-separated prover frameworks")
    cal.add_argument("--models", default="mlp", help="comma-separated models (mlp, cnn)")
    cal.add_argument("--seeds", type=int, default=3, help="honest transcripts per framework and model")
    cal.add_argument("--steps", type=int, default=200)
    cal.add_argument("--checkpoint-every", type=int, default=2)
    cal.add_argument("--segments", type=int, default=10, help="segments replayed per transcript")
    cal.add_argument("--safety", type=float, default=100.0,
                     help="without cheap-precision conditions: delta = safety x largest honest error")
    cal.add_argument("--json", action="store_true", help="print the full result as JSON")
    cal.set_defaults(func=handle)
    return pol


def handle(args: argparse.Namespace) -> int:
    """Run the calibration described by ``args`` and print it; returns the exit code."""
    from vcompute.verify.pol.calibrate import calibrate

    out = calibrate(frameworks=args.frameworks.split(","), models=args.models.split(","),
                    seeds=range(args.seeds), segments=args.segments, safety=args.safety,
                    steps=args.steps, checkpoint_every=args.checkpoint_every)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print("relative replay error (|claimed - replayed| / |replayed update|), honest conditions then "
          "cheap-precision training claimed as fp32:")
    for cond, s in out["relative"].items():
        print(f"  {cond:<16} n={s.get('n', 0):<4} median={s.get('median', 0):.3g} p99={s.get('p99', 0):.3g} "
              f"max={s.get('max', 0):.3g} bit-exact={s.get('zero_fraction', 0):.0%}")
    ref = out["reference_absolute"]
    if ref.get("n"):
        print(f"reference (unseeded augmentation), absolute l2: median={ref['median']:.3g} max={ref['max']:.3g}")
    cheap = out["cheap_min"]
    if cheap is not None:
        print(f"largest honest error {out['honest_max']:.3g}, smallest cheap-precision error {cheap:.3g} "
              f"(separation {out['separation']:.3g}x)")
    print(f"chosen delta = {out['delta']:.3g} (relative)")
    return 0
