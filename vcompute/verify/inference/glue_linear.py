"""Freivalds on a stack of same-shaped linear layers (one per block) in one fused pass, for the sampled-glue check.

The blocks of a transformer share their layers' shapes, so the ``L`` products of one
kind (``c_attn`` of every block, ...) are checked as one batched product
``C_i = A_i W_i + b_i`` with one block of sign vectors ``R`` for the whole stack: one
launch of the fused CPU kernels (:func:`~vcompute.verify.freivalds.kernel.fused_residual_and_tolerance`)
instead of ``L`` calls of :meth:`Freivalds.check <vcompute.verify.Freivalds.check>`, each of which
pays about a millisecond of dispatch and bookkeeping around its kernels. Each layer keeps the
bound of ``proofs/freivalds.md`` (S1): ``R`` is drawn after the trace is fixed, so it is
independent of every layer's claim, and a wrong entry of any one layer escapes with probability
<= 2**-rounds. Without numba each layer goes through :meth:`Freivalds.check` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompute.verify.freivalds import Freivalds
from vcompute.verify.freivalds.kernel import fused_residual_and_tolerance
from vcompute.verify.freivalds.scheme import _underflow_allowance
from vcompute.verify.freivalds.tolerance import precision_of

__all__ = ["StackResult", "LinearStacks"]


@dataclass(frozen=True)
class StackResult:
    """The outcome of checking one stack.

    Attributes:
        layer: the first block whose product fails (-1: none).
        reason: why it fails ("" when none does).
        flops: the check's floating-point operations.
    """

    layer: int
    reason: str
    flops: float


class LinearStacks:
    """Checks the stacked linear layers of a model's blocks against a trace; the stacked weights are cached.

    Args:
        freivalds: the :class:`~vcompute.verify.Freivalds` whose rounds, safety and accumulation apply.
    """

    def __init__(self, freivalds: Freivalds) -> None:
        self.freivalds = freivalds
        self._cache: dict[str, tuple[list, list, np.ndarray, np.ndarray]] = {}

    def _stacked(self, name: str, mods: list) -> tuple[np.ndarray, np.ndarray]:
        """``W_i^T`` as one contiguous ``[L, K, n]`` float32 array and the biases ``[L, n]`` (re-stacked if changed)."""
        params = [p for m in mods for p in (m.weight, m.bias)]
        versions = [p._version for p in params]
        hit = self._cache.get(name)
        # the tensors themselves are held, so an identity match cannot be a reused id
        if hit is None or len(hit[0]) != len(params) or any(a is not b for a, b in zip(hit[0], params)) \
                or hit[1] != versions:
            w = np.ascontiguousarray(np.stack([m.weight.detach().numpy().T for m in mods]))
            b = np.ascontiguousarray(np.stack([m.bias.detach().numpy() for m in mods]))
            hit = self._cache[name] = (params, versions, w, b)
        return hit[2], hit[3]

    def check(self, name: str, a: np.ndarray, mods: list, c: np.ndarray, rng: np.random.Generator) -> StackResult:
        """Check ``c[i] == a[i] @ mods[i].weight.T + mods[i].bias`` for every block ``i``.

        Args:
            name: the layers' name in the reason (``"c_fc"``).
            a: the claimed inputs ``[L, T, K]`` (exact float32, as read from the trace).
            mods: the blocks' ``nn.Linear`` modules (the job's weights).
            c: the claimed outputs ``[L, T, n]``.
            rng: the verifier's generator, drawn after the trace.

        Returns:
            The first failing block and why, and the FLOPs spent.
        """
        return self.check_many(name, [(a, c)], mods, rng)[0]

    def check_many(self, name: str, pairs: list[tuple[np.ndarray, np.ndarray]], mods: list,
                   rng: np.random.Generator) -> list[StackResult]:
        """:meth:`check` for several traces of the same model, with one block of signs ``R`` for all of them.

        ``R`` is drawn after every trace is fixed, so it is independent of each one's claims and
        each trace keeps its per-layer bound (``proofs/inference-glue.md``); the product
        ``W_i R`` and the weights' row norms are computed once for all traces.

        Args:
            name: the layers' name in the reasons.
            pairs: per trace, the claimed inputs ``[L, T_j, K]`` and outputs ``[L, T_j, n]``.
            mods: the blocks' ``nn.Linear`` modules.
            rng: the verifier's generator, drawn after every trace.

        Returns:
            One :class:`StackResult` per trace; the shared ``W R`` pass is counted in the first one's FLOPs.
        """
        from vcompute.verify.freivalds.kernel import fused_b_pass

        w, bias = self._stacked(name, mods)
        fr = self.freivalds
        L, K, n = w.shape
        R = rng.integers(0, 2, size=(n, fr.rounds)).astype(np.float64) * 2.0 - 1.0
        prec = precision_of("float32", fr.accumulation)
        shared = fused_b_pass(w, R)
        if shared is None:  # no numba: layer by layer through the public check
            return [self._one_by_one(name, a, w, c, bias, rng) for a, c in pairs]
        out = []
        for j, (a, c) in enumerate(pairs):
            with np.errstate(all="ignore"):  # NaN/Inf are diagnosed below
                fused = fused_residual_and_tolerance(a, w, c, R, bias, prec=prec, safety=fr.safety, b_pass=shared)
            m = a.shape[1]
            flops = L * (2.0 * fr.rounds * (m * K + m * n) + 4.0 * m * K + 4.0 * m * n)
            if j == 0:
                flops += L * (2.0 * fr.rounds * n * K + 4.0 * K * n)
            out.append(self._verdict(name, fused[0], fused[1] + _underflow_allowance("float32", prec, K, n), m,
                                     flops))
        return out

    @staticmethod
    def _verdict(name: str, diff: np.ndarray, tol: np.ndarray, m: int, flops: float) -> StackResult:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(tol > 0, diff / np.where(tol > 0, tol, 1.0), np.where(diff > 0, np.inf, 0.0))
        # a NaN or Inf anywhere in a layer's operands reaches its diff or tol (0 * inf is NaN); NaN compares false
        finite = np.isfinite(diff) & np.isfinite(tol)
        bad = ~(ratio <= 1.0) | ~finite
        layers = np.flatnonzero(bad.any(axis=-1))
        if not layers.size:
            return StackResult(-1, "", flops)
        i = int(layers[0])
        if not np.all(finite[i]):
            return StackResult(i, f"layer {i} {name}: Freivalds: NaN or Inf in the layer's input or output", flops)
        row = int(np.argmax(ratio[i]))
        return StackResult(i, f"layer {i} {name}: Freivalds: row {row}: |A(BR) - CR| is {ratio[i, row]:.3g}x the "
                              f"honest rounding tolerance ({int(bad[i].sum())} of {m} rows fail)", flops)

    def _one_by_one(self, name: str, a: np.ndarray, w: np.ndarray, c: np.ndarray, bias: np.ndarray,
                    rng: np.random.Generator) -> StackResult:
        flops = 0.0
        for i in range(a.shape[0]):
            v = self.freivalds.check(a[i], w[i], c[i], seed=int(rng.integers(2**62)), bias=bias[i])
            flops += v.cost.flops
            if not v.accepted:
                return StackResult(i, f"layer {i} {name}: Freivalds: {v.reason}", flops)
        return StackResult(-1, "", flops)
