"""Run an experiment: expand the grid, execute, record, report.

The runner keys each run by a hash of its task, resolved parameters and
seed. A run directory can be reused: runs whose key already finished are
skipped, so a killed or partly failed sweep resumes where it stopped.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcompute.experiment.config import ConfigError, ExperimentConfig, expand_runs, load_config
from vcompute.experiment.executors import create_executor
from vcompute.experiment.manifest import build_manifest, now_iso
from vcompute.experiment.report import draw_plots
from vcompute.experiment.results import MANIFEST_FILE, RunLog, atomic_write_text, read_results, write_results_csv

__all__ = ["RunResult", "run_experiment", "run_config", "default_run_dir"]

#: ``(done, failed, total)`` progress callback.
ProgressFn = Callable[[int, int, int], None]


@dataclass
class RunResult:
    """What an experiment invocation produced.

    Attributes:
        run_dir: the run directory.
        total: runs in the config.
        ok: runs finished successfully (including earlier, skipped ones).
        failed: runs that recorded an error this time.
        skipped: runs already done in an earlier invocation.
        plots: PNG files written.
        rows: the rows of ``results.csv``.
    """

    run_dir: Path
    total: int
    ok: int
    failed: int
    skipped: int
    plots: list[Path] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def default_run_dir(cfg: ExperimentConfig, root: Path = Path("runs")) -> Path:
    """``runs/<name>-<UTC timestamp>``."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return root / f"{cfg.experiment.name}-{stamp}"


def run_config(path: str | Path, *, overrides: Sequence[str] = (), smoke: bool = False,
               **kwargs: Any) -> RunResult:
    """Load ``path`` (with overrides) and run it; see :func:`run_experiment`."""
    cfg = load_config(path, overrides=overrides, smoke=smoke)
    return run_experiment(cfg, config_path=str(path), overrides=overrides, smoke=smoke, **kwargs)


def run_experiment(
    cfg: ExperimentConfig,
    *,
    out: str | Path | None = None,
    config_path: str | None = None,
    overrides: Sequence[str] = (),
    smoke: bool = False,
    progress: ProgressFn | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Execute every run of ``cfg`` not already done in ``out``.

    Args:
        cfg: a validated config.
        out: run directory (default :func:`default_run_dir`); reusing one resumes it.
        config_path, overrides, smoke: recorded in the manifest.
        progress: called after each run with ``(done, failed, total)``.
        on_start: called with ``(todo, skipped)`` before the first run.

    Raises:
        ConfigError: if ``out`` holds a different experiment.
    """
    runs = expand_runs(cfg)
    run_dir = Path(out) if out is not None else default_run_dir(cfg)
    manifest_path = run_dir / MANIFEST_FILE
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("task") not in (None, cfg.experiment.task):
            raise ConfigError(f"{run_dir} holds results of task {old.get('task')!r}, not "
                              f"{cfg.experiment.task!r}; choose another --out directory")
    log = RunLog(run_dir)
    done = log.done_keys()
    todo = [r for r in runs if r.key not in done]
    skipped = len(runs) - len(todo)
    config_dict = cfg.model_dump(mode="json")
    manifest = build_manifest(config=config_dict, config_path=config_path, overrides=list(overrides),
                              smoke=smoke, seeds=cfg.experiment.seed_list(), n_runs=len(runs),
                              started=now_iso())
    manifest["resumed"] = {"skipped_runs": skipped} if skipped else None
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
    if on_start:
        on_start(len(todo), skipped)

    order = {r.key: i for i, r in enumerate(runs)}
    executor = create_executor(cfg.experiment.executor, workers=cfg.experiment.workers,
                               address=cfg.experiment.address)
    n_done, n_failed, last_csv = 0, 0, time.monotonic()
    try:
        for run, rec in executor.map(todo):
            entry = {"key": run.key, "seed": run.seed, "task": run.task, "params": run.params, **rec}
            log.append(entry)
            n_done += 1
            n_failed += rec["status"] != "ok"
            if progress:
                progress(n_done, n_failed, len(todo))
            if time.monotonic() - last_csv > 2.0:
                write_results_csv(run_dir, log.records(), order)
                last_csv = time.monotonic()
    finally:
        executor.close()
        write_results_csv(run_dir, log.records(), order)

    rows = read_results(run_dir)
    plots = draw_plots(cfg, rows, run_dir)
    ok = sum(1 for r in rows if r.get("status") == "ok" and r.get("key") in order)
    manifest["finished"] = now_iso()
    manifest["outcome"] = {"ok": ok, "failed": n_failed, "skipped": skipped, "total": len(runs)}
    manifest["plots"] = [str(p.relative_to(run_dir)) for p in plots]
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
    return RunResult(run_dir=run_dir, total=len(runs), ok=ok, failed=n_failed, skipped=skipped,
                     plots=plots, rows=rows)

