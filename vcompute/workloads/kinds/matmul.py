"""The ``matmul`` job kind: ``a @ b`` of seeded random matrices (:mod:`vcompute.workloads.matmul`).

Sizes are the matrix size ``n`` (an ``n x n x n`` product): any integer in
[2, 4096], or a name of :attr:`MatmulKind.sizes`. Behaviours are the matmul
suite (``matmul/<name>`` in :data:`~vcompute.workloads.kinds.behaviours.BEHAVIOURS`).

Example:
    >>> import numpy as np
    >>> k = MatmulKind()
    >>> job = k.make_job(8, seed=0)
    >>> k.execute(job, "honest", rng=np.random.default_rng(0)).output.shape, k.flops(job)
    ((8, 8), 1024.0)
"""

from __future__ import annotations

import operator
from typing import Any

from vcompute.core.types import Job
from vcompute.workloads.kinds.base import JobKind

__all__ = ["MatmulKind"]


class MatmulKind(JobKind):
    """Matrix products, checked by Freivalds (or spot-checks, replication)."""

    name = "matmul"
    sizes = {"tiny": 16, "small": 48, "medium": 128, "large": 256}
    default_size = 48
    verifiers = ("freivalds", "spotcheck", "replication")
    cheats = {"random_output": "random_output", "skip_k": "skip_k", "low_precision": "low_precision"}
    backends = ("numpy", "torch", "jax")
    #: disputes: the product accumulated over blocks, one float32 step each, on Dispute.vy
    dispute = "vcompute.verify.dispute.market:MatmulDispute"

    def size(self, size: Any = None) -> int:
        """The matrix size ``n`` of ``size`` (an int in [2, 4096] or a name of :attr:`sizes`).

        Raises:
            ValueError: for another value.
        """
        if size is None:
            size = self.default_size
        if isinstance(size, str):
            name = str.__str__(size)
            if name not in self.sizes:
                raise ValueError(f"unknown matmul size {name!r}; known: {', '.join(self.sizes)} or an int")
            return self.sizes[name]
        if isinstance(size, bool):
            raise ValueError("a matmul size is an int, not a bool")
        try:
            n = int(operator.index(size))
        except TypeError:
            raise ValueError(f"a matmul size is an int in [2, 4096] or a name, got {size!r}") from None
        if not 2 <= n <= 4096:
            raise ValueError(f"matmul size must be in [2, 4096], got {n}")
        return n

    def make_job(self, size: Any = None, *, seed: int, backend: str = "numpy", dtype: str = "float32") -> Job:
        """An ``n x n`` by ``n x n`` product job (:func:`~vcompute.workloads.matmul.make_matmul_job`).

        Raises:
            ValueError: for a bad size, backend or dtype.
        """
        from vcompute.workloads.matmul import make_matmul_job

        return make_matmul_job(self.size(size), backend=self._backend(backend), dtype=dtype, seed=seed)

    def flops(self, job: Job) -> float:
        """``2 m k n``."""
        from vcompute.workloads.matmul import matmul_flops

        return matmul_flops(self.check_job(job))

    def reexecute(self, job: Job, piece: Any = None) -> Any:
        """The honest product (``piece`` is ignored: a whole-job re-execution)."""
        from vcompute.workloads.matmul import honest_matmul

        return honest_matmul(self.check_job(job))

    def table_size(self, size: Any = None) -> str:
        """The matrix size, as the table's key."""
        return str(self.size(size))

    def verify_fraction(self, table: Any, scheme: str, size: Any = None, *, n: int = 48) -> float:
        """The table's per-size fraction, interpolated in log-log (the scheme's own row is the matmul row)."""
        n = self.size(size if size is not None else n)
        if table.has_kind(self.name, scheme):
            return table.verify_fraction(scheme, n, kind=self.name)
        return table.verify_fraction(scheme, n)
