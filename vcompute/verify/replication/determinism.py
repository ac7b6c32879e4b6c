"""Reproducible execution modes for torch and JAX, and a divergence measurement tool.

Bitwise agreement between honest replicas needs the same library build,
hardware, kernel choice and reduction order. Vendor facts this module acts
on (cited in ``proofs/replication.md``):

- cuBLAS results are bitwise reproducible run to run only for the same
  toolkit version, GPU architecture and SM count; multi-stream use needs
  ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (or ``:16:8``).
- torch: ``torch.use_deterministic_algorithms(True)`` (raises on kernels
  with no deterministic version), ``torch.backends.cudnn.benchmark = False``.
- XLA: ``--xla_gpu_deterministic_ops=true``; on CPU,
  ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``
  pins the thread count. XLA flags are read once, when the backend starts,
  so :func:`jax_environment` returns them for a fresh process.

:func:`measure_divergence` runs one small model layer by layer under many
configurations (thread counts, backends, dtypes, batch composition,
repeats) and reports per-layer divergence from a float64 reference and from
a baseline configuration: the numbers tolerances are calibrated from.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vcompute.verify.replication.equality import max_ulp_distance, relative_error

__all__ = ["reproducible_torch", "jax_environment", "DivergenceReport", "measure_divergence", "model_weights",
           "forward_numpy", "forward_torch", "forward_jax", "LAYERS"]

#: Layer names of the measurement model, in order.
LAYERS = ("linear1", "gelu1", "linear2", "gelu2", "layernorm", "attention", "logits", "softmax")


@contextlib.contextmanager
def reproducible_torch(*, threads: int | None = 1, deterministic: bool = True,
                       seed: int | None = None) -> Iterator[None]:
    """Run torch with deterministic kernels and a fixed intra-op thread count; restore on exit.

    Args:
        threads: intra-op threads (None leaves the current count).
        deterministic: ``use_deterministic_algorithms`` and cuDNN flags.
        seed: if given, ``torch.manual_seed(seed)``.

    Example:
        >>> import torch
        >>> with reproducible_torch(threads=1):
        ...     torch.get_num_threads()
        1
    """
    import torch

    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic and saved[3]
        if seed is not None:
            torch.manual_seed(seed)
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        if saved[4] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]


def jax_environment(*, threads: int | None = 1, deterministic: bool = True) -> dict[str, str]:
    """Environment variables that make a *new* JAX process reproducible.

    Args:
        threads: 1 pins XLA:CPU to one thread (None leaves it).
        deterministic: add ``--xla_gpu_deterministic_ops=true``.

    Returns:
        A dict to merge into ``os.environ`` of a subprocess (XLA reads its
        flags once, at backend start).

    Example:
        >>> "--xla_gpu_deterministic_ops=true" in jax_environment()["XLA_FLAGS"]
        True
    """
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if f]
    if deterministic:
        flags.append("--xla_gpu_deterministic_ops=true")
    if threads == 1:
        flags += ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]
    env = {"XLA_FLAGS": " ".join(flags)}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads))
    return env


def model_weights(*, d_in: int = 256, d_hidden: int = 512, d_out: int = 64, batch: int = 64,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded float64 inputs and weights of the measurement model.

    Example:
        >>> model_weights(batch=2)["x"].shape
        (2, 256)
    """
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((batch, d_in)),
            "w1": rng.standard_normal((d_in, d_hidden)) / np.sqrt(d_in),
            "w2": rng.standard_normal((d_hidden, d_hidden)) / np.sqrt(d_hidden),
            "wq": rng.standard_normal((d_hidden, d_out)) / np.sqrt(d_hidden),
            "wk": rng.standard_normal((d_hidden, d_out)) / np.sqrt(d_hidden),
            "w3": rng.standard_normal((d_hidden, d_out)) / np.sqrt(d_hidden)}


def _forward(xp: Any, w: dict[str, Any], erf: Callable[[Any], Any], softmax: Callable[[Any], Any]) -> list[Any]:
    """The model once, written against an array namespace: one activation per layer."""
    # python floats are "weak" scalars in numpy, torch and JAX: they never promote float32 to float64
    r2 = math.sqrt(2.0)
    h1 = w["x"] @ w["w1"]
    g1 = 0.5 * h1 * (1.0 + erf(h1 / r2))
    h2 = g1 @ w["w2"]
    g2 = 0.5 * h2 * (1.0 + erf(h2 / r2))
    mu = xp.mean(g2, axis=-1, keepdims=True)
    var = xp.mean((g2 - mu) ** 2, axis=-1, keepdims=True)
    ln = (g2 - mu) / xp.sqrt(var + 1e-5)
    q, k = ln @ w["wq"], ln @ w["wk"]
    att = softmax((q @ k.T) / math.sqrt(q.shape[-1])) @ ln
    logits = att @ w["w3"]
    return [h1, g1, h2, g2, ln, att, logits, softmax(logits)]


def forward_numpy(w: dict[str, np.ndarray], dtype: str = "float64") -> list[np.ndarray]:
    """The model in numpy (float64 is the reference)."""
    from math import erf as _erf

    verf = np.vectorize(_erf, otypes=[np.float64])
    ww = {k: v.astype(dtype) for k, v in w.items()}

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    return _forward(np, ww, lambda z: verf(z).astype(z.dtype), softmax)


def forward_torch(w: dict[str, np.ndarray], dtype: str = "float32") -> list[np.ndarray]:
    """The model in torch on CPU, activations returned as float64 numpy."""
    import torch

    dt = getattr(torch, dtype)
    ww = {k: torch.from_numpy(v).to(dt) for k, v in w.items()}
    with torch.no_grad():
        outs = _forward(torch, ww, torch.erf, lambda z: torch.softmax(z, dim=-1))
    return [o.to(torch.float64).numpy() for o in outs]


def forward_jax(w: dict[str, np.ndarray], dtype: str = "float32") -> list[np.ndarray]:
    """The model in JAX (jitted, CPU), activations returned as float64 numpy."""
    import jax
    import jax.numpy as jnp

    ctx = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
    with ctx:
        dt = getattr(jnp, dtype)
        ww = {k: jnp.asarray(v, dtype=dt) for k, v in w.items()}
        fn = jax.jit(lambda p: _forward(jnp, p, jax.scipy.special.erf, lambda z: jax.nn.softmax(z, axis=-1)))
        outs = fn(ww)
        return [np.asarray(o.astype(jnp.float32 if dtype != "float64" else jnp.float64), dtype=np.float64)
                for o in outs]


@dataclass
class DivergenceReport:
    """Per-layer divergence of each configuration.

    Attributes:
        rows: one dict per (configuration, layer): ``config``, ``layer``,
            ``rel_vs_fp64`` and ``rel_vs_base`` (per-tensor relative error),
            ``ulp_vs_base`` (max ULP distance at the tensor's scale, in float32
            or, for bfloat16 configs, bfloat16 ULPs), ``ulp_p50`` / ``ulp_p99``
            (the distribution of that distance over elements), ``frac_differ``
            (share of elements not bitwise equal),
            ``bitwise_vs_base`` (1 if identical to the baseline config).
        base: the baseline configuration's name.
        repeats_bitwise: per family of repeated runs (``torch-f32-t1``,
            ``jax-f32``...), 1 if every repeat was bitwise identical.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    base: str = ""
    repeats_bitwise: dict[str, int] = field(default_factory=dict)

    def max_rel(self, *, configs: list[str] | None = None, key: str = "rel_vs_base") -> float:
        """Largest relative divergence over the chosen configurations (all if None)."""
        vals = [r[key] for r in self.rows if (configs is None or r["config"] in configs) and r[key] == r[key]]
        return float(max(vals)) if vals else 0.0

    def _row(self, config: str, layer: str) -> dict[str, Any] | None:
        return next((x for x in self.rows if x["config"] == config and x["layer"] == layer), None)

    def to_markdown(self) -> str:
        """A table: configuration x layer, ``rel_vs_base / ulp_vs_base / rel_vs_fp64``."""
        configs = list(dict.fromkeys(r["config"] for r in self.rows))
        lines = ["| config | " + " | ".join(LAYERS) + " |", "|---" * (len(LAYERS) + 1) + "|"]
        for c in configs:
            cells = []
            for layer in LAYERS:
                r = self._row(c, layer)
                cells.append("n/a" if r is None else "0 (bitwise)" if r["bitwise_vs_base"] else
                             f"{r['rel_vs_base']:.1e} / {r['ulp_vs_base']:.0f}u")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("| config | " + " | ".join(f"{lay} vs fp64" for lay in LAYERS) + " |")
        lines.append("|---" * (len(LAYERS) + 1) + "|")
        for c in configs:
            cells = ["n/a" if self._row(c, lay) is None else f"{self._row(c, lay)['rel_vs_fp64']:.1e}"
                     for lay in LAYERS]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"- repeats bitwise identical, {k}: {'yes' if v else 'no'}" for k, v in self.repeats_bitwise.items()]
        return "\n".join(lines)


def _configs(backends: tuple[str, ...], repeats: int) -> list[tuple[str, str, Callable[[dict], list]]]:
    import torch  # noqa: F401  (torch configs below need it)

    out: list[tuple[str, str, Callable[[dict], list]]] = []

    def torch_run(dtype: str, threads: int, deterministic: bool = True):
        def run(w: dict) -> list:
            with reproducible_torch(threads=threads, deterministic=deterministic):
                return forward_torch(w, dtype)
        return run

    if "torch" in backends:
        for rep in range(repeats):
            out.append((f"torch-f32-t1-run{rep}", "float32", torch_run("float32", 1)))
        out.append(("torch-f32-t2", "float32", torch_run("float32", 2)))
        out.append(("torch-f32-t2-nondet", "float32", torch_run("float32", 2, deterministic=False)))
        out.append(("torch-bf16-t1", "bfloat16", torch_run("bfloat16", 1)))
        out.append(("torch-f64-t1", "float64", torch_run("float64", 1)))
    if "jax" in backends:
        for rep in range(repeats):
            out.append((f"jax-f32-run{rep}", "float32", lambda w: forward_jax(w, "float32")))
        out.append(("jax-f64", "float64", lambda w: forward_jax(w, "float64")))
    if "numpy" in backends:
        out.append(("numpy-f32", "float32", lambda w: forward_numpy(w, "float32")))
    return out


def measure_divergence(*, backends: tuple[str, ...] = ("torch", "jax", "numpy"), repeats: int = 3,
                       seed: int = 0, batch: int = 64, jax_subprocess: bool = False) -> DivergenceReport:
    """Run the measurement model under many configurations; report per-layer divergence.

    Configurations: torch float32 with 1 thread (``repeats`` times, the
    baseline is the first), 2 threads, 2 threads without deterministic
    algorithms, bfloat16 and float64; JAX float32 (``repeats`` times,
    jitted) and float64; numpy float32; plus ``torch-f32-batch1``, the
    first rows computed in a batch of 1 (batch composition changes kernel
    blocking). Every configuration is compared with the float64 numpy
    reference and with the baseline.

    Args:
        backends: which of torch, jax, numpy to include (torch is required
            for the baseline).
        repeats: repeated runs of the baseline-like configurations.
        seed: seeds the weights and inputs.
        batch: rows in the input batch.
        jax_subprocess: also run JAX float32 in a fresh process pinned to one
            XLA:CPU thread (:func:`jax_environment`), ``jax-f32-xla1thread``.

    Returns:
        A :class:`DivergenceReport`.

    Raises:
        ValueError: if torch is not among ``backends``.
    """
    if "torch" not in backends:
        raise ValueError("the baseline configuration is torch float32 with 1 thread: include 'torch'")
    w = model_weights(batch=batch, seed=seed)
    ref = forward_numpy(w, "float64")
    configs = _configs(tuple(backends), repeats)
    results = {name: (dtype, run(w)) for name, dtype, run in configs}
    # batch composition: rows computed alone vs inside the batch (compare the row-wise layers only)
    one = {k: (v[:1] if k == "x" else v) for k, v in w.items()}
    with reproducible_torch(threads=1):
        alone = forward_torch(one, "float32")
    if "jax" in backends and jax_subprocess:
        results["jax-f32-xla1thread"] = ("float32", _jax_one_thread(seed, batch))
    base_name = configs[0][0]
    base = results[base_name][1]
    report = DivergenceReport(base=base_name)
    for name, (dtype, acts) in results.items():
        udt = "bfloat16" if dtype == "bfloat16" else "float32"  # count ULPs in the coarser format
        for layer, a, b, r in zip(LAYERS, acts, base, ref):
            report.rows.append({"config": name, "layer": layer, "rel_vs_fp64": relative_error(a, r),
                                "rel_vs_base": relative_error(a, b),
                                "ulp_vs_base": max_ulp_distance(a, b, udt, per_tensor=True),
                                **_ulp_quantiles(a, b, udt),
                                "bitwise_vs_base": int(np.array_equal(a, b))})
    for family in sorted({n.rsplit("-run", 1)[0] for n in results if "-run" in n}):
        runs = [results[n][1] for n in results if n.startswith(family + "-run")]
        report.repeats_bitwise[family] = int(all(np.array_equal(x, y) for r in runs[1:] for x, y in zip(r, runs[0])))
    if "jax-f32-xla1thread" in results and "jax-f32-run0" in results:
        report.repeats_bitwise["jax-f32 1 vs all threads"] = int(all(
            np.array_equal(x, y) for x, y in zip(results["jax-f32-xla1thread"][1], results["jax-f32-run0"][1])))
    for layer, a, b, r in zip(LAYERS, alone, base, ref):
        if layer in ("attention", "logits", "softmax"):
            continue  # attention mixes rows: a batch of one is a different computation there
        report.rows.append({"config": "torch-f32-batch1", "layer": layer,
                            "rel_vs_fp64": relative_error(a, r[:1]), "rel_vs_base": relative_error(a, b[:1]),
                            "ulp_vs_base": max_ulp_distance(a, b[:1], "float32", per_tensor=True),
                            **_ulp_quantiles(a, b[:1], "float32"),
                            "bitwise_vs_base": int(np.array_equal(a, b[:1]))})
    return report


def _ulp_quantiles(a: np.ndarray, b: np.ndarray, dtype: str) -> dict[str, float]:
    """Median and 99th percentile of the elementwise distance, in ULPs at the tensor's scale."""
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), np.finfo(np.float64).tiny)
    unit = 2.0 ** (np.floor(np.log2(scale)) - ({"bfloat16": 8, "float16": 11}.get(dtype, 24) - 1))
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / unit
    return {"ulp_p50": float(np.quantile(d, 0.5)), "ulp_p99": float(np.quantile(d, 0.99)),
            "frac_differ": float(np.mean(d > 0))}


def _jax_one_thread(seed: int, batch: int) -> list[np.ndarray]:
    """forward_jax float32 in a fresh process with XLA:CPU pinned to one thread."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "acts.npz")
        code = ("import numpy as np; from vcompute.verify.replication.determinism import forward_jax, model_weights; "
                f"a = forward_jax(model_weights(batch={batch}, seed={seed}), 'float32'); "
                f"np.savez({out!r}, *a)")
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, **jax_environment(threads=1)},
                       capture_output=True, timeout=300)
        with np.load(out) as z:
            return [z[f"arr_{i}"] for i in range(len(LAYERS))]


def _main() -> None:  # pragma: no cover - a measurement script
    import argparse
    import json

    ap = argparse.ArgumentParser(description="measure honest torch/JAX divergence per layer on this machine")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--jax-subprocess", action="store_true", help="also measure JAX pinned to one XLA thread")
    args = ap.parse_args()
    rep = measure_divergence(repeats=args.repeats, seed=args.seed, jax_subprocess=args.jax_subprocess)
    print(json.dumps(rep.rows, indent=1) if args.json else rep.to_markdown())


if __name__ == "__main__":  # pragma: no cover
    _main()
