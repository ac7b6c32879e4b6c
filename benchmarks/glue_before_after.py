"""The sampled-glue check of this tree beside the one of an earlier commit, in one process (1 CPU thread).

Loads ``vcompute/verify/inference/glue.py`` of ``--before`` (a git revision) as a second module
beside this tree's, both using this tree's kernels and trace (the "before" with the two-row fused
Freivalds kernels, which is all the kernels of a revision before the four-row ones; ``--same-kernels``: both
with this tree's choice), and times, alternated on the same
GPT-2-small-shaped model and traces of ``--tokens`` tokens: the prefill, one trace checked alone
(``SampledGlue.check``) and per trace of ``--batch`` (``check_many``), medians of ``--repeats``,
process CPU time (``proofs/inference-glue.md``, *Cost*).

Run: NUMBA_NUM_THREADS=1 python benchmarks/glue_before_after.py --before 5a42317
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def _load_before(rev: str):
    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(["git", "-C", str(root), "show", f"{rev}:vcompute/verify/inference/glue.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "glue_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("glue_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision of the earlier glue.py")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--same-kernels", action="store_true", help="the before with this tree's fused kernels too")
    args = ap.parse_args()
    import torch

    from vcompute.verify.freivalds import fused
    from vcompute.verify.inference.glue import SampledGlue
    from vcompute.verify.inference.glue_trace import trace_prefill
    from vcompute.workloads.lm import TransformerLM, config_named, prefill

    torch.set_num_threads(1)
    before = _load_before(args.before)
    T, N = args.tokens, args.batch
    base = config_named("gpt2-small")

    def clock(fn, *, old: bool = False) -> float:
        fused._STATE["quad"] = not old or args.same_kernels
        try:
            t0 = time.process_time()
            fn()
            return time.process_time() - t0
        finally:
            fused._STATE["quad"] = True

    for L in (1, base.n_layers):
        m = TransformerLM(base.replace(n_layers=L, max_len=max(base.max_len, T)), seed=0)
        items = [(i, trace_prefill(m, i)) for i in (np.random.default_rng(j).integers(0, base.vocab, T)
                                                     for j in range(N))]
        ids, tr = items[0]
        old, new = before.SampledGlue(rows=16, rounds=10), SampledGlue(rows=16, rounds=10)
        for v in (old, new):  # warm, and both accept the honest traces
            fused._STATE["quad"] = v is new or args.same_kernels
            assert v.check(m, ids, tr, challenge_seed=0).accepted
            assert all(x.accepted for x in v.check_many(m, items, challenge_seed=0))
        fused._STATE["quad"] = True
        prefill(m, ids)
        res: dict[str, list[float]] = {k: [] for k in ("prefill", "old1", "new1", "oldN", "newN")}
        for r in range(args.repeats):
            res["prefill"].append(clock(lambda: prefill(m, ids)))
            res["old1"].append(clock(lambda: old.check(m, ids, tr, challenge_seed=r), old=True))
            res["new1"].append(clock(lambda: new.check(m, ids, tr, challenge_seed=r)))
            res["oldN"].append(clock(lambda: old.check_many(m, items, challenge_seed=r), old=True) / N)
            res["newN"].append(clock(lambda: new.check_many(m, items, challenge_seed=r)) / N)
        md = {k: statistics.median(v) for k, v in res.items()}
        p = md["prefill"]
        print(f"{L:2} block(s): prefill {p:.3f} s | one trace: before {md['old1']:.3f} ({md['old1'] / p:.3f}), "
              f"after {md['new1']:.3f} ({md['new1'] / p:.3f}) | per trace of {N}: before {md['oldN']:.3f} "
              f"({md['oldN'] / p:.3f}), after {md['newN']:.3f} ({md['newN'] / p:.3f})", flush=True)


if __name__ == "__main__":
    main()
