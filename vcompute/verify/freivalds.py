"""Freivalds' probabilistic check of a matrix product ``C = A @ B``.

Paper: R. Freivalds, "Probabilistic machines can use less running time",
IFIP 1977. Float tolerance after N. J. Higham and T. Mary, "A new approach
to probabilistic rounding error analysis", SIAM J. Sci. Comput. 41(5), 2019.

The verifier draws ``R`` (n x k random signs, one block for all ``k``
rounds) and compares ``A @ (B @ R)`` with ``C @ R`` row by row against a
tolerance derived from a rounding-error model of the honest product, in
O(k n^2) work. The claims, the argument and the tests that check them are
in ``proofs/freivalds.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, dtype_name, from_numpy, namespace, synchronize
from vcompute.core.types import Claim, Cost, EvidenceSpec, Job, Verdict
from vcompute.verify.base import VerifyContext

__all__ = ["Freivalds", "unit_roundoff"]

_UNIT_ROUNDOFF = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "tf32": 2.0**-11,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}
_FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")


def unit_roundoff(dtype: str) -> float:
    """Unit roundoff ``u`` of a float format (``float32`` -> 2**-24; ``tf32`` -> 2**-11).

    Raises:
        ValueError: for a format that is not a known float format.
    """
    try:
        return _UNIT_ROUNDOFF[dtype]
    except KeyError:
        raise ValueError(f"unknown float format {dtype!r}; known: {', '.join(_UNIT_ROUNDOFF)}") from None


class Freivalds:
    """Freivalds' matrix-product verifier with a derived float tolerance.

    Args:
        rounds: number of random vectors ``k``; for an exact-arithmetic
            product a wrong ``C`` is accepted with probability at most 2**-k.
        safety: the tail parameter ``lambda`` of the rounding-error model;
            larger means fewer false rejects and a larger minimum detectable
            error (see ``proofs/freivalds.md``).
        accumulation: the float format the honest product accumulates in,
            or None to infer it from the output dtype (``float32`` for half
            outputs). Use ``"tf32"`` for GPUs running TF32 matmuls.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.standard_normal((64, 32)), rng.standard_normal((32, 48))
        >>> Freivalds(rounds=2).check(a, b, a @ b, seed=1).accepted
        True
        >>> c = a @ b; c[3, 4] += 1.0
        >>> Freivalds(rounds=2).check(a, b, c, seed=1).accepted
        False
    """

    name = "freivalds"

    def __init__(self, *, rounds: int = 2, safety: float = 6.0, accumulation: str | None = None) -> None:
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
        if not (isinstance(safety, (int, float)) and math.isfinite(safety) and safety > 0):
            raise ValueError(f"safety must be a positive finite number, got {safety!r}")
        if accumulation is not None:
            unit_roundoff(accumulation)
        self.rounds = rounds
        self.safety = float(safety)
        self.accumulation = accumulation

    def __repr__(self) -> str:
        return f"Freivalds(rounds={self.rounds}, safety={self.safety}, accumulation={self.accumulation!r})"

    # -- Verifier protocol ------------------------------------------------
    def replicas(self, job: Job) -> int:
        """One claim suffices."""
        return 1

    def evidence(self, job: Job) -> EvidenceSpec:
        """Only the output itself."""
        return EvidenceSpec("output")

    def verify(self, job: Job, claims: Sequence[Claim], ctx: VerifyContext) -> Verdict:
        """Check the single claim's output against ``job.inputs['a'] @ job.inputs['b']``."""
        if len(claims) != 1:
            return Verdict.reject(f"expected exactly 1 claim, got {len(claims)}", scheme=self.name)
        if "a" not in job.inputs or "b" not in job.inputs:
            return Verdict.reject("job has no inputs 'a' and 'b': not a matmul job", scheme=self.name)
        claim = claims[0]
        if claim.job_id != job.id:
            return Verdict.reject("claim answers another job (job id mismatch)", scheme=self.name)
        seed = int(ctx.rng.integers(0, 2**63 - 1))
        verdict = self.check(job.inputs["a"], job.inputs["b"], claim.output, seed=seed)
        ctx.add_cost(verdict.cost)
        return verdict

    # -- plain-array convenience ------------------------------------------
    def check(self, a: Any, b: Any, c: Any, *, seed: int | np.random.Generator) -> Verdict:
        """Verify ``c == a @ b`` up to the honest rounding error.

        Args:
            a: ``(m, k)`` array (numpy, torch or JAX).
            b: ``(k, n)`` array of the same backend.
            c: the claimed ``(m, n)`` product.
            seed: seed or generator for the random vectors. It must be drawn
                after ``c`` is fixed.

        Returns:
            A verdict; malformed input gives a rejected verdict with a reason,
            never an exception.
        """
        t0 = time.perf_counter()
        problem = self._validate(a, b, c)
        if problem is not None:
            return Verdict.reject(problem, scheme=self.name, cost=Cost(seconds=time.perf_counter() - t0))
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        try:
            result = self._check_float(a, b, c, rng)
        except Exception as e:  # a backend error on hostile data must not escape
            return Verdict.reject(f"could not evaluate the check: {type(e).__name__}: {e}",
                                  scheme=self.name, cost=Cost(seconds=time.perf_counter() - t0))
        return result.with_cost(Cost(flops=result.cost.flops, seconds=time.perf_counter() - t0))

    # -- internals --------------------------------------------------------
    def _validate(self, a: Any, b: Any, c: Any) -> str | None:
        names = ("A", "B", "C")
        try:
            backends = [backend_of(x) for x in (a, b, c)]
        except TypeError as e:
            return f"not an array: {e}"
        if len(set(backends)) > 1:
            return f"arrays from different backends (A: {backends[0]}, B: {backends[1]}, C: {backends[2]})"
        for nm, x in zip(names, (a, b, c)):
            if len(x.shape) != 2:
                return f"{nm} must be 2-D, got shape {tuple(x.shape)}"
            if any(d == 0 for d in x.shape):
                return f"{nm} is empty (shape {tuple(x.shape)})"
            if dtype_name(x) not in _FLOAT_DTYPES:
                return f"{nm} has dtype {dtype_name(x)}; the float check needs one of {', '.join(_FLOAT_DTYPES)}"
        (m, k), (k2, n) = tuple(a.shape), tuple(b.shape)
        if k != k2:
            return f"inner dimensions differ: A is {tuple(a.shape)}, B is {tuple(b.shape)}"
        if tuple(c.shape) != (m, n):
            return f"C has shape {tuple(c.shape)}, expected {(m, n)}"
        xp = namespace(a, b, c)
        for nm, x in zip(names, (a, b, c)):
            if not bool(xp.all(xp.isfinite(x))):
                what = "the claimed output" if nm == "C" else f"input {nm}"
                return f"{what} contains NaN or Inf"
        return None

    def _u_acc(self, c: Any) -> tuple[float, float]:
        out = dtype_name(c)
        u_out = unit_roundoff(out)
        acc = self.accumulation or ("float32" if out in ("float16", "bfloat16") else out)
        return unit_roundoff(acc), u_out

    def _check_float(self, a: Any, b: Any, c: Any, rng: np.random.Generator) -> Verdict:
        backend = backend_of(a)
        m, k = a.shape
        n = b.shape[1]
        u_acc, u_out = self._u_acc(c)
        lam = self.safety
        with _high_precision(backend):
            xp = namespace(a, b, c)
            wdt = xp.float64
            A, B, C = (xp.astype(x, wdt) for x in (a, b, c))
            # Rademacher signs: the Hoeffding bound on sum_j e_ij r_j needs
            # bounded, symmetric, independent r_j; +-1 also keeps R exact.
            R = from_numpy(rng.choice(np.array([-1.0, 1.0]), size=(n, self.rounds)), backend, like=a)
            R = xp.astype(R, wdt)
            y = A @ (B @ R)
            z = C @ R
            diff = xp.max(xp.abs(y - z), axis=1)
            # ||(|A||B|)_i||_2 <= sqrt(||.||_1 ||.||_inf) with the 1-norm
            # computed exactly and the inf-norm bounded by Cauchy-Schwarz.
            absA = xp.abs(A)
            w = absA @ xp.sum(xp.abs(B), axis=1)
            rowA = xp.sqrt(xp.sum(A * A, axis=1))
            colB = xp.max(xp.sqrt(xp.sum(B * B, axis=0)))
            normM = xp.sqrt(w * rowA * colB)
            normC = xp.sqrt(xp.sum(C * C, axis=1))
            gamma = lam * math.sqrt(k) * u_acc
            u_chk = 2.0**-53  # the check itself runs in float64 on every backend
            chk = lam * u_chk * (math.sqrt(n) + math.sqrt(k)) * w * math.sqrt(self.rounds)
            tol = lam * xp.sqrt((gamma * normM) ** 2 + (u_out * normC) ** 2) + chk
            synchronize(tol)
            ratio = np.asarray(_host(diff / tol))
        flops = 2.0 * self.rounds * (n * k + m * k + m * n) + 2.0 * (m * k + k * n) + 3.0 * (m * n)
        worst = int(np.argmax(ratio))
        details = {"max_error_ratio": float(ratio[worst]), "rows_failed": int(np.sum(ratio > 1.0)),
                   "rounds": self.rounds, "safety": lam, "u_acc": u_acc, "u_out": u_out}
        cost = Cost(flops=flops)
        if ratio[worst] > 1.0:
            return Verdict.reject(
                f"row {worst}: |A(BR) - CR| is {ratio[worst]:.3g}x the honest rounding tolerance "
                f"({int(np.sum(ratio > 1.0))} of {m} rows fail)",
                scheme=self.name, cost=cost, details=details)
        return Verdict.accept(
            f"all {m} rows within tolerance over {self.rounds} random sign vectors "
            f"(largest error {ratio[worst]:.3g}x tolerance)",
            scheme=self.name, cost=cost, details=details)


def _host(x: Any) -> np.ndarray:
    from vcompute.core.arrays import to_numpy

    return to_numpy(x)


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
