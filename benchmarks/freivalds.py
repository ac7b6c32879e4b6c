"""Freivalds' check vs the product it verifies, and vs reading its operands once.

For each backend (torch, JAX), dtype (float32, bfloat16), size n and rounds k,
prints, measured side by side in one run (median of repeats):

- ``matmul``: the product ``A @ B`` itself;
- ``read``: the read-limit, the time to read A, B and C once (the faster of
  summing each and multiplying each by a ones vector);
- ``bare``: the three skinny products ``A (B R)`` and ``C R`` alone, in the
  input dtype, no tolerance (what a check cannot be faster than);
- ``naive``: ``allclose(A (B R), C R, rtol=1e-3)``, as code in the wild does;
- ``verify``: ``Freivalds(rounds=k).check`` with its derived tolerance;
- ``prepared``: the same with B prepared once (weights verified many times);

and the ratios verify/matmul and verify/read. A second table verifies whole
models (an MLP 784-1024-1024-10 on 2048 rows, a transformer block d=256,
4 heads, d_ff=1024 on 16 x 128 tokens, and a GPT-2-small-sized block d=768,
12 heads, d_ff=3072 on 4 x 256 tokens; torch and JAX, ``Freivalds(rounds=2)``):
verify time / inference time, steady state (see ``bench_models``).
Runs on CUDA when torch sees a GPU (JAX uses its default device).

Run: python benchmarks/freivalds.py [--quick] [--sizes 1024 2048 4096] [--rounds 1 4 8]
Whole models only: python benchmarks/freivalds.py --models-only --threads 1 --cpu-time
Timings on a shared machine are noisy; compare ratios within one run only
(``--threads 1 --cpu-time`` gives steadier per-core ratios on a loaded box).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np


_CLOCK = [time.perf_counter]


def _timeit(fn: Callable, sync: Callable, reps: int) -> float:
    sync(fn())  # warm-up (and compile)
    ts = []
    for _ in range(reps):
        t = _CLOCK[0]()
        sync(fn())
        ts.append(_CLOCK[0]() - t)
    return min(ts)  # best of reps: the least disturbed by other work on a shared machine


def _torch_case(n: int, dtype: str, device: str):
    import torch

    g = torch.Generator().manual_seed(n)
    dt = getattr(torch, dtype)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dt)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dt)
    c = a @ b

    def sync(x):
        if device == "cuda":
            torch.cuda.synchronize()
        return x

    ops = {"matmul": lambda: a @ b}

    def bare(k):
        r = (torch.randint(0, 2, (n, k), device=device) * 2 - 1).to(dt)
        return lambda: (a @ (b @ r), c @ r)

    def naive(k):
        r = (torch.randint(0, 2, (n, k), device=device) * 2 - 1).to(dt)
        return lambda: torch.allclose(a @ (b @ r), c @ r, rtol=1e-3, atol=1e-3)

    return a, b, c, sync, ops, bare, naive


def _jax_case(n: int, dtype: str):
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(n)
    dt = getattr(jnp, dtype)
    a = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32)).astype(dt)
    b = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32)).astype(dt)
    c = (a @ b).block_until_ready()
    sync = jax.block_until_ready
    mm = jax.jit(lambda x, y: x @ y)
    ops = {"matmul": lambda: mm(a, b)}
    bare_fn = jax.jit(lambda x, y, z, r: (x @ (y @ r), z @ r))
    naive_fn = jax.jit(lambda x, y, z, r: jnp.allclose(x @ (y @ r), z @ r, rtol=1e-3, atol=1e-3))

    def rad(k):
        return jnp.asarray(rng.integers(0, 2, (n, k)) * 2 - 1).astype(dt)

    return a, b, c, sync, ops, (lambda k: (lambda r=rad(k): bare_fn(a, b, c, r))), \
        (lambda k: (lambda r=rad(k): naive_fn(a, b, c, r)))


def bench_products(backends, dtypes, sizes, rounds, reps, device):
    from vcompute.verify import Freivalds

    print("columns: matmul = the product itself; read = reading A, B and C once (the memory-bound floor); "
          "bare = the bare skinny products A(BR), CR; naive = allclose(A(BR), CR); verify = Freivalds.check; "
          "prep = check with B prepared; v/mm = verify / matmul; v/read, prep/rd, naive/rd, bare/rd = each / read")
    # One untimed pass of the smallest case per backend and dtype first: thread pools, kernel loading and
    # JIT compilation land there, not in the first printed row.
    _rows(backends, dtypes, [min(sizes)], rounds[:1], 1, device, show=False)
    print(f"{'backend':7} {'dtype':8} {'n':>5} {'k':>2} {'matmul':>9} {'read':>8} {'bare':>8} {'naive':>8} "
          f"{'verify':>8} {'prep':>8} {'v/mm':>7} {'v/read':>7} {'prep/rd':>7} {'naive/rd':>8} {'bare/rd':>7}")
    _rows(backends, dtypes, sizes, rounds, reps, device, show=True)


def _rows(backends, dtypes, sizes, rounds, reps, device, *, show):
    from vcompute.verify import Freivalds

    for backend in backends:
        for dtype in dtypes:
            for n in sizes:
                if backend == "torch":
                    a, b, c, sync, ops, bare, naive = _torch_case(n, dtype, device)
                else:
                    a, b, c, sync, ops, bare, naive = _jax_case(n, dtype)
                t_mm = _timeit(ops["matmul"], sync, reps)
                t_read = _read_limit(backend, a, b, c, sync, reps)
                for k in rounds:
                    fr = Freivalds(rounds=k)
                    pb = fr.prepare(b)
                    t_bare = _timeit(bare(k), sync, reps)
                    t_naive = _timeit(naive(k), sync, reps)
                    seeds = iter(range(10**6))
                    t_ver = _timeit(lambda: fr.check(a, b, c, seed=next(seeds)), lambda v: v, reps)
                    t_prep = _timeit(lambda: fr.check(a, pb, c, seed=next(seeds)), lambda v: v, reps)
                    ok = fr.check(a, b, c, seed=0).accepted
                    if not show:
                        continue
                    print(f"{backend:7} {dtype:8} {n:5d} {k:2d} {t_mm*1e3:8.2f}ms {t_read*1e3:6.2f}ms "
                          f"{t_bare*1e3:6.2f}ms {t_naive*1e3:6.2f}ms {t_ver*1e3:6.2f}ms {t_prep*1e3:6.2f}ms "
                          f"{t_ver/t_mm:7.3f} {t_ver/t_read:7.2f} {t_prep/t_read:7.2f} {t_naive/t_read:8.2f} "
                          f"{t_bare/t_read:7.2f}" + ("" if ok else "  (REJECTED an honest product!)"), flush=True)


def _read_limit(backend, a, b, c, sync, reps):
    if backend == "torch":
        import torch

        ones = torch.ones(a.shape[1], 1, device=a.device, dtype=a.dtype)
        f1 = lambda: (a.sum(), b.sum(), c.sum())  # noqa: E731
        f2 = lambda: (a @ ones, b @ ones, c @ ones)  # noqa: E731
    else:
        import jax
        import jax.numpy as jnp

        ones = jnp.ones((a.shape[1], 1), a.dtype)
        s3 = jax.jit(lambda x, y, z: (x.sum(), y.sum(), z.sum()))
        g3 = jax.jit(lambda x, y, z: (x @ ones, y @ ones, z @ ones))
        f1 = lambda: s3(a, b, c)  # noqa: E731
        f2 = lambda: g3(a, b, c)  # noqa: E731
    return min(_timeit(f1, sync, reps), _timeit(f2, sync, reps))


def bench_models(quick: bool, reps: int, backends=("torch", "jax")):
    """Whole-model verification: verify time / inference time, torch and JAX, MLP and transformer block.

    ``inference`` is the plain forward pass (torch eager under ``no_grad``; JAX
    jitted); ``verify`` is one whole-model verification in steady state (weights
    prepared, replay and check kernels compiled by a warm-up call); ``checks`` is
    the share of ``verify`` spent inside the per-layer Freivalds checks (the rest
    is the replay of the glue, conversions and bookkeeping).
    """
    print(f"\n{'backend':7} {'model':24} {'inference':>10} {'verify':>9} {'checks':>7} {'layers':>6} "
          f"{'verify/inference':>17}")
    mlp_b, blk_b = (256, 2) if quick else (2048, 16)
    for backend in backends:
        cases = _torch_models(mlp_b, blk_b) if backend == "torch" else _jax_models(mlp_b, blk_b)
        for name, infer, verify in cases:
            t_inf = _timeit(infer, lambda v: v, reps)
            v = verify(0)
            if not v.accepted:
                raise SystemExit(f"{backend} {name}: an honest forward pass was REJECTED: {v.reason}")
            seeds = iter(range(1, 10**6))
            t_ver = _timeit(lambda: verify(next(seeds)), lambda v: v, reps)
            v = verify(10**6)
            share = sum(x["seconds"] for x in v.details["layers"]) / v.details["verify_s"]
            print(f"{backend:7} {name:24} {t_inf*1e3:8.1f}ms {t_ver*1e3:7.1f}ms {share:7.2f} "
                  f"{v.details['layers_checked']:6d} {t_ver/t_inf:17.3f}", flush=True)


def _torch_models(mlp_b, blk_b):
    import torch

    from vcompute.verify import Freivalds
    from vcompute.verify.freivalds.model import TorchModelVerifier
    from vcompute.workloads.models import torch_mlp, torch_provider, torch_transformer_block

    g = torch.Generator().manual_seed(0)
    for name, module, shape in (("mlp 784-1024-1024-10", torch_mlp(seed=0), (mlp_b, 784)),
                                ("block d256 h4 ff1024", torch_transformer_block(seed=0), (blk_b, 128, 256)),
                                ("block d768 h12 ff3072", torch_transformer_block(768, 12, 3072, seed=0),
                                 (max(1, blk_b // 4), 256, 768))):
        x = torch.randn(*shape, generator=g)
        out, trace = torch_provider(module, x)
        mv = TorchModelVerifier(module, Freivalds(rounds=2))

        def infer(module=module, x=x):
            with torch.no_grad():
                return module(x)

        yield (f"{name} x{shape[0]}", infer,
               lambda s, mv=mv, x=x, out=out, trace=trace: mv.verify((x,), out, trace, seed=s))


def _jax_models(mlp_b, blk_b):
    import jax
    import jax.numpy as jnp

    from vcompute.verify import Freivalds
    from vcompute.verify.freivalds.model import JaxModelVerifier
    from vcompute.workloads.models import jax_mlp, jax_provider, jax_transformer_block

    rng = np.random.default_rng(0)
    for name, (fn, p), shape in (("mlp 784-1024-1024-10", jax_mlp(seed=0), (mlp_b, 784)),
                                 ("block d256 h4 ff1024", jax_transformer_block(seed=0), (blk_b, 128, 256)),
                                 ("block d768 h12 ff3072", jax_transformer_block(768, 12, 3072, seed=0),
                                  (max(1, blk_b // 4), 256, 768))):
        x = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
        jf = jax.jit(fn)
        out, trace = jax_provider(fn, p, x)
        mv = JaxModelVerifier(fn, Freivalds(rounds=2))
        yield (f"{name} x{shape[0]}", lambda jf=jf, p=p, x=x: jf(p, x).block_until_ready(),
               lambda s, mv=mv, p=p, x=x, out=out, trace=trace: mv.verify((p, x), out, trace, seed=s))


def main(argv=None) -> None:
    """Entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats (well under a minute)")
    p.add_argument("--sizes", type=int, nargs="*")
    p.add_argument("--rounds", type=int, nargs="*")
    p.add_argument("--backends", nargs="*", default=["torch", "jax"])
    p.add_argument("--dtypes", nargs="*", default=["float32", "bfloat16"])
    p.add_argument("--no-models", action="store_true", help="skip the whole-model table")
    p.add_argument("--models-only", action="store_true", help="only the whole-model table")
    p.add_argument("--threads", type=int, help="CPU threads for torch, BLAS and XLA (set before importing them)")
    p.add_argument("--cpu-time", action="store_true",
                   help="measure process CPU time instead of wall time (steadier on a loaded machine; "
                        "use with --threads 1)")
    args = p.parse_args(argv)
    if args.threads:
        import os

        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                   f" intra_op_parallelism_threads={args.threads}").strip()
    if args.cpu_time:
        _CLOCK[0] = time.process_time
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = args.sizes or ([256, 512] if args.quick else [1024, 2048, 4096])
    rounds = args.rounds or ([1, 8] if args.quick else [1, 4, 8])
    reps = 3 if args.quick else 5
    clock = "CPU" if args.cpu_time else "wall"
    print(f"# device: {device}; torch threads: {torch.get_num_threads()}; best of {reps} ({clock} time)")
    if not args.models_only:
        bench_products(args.backends, args.dtypes, sizes, rounds, reps, device)
    if not args.no_models:
        bench_models(args.quick, reps, args.backends)


if __name__ == "__main__":
    main()
