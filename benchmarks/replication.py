"""What deciding a replicated job costs, next to computing it once.

For float32 matmul jobs of growing size, three replicas' claims are decided by
the Replication verifier with bitwise equality (content hashes) and with a
calibrated tolerance, and the time is compared with one honest execution of
the job, all measured side by side in one run. The ratio ``decide / compute``
is what replication adds on the verifier's side; the k - 1 extra executions
are the real bill (``Verdict.cost.reexecuted_fraction``), which the adaptive
policies in proofs/replication.md cut. Timings on a shared machine are noisy:
read the ratios, not the absolute numbers.

Run: python benchmarks/replication.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from vcompute.verify import VerifyContext
from vcompute.verify.replication import Replication
from vcompute.workloads import execute, make_matmul_job


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    """Print decide/compute ratios per size and equality."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    args = ap.parse_args()
    sizes = [128, 256] if args.quick else [256, 512, 1024, 2048]
    repeats = 3 if args.quick else 7
    print(f"{'n':>6} {'compute_s':>10} {'bitwise/compute':>16} {'tolerance/compute':>18}")
    for n in sizes:
        job = make_matmul_job(n, seed=n)
        rng = np.random.default_rng(0)
        claims = [execute(job, "honest", rng=rng, provider=f"p{i}") for i in range(3)]
        compute = _median_s(lambda: job.inputs["a"] @ job.inputs["b"], repeats)
        ratios = []
        for verifier in (Replication(k=3), Replication(k=3, equality="tolerance", rtol=8e-6)):
            t = _median_s(lambda v=verifier: v.verify(job, claims, VerifyContext(seed=0)), repeats)
            ratios.append(t / compute)
        print(f"{n:>6} {compute:>10.4f} {ratios[0]:>16.3f} {ratios[1]:>18.3f}")


if __name__ == "__main__":
    main()
