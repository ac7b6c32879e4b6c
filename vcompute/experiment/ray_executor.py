"""Run an experiment's runs as Ray tasks, on a local or an existing Ray cluster.

Ray is the engine ML researchers already run sweeps on; vcompute does not
schedule anything itself. Each run becomes one Ray task calling
:func:`~vcompute.experiment.executors.execute_run`, so a run behaves exactly
as it does under the ``local`` process pool: same record, same metrics.
Ray is imported only in this module, only when a Ray sweep starts.

Without an ``address`` the executor starts a private single-machine Ray
cluster with ``workers`` CPUs and shuts it down in :meth:`RayExecutor.close`.
With one (``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:10001"``) it joins an
existing cluster and leaves it running. If Ray is already initialised in
this process (a notebook, a test fixture) that session is reused and left
running. Workers of a joined cluster must be able to ``import vcompute``.

Example:
    From the command line (see ``vcompute run --help``)::

        vcompute run experiments/quickstart.toml --executor ray
        vcompute run experiments/quickstart.toml --executor ray --address auto
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from vcompute.experiment.config import RunSpec
from vcompute.experiment.executors import execute_run

__all__ = ["RayExecutor"]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is in the `ray` extra
        raise ImportError("the ray executor needs Ray: pip install 'vcompute[ray]' "
                          "(or use --executor local)") from e
    return ray


class RayExecutor:
    """Executes runs as Ray tasks, yielding records as tasks finish.

    At most ``in_flight`` runs are submitted at any time (default: twice
    the cluster's CPUs), so a sweep of a million runs does not put a
    million tasks into Ray at once, and a killed sweep loses only those.
    A task that fails inside Ray (its worker crashed or was killed) is
    yielded as an ``"error"`` record; the sweep goes on.

    Args:
        workers: CPUs of the local cluster started when ``address`` is None;
            with an address, a lower bound on the in-flight window.
        address: a Ray cluster to join, or None to start a local one.
        in_flight: the most runs submitted at once; default ``2 x CPUs``.
        num_cpus_per_run: CPUs Ray reserves for each run.

    Raises:
        ValueError: for a non-positive ``workers``, ``in_flight`` or ``num_cpus_per_run``.

    Example:
        >>> ex = RayExecutor(workers=2)   # nothing starts until map() is iterated
        >>> ex.name
        'ray'
        >>> ex.close()
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, *, in_flight: int | None = None,
                 num_cpus_per_run: float = 1.0, **_: Any) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if in_flight is not None and in_flight < 1:
            raise ValueError(f"in_flight must be >= 1, got {in_flight}")
        if num_cpus_per_run <= 0:
            raise ValueError(f"num_cpus_per_run must be > 0, got {num_cpus_per_run}")
        self.workers = workers
        self.address = address or None
        self.in_flight = in_flight
        self.num_cpus_per_run = num_cpus_per_run
        self._started = False  # whether close() must shut Ray down

    def _connect(self) -> Any:
        ray = _import_ray()
        if ray.is_initialized():
            return ray
        common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                      configure_logging=True)
        try:
            if self.address is None:
                ray.init(num_cpus=self.workers, **common)
            else:
                ray.init(address=self.address, **common)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {self.address!r}" if self.address else "a local Ray cluster"
            raise RuntimeError(f"could not start or join {where}: {e}. Check the address "
                               "(`ray status` on the head node), or drop --address to start "
                               "a local cluster, or use --executor local") from e
        self._started = True
        return ray

    def _window(self, ray: Any) -> int:
        if self.in_flight is not None:
            return self.in_flight
        cpus = int(ray.cluster_resources().get("CPU", 0) // self.num_cpus_per_run)
        return 2 * max(self.workers, cpus, 1)

    def map(self, runs: Iterable[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        """Execute ``runs`` as Ray tasks; yield ``(run, record)`` as each finishes.

        Runs not yet finished when the iteration stops (the sweep was
        interrupted) are cancelled.

        Args:
            runs: the runs to execute.

        Yields:
            ``(run, record)`` pairs, in completion order.
        """
        runs = list(runs)
        if not runs:
            return
        ray = self._connect()
        # No retries: a run that crashed its worker is recorded as failed,
        # and rerunning the sweep retries it (failed keys are not "done").
        remote = ray.remote(num_cpus=self.num_cpus_per_run, max_retries=0)(execute_run)
        window = self._window(ray)
        pending: dict[Any, RunSpec] = {}
        it = iter(runs)
        try:
            while True:
                while len(pending) < window:
                    r = next(it, None)
                    if r is None:
                        break
                    pending[remote.remote(r.task, r.params, r.seed)] = r
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    r = pending.pop(ref)
                    yield r, _result(ray, ref)
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished or the cluster is gone: nothing to cancel
                    pass

    def close(self) -> None:
        """Shut down the Ray cluster this executor started (a joined or reused one stays up)."""
        if self._started:
            ray = _import_ray()
            ray.shutdown()
            self._started = False


def _result(ray: Any, ref: Any) -> dict[str, Any]:
    try:
        rec = ray.get(ref)
    except Exception as e:  # the worker died (OOM kill, segfault) or the node was lost
        msg = str(e).strip().splitlines()
        return {"status": "error", "error": f"ray task failed: {type(e).__name__}: "
                f"{msg[0] if msg else ''}".rstrip(": "), "seconds": 0.0}
    if not isinstance(rec, dict) or "status" not in rec:
        return {"status": "error", "error": f"ray task returned {type(rec).__name__}, not a run record",
                "seconds": 0.0}
    return rec
