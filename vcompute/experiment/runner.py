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

from vcompute.core.hashing import canonical_json, digest_hex
from vcompute.experiment.config import ConfigError, ExperimentConfig, expand_runs, flatten_params, load_config
from vcompute.experiment.executors import create_executor
from vcompute.experiment.manifest import build_manifest, now_iso
from vcompute.experiment.report import draw_plots
from vcompute.experiment.results import (
    MANIFEST_FILE,
    RUNS_FILE,
    RunLog,
    atomic_write_text,
    read_results,
    write_results_csv,
)

__all__ = ["RunResult", "run_experiment", "run_config", "default_run_dir", "config_identity", "current_records"]

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
    identity = config_identity(cfg)
    if manifest_path.exists():
        _check_same_experiment(run_dir, manifest_path, cfg, identity)
    elif run_dir.is_dir() and (run_dir / RUNS_FILE).exists():
        raise ConfigError(f"{run_dir} holds a run log but no {MANIFEST_FILE}, so it cannot be told which "
                          f"config its runs belong to; choose another --out directory")
    log = RunLog(run_dir)
    done = log.done_keys()
    todo = [r for r in runs if r.key not in done]
    skipped = len(runs) - len(todo)
    config_dict = cfg.model_dump(mode="json")
    manifest = build_manifest(config=config_dict, config_path=config_path, overrides=list(overrides),
                              smoke=smoke, seeds=cfg.experiment.seed_list(), n_runs=len(runs),
                              started=now_iso())
    manifest["identity"] = identity
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
                write_results_csv(run_dir, current_records(log, order), order)
                last_csv = time.monotonic()
    finally:
        executor.close()
        write_results_csv(run_dir, current_records(log, order), order)

    rows = read_results(run_dir)
    plots = draw_plots(cfg, rows, run_dir)
    ok = sum(1 for r in rows if r.get("status") == "ok" and r.get("key") in order)
    manifest["finished"] = now_iso()
    manifest["outcome"] = {"ok": ok, "failed": n_failed, "skipped": skipped, "total": len(runs)}
    manifest["plots"] = [str(p.relative_to(run_dir)) for p in plots]
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
    return RunResult(run_dir=run_dir, total=len(runs), ok=ok, failed=n_failed, skipped=skipped,
                     plots=plots, rows=rows)



def config_identity(cfg: ExperimentConfig) -> dict[str, Any]:
    """What makes two configs the same experiment: the task and its resolved parameter sets.

    Seeds, the executor, the report table and the plots are not part of it:
    a run directory can be resumed with more seeds, on another executor, or
    with corrected plots. Anything that changes what one run computes (the
    task, a parameter, a grid value, the ``[smoke]`` variant) is.

    Returns:
        ``{"task", "parameter_sets", "digest"}``: the parameter sets' count and a
        digest of the task with every resolved parameter set.
    """
    sets: dict[str, dict[str, Any]] = {}
    for r in expand_runs(cfg):
        sets.setdefault(canonical_json(r.params), r.params)
    digest = digest_hex(canonical_json({"task": cfg.experiment.task, "parameter_sets": list(sets.values())}))[:16]
    return {"task": cfg.experiment.task, "parameter_sets": len(sets), "digest": digest}


def _check_same_experiment(run_dir: Path, manifest_path: Path, cfg: ExperimentConfig,
                           identity: dict[str, Any]) -> None:
    try:
        old = json.loads(manifest_path.read_text())
        old_cfg = ExperimentConfig.model_validate(old["config"])
        old_identity = old.get("identity") or config_identity(old_cfg)
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:
        raise ConfigError(f"{run_dir}/{MANIFEST_FILE} is unreadable ({type(e).__name__}), so it cannot be told "
                          f"which config its runs belong to; choose another --out directory") from None
    if old_identity.get("digest") == identity["digest"]:
        return
    diffs = _config_differences(old_cfg, cfg)
    shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
    raise ConfigError(f"{run_dir} holds runs of another config ({shown or 'its resolved parameters differ'}); "
                      f"a run directory belongs to one experiment, so its table never averages two. "
                      f"Choose another --out directory (or omit --out for a fresh runs/<name>-<timestamp>)")


def _config_differences(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Human-readable differences that change what runs compute (task, params, grid)."""
    out = []
    if old.experiment.task != new.experiment.task:
        out.append(f"experiment.task: {old.experiment.task!r} there, {new.experiment.task!r} here")
    for section in ("params", "grid"):
        a, b = flatten_params(getattr(old, section)), flatten_params(getattr(new, section))
        for k in sorted(set(a) | set(b)):
            if a.get(k, _ABSENT) != b.get(k, _ABSENT):
                there = "unset" if k not in a else repr(a[k])
                here = "unset" if k not in b else repr(b[k])
                out.append(f"{section}.{k}: {there} there, {here} here")
    return out


_ABSENT = object()


def current_records(log: RunLog, order: dict[str, int]) -> list[dict[str, Any]]:
    """The log's records of runs the current config expands to (``order``: key -> position).

    A run directory resumed with fewer seeds keeps the other seeds' runs in
    its log, but its table and ``results.csv`` show only this config's runs.
    """
    return [r for r in log.records() if r["key"] in order]
