"""Throughput of the serial, local and Ray executors on one sweep, side by side.

The sweep is ``synthetic.burn``: seeded elementwise numpy work whose
checksum is identical on every executor (checked here). Each executor runs
the same runs; the table gives wall time, runs per second and, for the
parallel executors, the scaling efficiency on this machine's cores:

    efficiency(w) = steady throughput with w workers / (w * serial throughput)

where steady throughput counts completions after start-up (spawning a
pool, starting Ray), which is reported on its own as the time to the first
result. Timings on a shared machine are noisy: read the ratios, not the
absolute numbers.

Run: python benchmarks/sweep.py [--quick] [--runs N] [--size S]
"""

from __future__ import annotations

import argparse
import os
import time

from vcompute.experiment.config import expand_runs, load_config
from vcompute.experiment.executors import create_executor

CONFIG = """
[experiment]
name = "bench-sweep"
task = "synthetic.burn"
seeds = {runs}
[params]
size = {size}
iters = {iters}
"""


def sweep(executor: str, workers: int, runs: int, size: int, iters: int) -> dict[str, object]:
    """Run the sweep through ``executor``; completion times and checksums.

    Returns:
        ``wall`` (seconds, start-up included), ``first`` (seconds to the first
        result), ``steady`` (runs per second between the ``workers``-th and the
        last completion, i.e. without start-up) and ``sums`` (checksum per run).
    """
    cfg = load_config(text=CONFIG.format(runs=runs, size=size, iters=iters))
    specs = expand_runs(cfg)
    t0 = time.perf_counter()
    ex = create_executor(executor, workers=workers)
    done: list[float] = []
    out = {}
    try:
        for r, rec in ex.map(specs):
            done.append(time.perf_counter() - t0)
            out[r.key] = rec
    finally:
        ex.close()
    wall = time.perf_counter() - t0
    failed = [rec.get("error") for rec in out.values() if rec["status"] != "ok"]
    if failed or len(out) != len(specs):
        raise RuntimeError(f"{executor}: {len(failed)} failed runs ({failed[:1]}), {len(out)}/{len(specs)} done")
    k = min(workers, runs - 1)
    steady = (runs - k) / max(done[-1] - done[k - 1], 1e-9)
    return {"wall": wall, "first": done[0], "steady": steady,
            "sums": {key: rec["metrics"]["checksum"] for key, rec in out.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small sweep (well under a minute)")
    ap.add_argument("--runs", type=int, help="runs in the sweep")
    ap.add_argument("--size", type=int, default=200_000, help="array elements per run")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = ap.parse_args()
    runs = args.runs or (24 if args.quick else 96)
    iters = 20 if args.quick else 40
    cores = os.cpu_count() or 1
    ws = sorted({1, min(2, cores), cores})

    plan = [("serial", 1)] + [("local", w) for w in ws]
    try:
        import ray  # noqa: F401

        if not args.no_ray:
            # Ray takes seconds to start: in --quick mode only the widest cluster is measured.
            plan += [("ray", w) for w in (ws[-1:] if args.quick else ws)]
    except ImportError:
        print("ray not installed: skipping the Ray executor (pip install 'vcompute[ray]')")

    print(f"sweep: {runs} runs of synthetic.burn (size {args.size}, iters {iters}); "
          f"{cores} cores; timings on a shared machine are noisy")
    reference = None
    rows = []
    for name, w in plan:
        res = sweep(name, w, runs, args.size, iters)
        if reference is None:
            reference = res["sums"]
        elif res["sums"] != reference:
            raise SystemExit(f"{name} with {w} workers computed different checksums than serial")
        rows.append({"executor": name, "workers": w, **res})

    serial = rows[0]["steady"]
    print(f"\n{'executor':8s} {'workers':>7s} {'wall s':>8s} {'1st result s':>12s} {'runs/s (wall)':>13s} "
          f"{'runs/s (steady)':>15s} {'vs serial':>9s} {'efficiency':>10s}")
    for r in rows:
        print(f"{r['executor']:8s} {r['workers']:7d} {r['wall']:8.2f} {r['first']:12.2f} {runs / r['wall']:13.2f} "
              f"{r['steady']:15.2f} {r['steady'] / serial:9.2f} {r['steady'] / (r['workers'] * serial):10.2f}")
    print("\nsteady: runs/s between the w-th and the last completion (start-up excluded); vs serial: steady "
          "throughput / serial's; efficiency: steady / (workers x serial). Identical checksums on every executor.")


if __name__ == "__main__":
    main()
