"""Executors: how the runs of an experiment are spread over processes.

An executor takes the runs still to do and yields each run's record as it
finishes, in any order. ``serial`` runs in this process (debugging, tiny
sweeps); ``local`` uses a process pool on this machine (the default).
Others (``ray``) register here or through the ``vcompute.executors``
entry-point group.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Protocol

from vcompute.core.registry import Registry
from vcompute.experiment.config import RunSpec

__all__ = ["EXECUTORS", "Executor", "SerialExecutor", "LocalExecutor", "execute_run", "create_executor"]


def execute_run(task: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run one experiment run and return its record; never raises.

    Returns:
        ``{"status": "ok", "metrics": {...}, "seconds": s}`` or
        ``{"status": "error", "error": "...", "traceback": "...", "seconds": s}``.
    """
    from vcompute.experiment.tasks import TASKS

    t = time.perf_counter()
    try:
        cls = TASKS.get(task)
        metrics = cls().run(cls.Params.model_validate(params), seed)
        if not isinstance(metrics, dict):
            raise TypeError(f"task {task!r} returned {type(metrics).__name__}, expected a dict of metrics")
        return {"status": "ok", "metrics": metrics, "seconds": time.perf_counter() - t}
    except Exception as e:  # a failed run is recorded, the sweep goes on
        return {"status": "error", "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=8), "seconds": time.perf_counter() - t}


class Executor(Protocol):
    """Runs experiment runs.

    Implementations yield ``(run, record)`` pairs as runs finish.
    """

    name: str

    def map(self, runs: Iterable[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        """Execute ``runs``; yield each with its record as it finishes."""
        ...

    def close(self) -> None:
        """Release workers."""
        ...


class SerialExecutor:
    """Runs everything in this process, one run after another."""

    name = "serial"

    def __init__(self, workers: int = 1, **_: Any) -> None:
        self.workers = 1

    def map(self, runs: Iterable[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        """Execute ``runs`` in order."""
        for r in runs:
            yield r, execute_run(r.task, r.params, r.seed)

    def close(self) -> None:
        """Nothing to release."""


def _init_worker(threads: int) -> None:
    # Each worker gets its share of the cores: torch / BLAS / numba would otherwise
    # start one thread per core in every worker and oversubscribe the machine.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)


class LocalExecutor:
    """A pool of ``workers`` processes on this machine (spawned, so torch and JAX are safe).

    Args:
        workers: number of processes.
    """

    name = "local"

    def __init__(self, workers: int = 2, **_: Any) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def map(self, runs: Iterable[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        """Execute ``runs`` on the pool, keeping at most 2 x workers in flight."""
        runs = list(runs)
        if not runs:
            return
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        self._pool = ProcessPoolExecutor(max_workers=min(self.workers, len(runs)),
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(threads,))
        pending: dict[Any, RunSpec] = {}
        it = iter(runs)
        try:
            while True:
                while len(pending) < 2 * self.workers:
                    r = next(it, None)
                    if r is None:
                        break
                    pending[self._pool.submit(execute_run, r.task, r.params, r.seed)] = r
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    r = pending.pop(fut)
                    try:
                        rec = fut.result()
                    except Exception as e:  # a worker died (OOM kill, segfault)
                        rec = {"status": "error", "error": f"worker failed: {type(e).__name__}: {e}",
                               "seconds": 0.0}
                    yield r, rec
        finally:
            self.close()

    def close(self) -> None:
        """Shut the pool down, cancelling runs not yet started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


#: Executors by name (entry-point group ``vcompute.executors``).
EXECUTORS: Registry = Registry("executor", group="vcompute.executors")
EXECUTORS.register("serial", SerialExecutor)
EXECUTORS.register("local", LocalExecutor)
# By path: Ray is imported only when a Ray sweep is asked for.
EXECUTORS.register("ray", "vcompute.experiment.ray_executor:RayExecutor")


def create_executor(name: str, *, workers: int = 2, address: str | None = None) -> Executor:
    """Instantiate the executor registered as ``name``.

    Raises:
        UnknownPluginError: for an unknown name (listing the known ones).
    """
    return EXECUTORS.create(name, workers=workers, address=address)
