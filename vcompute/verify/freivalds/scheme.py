"""Freivalds' probabilistic check of a matrix product ``C = A @ B (+ bias)``.

Paper: R. Freivalds, "Probabilistic machines can use less running time",
IFIP 1977. Float tolerance after N. J. Higham and T. Mary, "A new approach
to probabilistic rounding error analysis", SIAM J. Sci. Comput. 41(5), 2019.

Float products: the verifier draws ``R`` (n x k random signs, one block for
all ``k`` rounds) and compares ``A (B R)`` with ``C R`` row by row, in
float64, against the tolerance of :mod:`vcompute.verify.freivalds.tolerance`.
Integer products (int8/int16 inputs, int32/int64 accumulation) are checked
exactly over prime fields (:mod:`vcompute.verify.freivalds.exact`).
Batched (``...ij,...jk``) and rectangular products and linear layers with a
bias are supported. Claims, argument and tests: ``proofs/freivalds.md``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, dtype_name, from_numpy, namespace, plain, synchronize, to_numpy
from vcompute.core.types import Claim, Cost, Job, Verdict
from vcompute.verify.base import Misuse, Scheme, VerifyContext
from vcompute.verify.freivalds.exact import INT_INPUT_DTYPES, exact_check
from vcompute.verify.freivalds.validate import (check_caller_operands, meta_mismatch, nonfinite_reason,
                                                validate_operands)
from vcompute.verify.freivalds.kernel import fused_residual_and_tolerance, residual_and_tolerance
from vcompute.verify.freivalds.tolerance import false_reject_bound, matrix_stats, precision_of, row_tolerance, unit_roundoff

__all__ = ["Freivalds", "PreparedMatrix", "unit_roundoff"]

class PreparedMatrix:
    """A right-hand operand ``B`` (e.g. a weight matrix) prepared for repeated checks.

    For the streamed and accelerator kernels it holds a float64 copy of ``B``
    and its row norms, so that checking many products with the same ``B``
    converts and scans it once (the copy is taken on first use: later in-place
    changes to ``B`` are not seen). The fused CPU kernels cache nothing: they
    read ``B`` in its own dtype on every check, its row norms in the same pass.
    Build it with :meth:`Freivalds.prepare` and pass it wherever ``b`` is expected.

    Attributes:
        array: the original ``B``.
    """

    def __init__(self, b: Any) -> None:
        self.array = b
        self._work: Any = None
        self._stats: Any = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``B``."""
        return tuple(self.array.shape)

    @property
    def dtype(self) -> Any:
        """dtype of ``B``."""
        return self.array.dtype

    def _float64(self, xp: Any) -> tuple[Any, Any]:
        if self._work is None:
            self._work = xp.astype(self.array, xp.float64)
            self._stats = matrix_stats(xp, self._work)
        return self._work, self._stats


class _CallerTypeError(Misuse, TypeError):
    """The caller's operands of :meth:`Freivalds.check` are not arrays: a ``TypeError`` the guard lets through."""


class Freivalds(Scheme):
    """Freivalds' matrix-product verifier with a derived float tolerance.

    Args:
        rounds: number of random vectors ``k`` (done as one n x k block). A
            float product with an entry off by more than its row tolerance
            is accepted with probability at most 2**-k; a wrong integer
            product with probability at most (2**-26)**k.
        safety: the tail parameter ``lambda`` of the rounding-error model: an
            honest product is rejected with probability at most
            ``rows * k * 2 exp(-lambda^2 / 2)`` under the model (see
            ``proofs/freivalds.md``); larger means a larger minimum
            detectable error.
        accumulation: the float format the honest product accumulates in,
            or None to infer it from the output dtype (``float32`` for half
            outputs). Use ``"tf32"`` for GPUs running TF32 matmuls.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.standard_normal((64, 32)), rng.standard_normal((32, 48))
        >>> Freivalds(rounds=2).check(a, b, a @ b, seed=1).accepted
        True
        >>> c = a @ b; c[3, 4] += 1e-9
        >>> Freivalds(rounds=2).check(a, b, c, seed=1).accepted
        False
    """

    name = "freivalds"

    def __init__(self, *, rounds: int = 2, safety: float = 5.5, accumulation: str | None = None) -> None:
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
        if not (isinstance(safety, (int, float)) and math.isfinite(safety) and 0 < safety < 40):
            raise ValueError(f"safety must be a finite number in (0, 40), got {safety!r}")
        if accumulation is not None:
            unit_roundoff(accumulation)
        self.rounds = rounds
        self.safety = float(safety)
        self.accumulation = accumulation

    def __repr__(self) -> str:
        return f"Freivalds(rounds={self.rounds}, safety={self.safety}, accumulation={self.accumulation!r})"

    # -- Verifier protocol (replicas: one claim; evidence: the output) -----
    def check_job(self, job: Job, ctx: VerifyContext) -> None:
        """Refuse a job that is no matmul (the caller's misuse).

        Raises:
            ValueError: if ``job`` has no inputs ``a`` and ``b``.
        """
        if "a" not in job.inputs or "b" not in job.inputs:
            raise ValueError("job has no inputs 'a' and 'b': not a matmul job; build it with make_matmul_job")

    def _check(self, job: Job, claims: tuple[Claim, ...], ctx: VerifyContext) -> Verdict:
        """The single claim's output against ``job.inputs['a'] @ job.inputs['b'] (+ 'bias')``.

        ``spec['dtype']``, if present, is the dtype the output must have;
        the random vectors come from ``ctx.rng``, drawn after the claim.
        """
        out = claims[0].output
        if out is None:
            return Verdict.reject("claim carries no output to check")
        problem = meta_mismatch(claims[0], out, job)
        if problem is not None:
            return Verdict.reject(problem)
        seed = int(ctx.rng.integers(0, 2**63 - 1))
        return self._check_arrays(job.inputs["a"], job.inputs["b"], out, seed, job.inputs.get("bias"))

    # -- plain-array convenience ------------------------------------------
    def prepare(self, b: Any) -> PreparedMatrix:
        """Wrap a right-hand operand that will be checked many times (weights).

        Args:
            b: ``(..., K, n)`` float array.

        Returns:
            A :class:`PreparedMatrix` to pass as ``b`` to :meth:`check`.

        Example:
            >>> import numpy as np
            >>> w = np.eye(3)
            >>> fr = Freivalds(); pw = fr.prepare(w)
            >>> fr.check(np.ones((2, 3)), pw, np.ones((2, 3)), seed=0).accepted
            True
        """
        return PreparedMatrix(b)

    def check(self, a: Any, b: Any, c: Any, *, seed: int | np.random.Generator, bias: Any = None) -> Verdict:
        """Verify ``c == a @ b (+ bias)`` up to the honest rounding error (exactly for integers).

        Args:
            a: ``(..., m, K)`` array (numpy, torch or JAX).
            b: ``(..., K, n)`` array of the same backend, or a :class:`PreparedMatrix`.
            c: the claimed ``(..., m, n)`` product (batch dims broadcast).
            seed: seed or generator for the random vectors. It must be drawn
                after ``c`` is fixed.
            bias: optional ``(n,)`` vector added to every row of the product.

        Returns:
            A verdict; a malformed claim ``c`` gives a rejected verdict with a
            reason, never an exception.

        Raises:
            TypeError: ``a``, ``b`` or ``bias`` (the caller's inputs) are not arrays of one backend.
            ValueError: ``a`` and ``b`` have an unsupported or mixed dtype.
        """
        t0 = time.perf_counter()
        return self._metered(self._guarded(lambda: self._check_arrays(a, b, c, seed, bias)), None, t0, None)

    def _check_arrays(self, a: Any, b: Any, c: Any, seed: int | np.random.Generator, bias: Any) -> Verdict:
        """:meth:`check` without the plumbing: raises ``Misuse`` on the caller's operands, and may raise on ``c``."""
        prepared = b if isinstance(b, PreparedMatrix) else None
        a, c, bias = plain(a), plain(c), plain(bias)
        b_arr = plain(prepared.array if prepared is not None else b)
        try:
            check_caller_operands(a, b_arr, bias)
        except TypeError as e:
            raise _CallerTypeError(str(e)) from None
        except ValueError as e:
            raise Misuse(str(e)) from None
        problem = validate_operands(a, b_arr, c, bias)
        if problem is not None:  # before the move below: a copy is only ever of a claim of the job's own size
            return Verdict.reject(problem)
        c = _on_device_of(c, a)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        if dtype_name(a) in INT_INPUT_DTYPES:
            return self._check_int(a, b_arr, c, bias, rng)
        return self._check_float(a, b_arr, c, bias, rng, prepared)

    def row_tolerances(self, a: Any, b: Any, c: Any, *, bias: Any = None) -> np.ndarray:
        """The per-row tolerance the float check would apply: an entry of ``c`` off from the
        exact product by more than its row's tolerance is caught with probability >= 1 - 2**-rounds.

        Args:
            a, b, c, bias: as :meth:`check` (float arrays).

        Returns:
            A float64 numpy array of shape ``(..., m)``.

        Raises:
            ValueError: if the operands are malformed or integer (the exact check has no tolerance).

        Example:
            >>> a = np.ones((2, 3), np.float32)
            >>> Freivalds().row_tolerances(a, a.T, a @ a.T).shape
            (2,)
        """
        b_arr = b.array if isinstance(b, PreparedMatrix) else b
        problem = validate_operands(a, b_arr, c, bias)
        if problem is not None:
            raise ValueError(problem)
        if dtype_name(a) in INT_INPUT_DTYPES:
            raise ValueError("integer products are checked exactly: there is no tolerance")
        K, n = a.shape[-1], b_arr.shape[-1]
        prec = precision_of(dtype_name(c), self.accumulation)
        with _high_precision(backend_of(a)):
            xp = namespace(a, c)
            A, B, C = (xp.astype(x, xp.float64) for x in (a, b_arr, c))
            bnorm = None if bias is None else xp.sqrt(xp.sum(xp.astype(bias, xp.float64) ** 2))
            tol, _ = row_tolerance(xp, A, B, C, prec=prec, safety=self.safety, bias=bias is not None,
                                   bias_norm=bnorm)
            return _host(tol) + _underflow_allowance(dtype_name(c), prec, K, n)

    def check_conv2d(self, x: Any, w: Any, y: Any, *, seed: int | np.random.Generator, bias: Any = None,
                     stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Verdict:
        """Verify a 2-D convolution ``y == conv2d(x, w) + bias`` at ``(rounds + 2) / C_out`` of its cost.

        Args:
            x: ``(N, C, H, W)`` input; w: ``(O, C, kh, kw)`` kernel; y: the claimed output.
            seed: seed or generator, drawn after ``y`` is fixed.
            bias: optional ``(O,)`` bias.
            stride, padding, dilation, groups: as ``torch.nn.functional.conv2d``.

        Returns:
            A verdict (see :func:`vcompute.verify.freivalds.conv.check_conv2d`).

        Example:
            >>> x, w = np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3))
            >>> Freivalds().check_conv2d(x, w, np.full((1, 3, 2, 2), 18.0), seed=0).accepted
            True
        """
        from vcompute.verify.freivalds.conv import check_conv2d

        return check_conv2d(x, w, y, seed=seed, bias=bias, stride=stride, padding=padding, dilation=dilation,
                            groups=groups, rounds=self.rounds, safety=self.safety, accumulation=self.accumulation)

    # -- internals --------------------------------------------------------
    def _check_int(self, a: Any, b: Any, c: Any, bias: Any, rng: np.random.Generator) -> Verdict:
        A, B, C = (to_numpy(x) for x in (a, b, c))
        ok, reason, details = exact_check(A, B, C, rng=rng, rounds=self.rounds,
                                          bias=None if bias is None else to_numpy(bias))
        m, K, n = A.shape[-2], A.shape[-1], B.shape[-1]
        batch = int(np.prod(np.broadcast_shapes(A.shape[:-2], B.shape[:-2]), dtype=np.int64))
        mods = len(details.get("primes", [1]))
        cost = Cost(flops=2.0 * batch * mods * self.rounds * (n * K + m * K + m * n))
        return (Verdict.accept if ok else Verdict.reject)(reason, cost=cost, details=details)

    def _check_float(self, a: Any, b: Any, c: Any, bias: Any, rng: np.random.Generator,
                     prepared: PreparedMatrix | None) -> Verdict:
        backend = backend_of(a)
        m, K, n = a.shape[-2], a.shape[-1], b.shape[-1]
        prec = precision_of(dtype_name(c), self.accumulation)
        lam = self.safety
        # Rademacher signs: bounded, symmetric and independent, which the flip
        # argument of the soundness proof and Hoeffding's bound need; +-1 is
        # exact in every format, so R adds no rounding error.
        R_np = rng.integers(0, 2, size=(n, self.rounds)).astype(np.float64) * 2.0 - 1.0
        with np.errstate(all="ignore"):  # NaN/Inf are diagnosed below
            # No norms are cached for the fused path: its pass over B computes them anyway, and a cache
            # would pair the residual of a B changed in place with the tolerance of the old one.
            fused = fused_residual_and_tolerance(a, b, c, R_np, bias, prec=prec, safety=lam)
        if fused is not None:
            diff_np, tol_np, c2_np, _ = fused
            tol_np = tol_np + _underflow_allowance(dtype_name(c), prec, K, n)
        else:
            with _high_precision(backend), np.errstate(all="ignore"):
                xp = namespace(a, c)
                if prepared is not None:
                    b, stats = prepared._float64(xp)
                else:
                    stats = None
                R = from_numpy(R_np, backend, like=a)
                diff, tol, c2 = residual_and_tolerance(a, b, c, R, bias, stats, prec=prec, safety=lam)
                tol = tol + _underflow_allowance(dtype_name(c), prec, K, n)
                synchronize(tol)
                diff_np, tol_np, c2_np = _host(diff), _host(tol), _host(c2)
        # NaN/Inf anywhere in A, B, C or the bias reaches diff or tol (0 * inf is NaN), so the
        # operands are only scanned for the reason when the per-row results are not finite.
        if not (np.all(np.isfinite(diff_np)) and np.all(np.isfinite(tol_np))):
            return Verdict.reject(nonfinite_reason(a, b, c, bias))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(tol_np > 0, diff_np / np.where(tol_np > 0, tol_np, 1.0),
                             np.where(diff_np > 0, np.inf, 0.0))
        batch = int(np.prod(ratio.shape[:-1], dtype=np.int64)) if ratio.ndim > 1 else 1
        flops = batch * (2.0 * self.rounds * (n * K + m * K + m * n) + 4.0 * (m * K + K * n) + 4.0 * m * n)
        flat = ratio.reshape(-1)
        worst = int(np.argmax(flat))
        failed = int(np.sum(flat > 1.0))
        rel_tol = tol_np / max(math.sqrt(float(np.mean(c2_np)) / n), 1e-300)
        details = {"max_error_ratio": float(flat[worst]), "rows_failed": failed, "rounds": self.rounds,
                   "safety": lam, "u_acc": prec.u_acc, "u_out": prec.u_out, "u_in": prec.u_in,
                   "tolerance_max": float(np.max(tol_np)),
                   "tolerance_over_rms_median": float(np.median(rel_tol)),
                   "false_reject_bound": false_reject_bound(lam, (flat.size + batch * (prec.u_in > 0)) * self.rounds),
                   "false_accept_bound": 0.5**self.rounds}
        cost = Cost(flops=flops)
        where = np.unravel_index(worst, ratio.shape)
        row = where[-1] if ratio.ndim == 1 else tuple(int(i) for i in where)
        if failed:
            return Verdict.reject(
                f"row {row}: |A(BR) - CR| is {flat[worst]:.3g}x the honest rounding tolerance "
                f"({failed} of {flat.size} rows fail)", cost=cost, details=details)
        return Verdict.accept(
            f"all {flat.size} rows within tolerance over {self.rounds} random sign vectors "
            f"(largest error {flat[worst]:.3g}x tolerance)", cost=cost, details=details)


_TINY = {"float64": 2.0**-1074, "float32": 2.0**-149, "float16": 2.0**-24, "bfloat16": 2.0**-133}


def _underflow_allowance(out_dtype: str, prec: Any, K: int, n: int) -> float:
    """Absolute rounding error below the normal range: half a subnormal step per operation."""
    acc = "float64" if prec.u_acc <= 2.0**-53 else "float16" if prec.u_acc == 2.0**-11 else (
        "bfloat16" if prec.u_acc == 2.0**-8 else "float32")
    return 0.5 * n * (2 * K * _TINY[acc] + _TINY[out_dtype])


def _on_device_of(c: Any, a: Any) -> Any:
    """A torch claim on another device than the inputs, moved to theirs (the same values; e.g. a GPU provider)."""
    if (type(c).__module__.startswith("torch") and type(a).__module__.startswith("torch")
            and hasattr(c, "device") and hasattr(c, "to") and c.device != a.device):
        try:
            return c.to(a.device)
        except (RuntimeError, NotImplementedError):  # e.g. a meta tensor: left as it is, the check rejects it
            return c
    return c


def _host(x: Any) -> np.ndarray:
    return np.asarray(to_numpy(x), dtype=np.float64)


class _high_precision:
    """Lets JAX compute in float64 for the duration of a check."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.ctx = None

    def __enter__(self) -> None:
        if self.backend == "jax":
            import jax

            self.ctx = jax.enable_x64(True)
            self.ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.ctx is not None:
            self.ctx.__exit__(*exc)
