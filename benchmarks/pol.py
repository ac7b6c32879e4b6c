"""Proof-of-learning: verification time and bytes vs proving, measured side by side.

For each framework, trains an honest transcript (MLP on digits), then
verifies it with our verifier (final segment + top-Q + random segments,
chain check, download only the challenged segments), with ours before the
final-model rule (no forced final segment, no chain check), and with the
reference-style verifier (downloads everything, replays top-Q per epoch),
and prints the ratios. Times are
process CPU seconds (less disturbed by other load on a shared machine than
wall time, still noisy); the re-executed fraction and bytes are exact.

Run: python benchmarks/pol.py [--quick]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    """Print prove/verify times and the verify-over-prove ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run (a few seconds)")
    args = ap.parse_args()
    from vcompute.verify.pol import PoLVerifier, pol_context, prove
    from vcompute.workloads.training import TrainSpec, make_training_job

    import torch

    # One intra-op thread: these models are tiny, and on a loaded machine idle
    # worker threads spin and bill CPU time to whichever side runs torch.
    torch.set_num_threads(1)
    steps = 20 if args.quick else 200
    print(f"{'framework':<9} {'verifier':<10} {'prove_cpu_s':>11} {'verify_cpu_s':>12} {'verify/prove':>13} "
          f"{'reexecuted':>11} {'bytes/transcript':>17}")
    for fw in ("torch", "jax"):
        job = make_training_job(TrainSpec(framework=fw, steps=steps, checkpoint_every=2))
        prove(job, "warmup")  # imports and JIT compilation are not part of either side
        t = time.process_time()
        claim, tr = prove(job, "alice")
        prove_cpu_s = time.process_time() - t
        for name, v in (("ours", PoLVerifier(top_q=1, random_segments=6)),
                        ("before", PoLVerifier(top_q=1, random_segments=6, final_segments=0, chain_check=False)),
                        ("reference", PoLVerifier.reference(delta=0.03))):
            t = time.process_time()
            verdict = v.verify(job, [claim], pol_context([claim], {"alice": tr}, seed=0))
            verify_cpu_s = time.process_time() - t
            assert verdict.accepted, verdict.reason
            print(f"{fw:<9} {name:<10} {prove_cpu_s:>11.3f} {verify_cpu_s:>12.3f} {verify_cpu_s / prove_cpu_s:>13.3f} "
                  f"{verdict.cost.reexecuted_fraction:>11.3f} {verdict.cost.evidence_bytes / tr.nbytes:>17.3f}")


if __name__ == "__main__":
    main()
