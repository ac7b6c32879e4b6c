"""The ``vcompute`` command line: run, report, list, validate (and plugin groups).

Exit codes: 0 success, 1 some runs failed, 2 bad usage or invalid config
(printed as one clear message, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]

#: Subcommand groups contributed by other layers: module with ``add_parser(subparsers)``.
_PLUGIN_COMMANDS = ("vcompute.ledger.cli", "vcompute.verify.pol.cli")

#: Every registry ``vcompute list`` shows: name -> (module, attribute). A test
#: checks that every ``Registry`` in the package is listed here.
REGISTRIES: dict[str, tuple[str, str]] = {
    "verifiers": ("vcompute.verify", "VERIFIERS"),
    "kinds": ("vcompute.workloads.kinds", "KINDS"),
    "behaviours": ("vcompute.workloads.kinds.behaviours", "BEHAVIOURS"),
    "tasks": ("vcompute.experiment.tasks", "TASKS"),
    "ledgers": ("vcompute.ledger", "LEDGERS"),
    "executors": ("vcompute.experiment.executors", "EXECUTORS"),
    "policies": ("vcompute.trust.policies", "POLICIES"),
    "matchers": ("vcompute.market.matching", "MATCHERS"),
    "routers": ("vcompute.market.routing", "ROUTERS"),
    "strategies": ("vcompute.market.strategies", "STRATEGIES"),
}


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from vcompute import __version__

    p = argparse.ArgumentParser(prog="vcompute", description="Verifiable outsourced compute: "
                                "run experiments, report results, list plugins.")
    p.add_argument("--version", action="version", version=f"vcompute {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="run an experiment config",
                       description="Run every run of an experiment config and write a run directory "
                                   "(results.csv, manifest.json, plots/). Reusing --out resumes a sweep.")
    r.add_argument("config", help="TOML experiment config, e.g. experiments/quickstart.toml")
    r.add_argument("--out", help="run directory (default runs/<name>-<timestamp>); reuse it to resume")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set params.rounds=4 --set 'grid.n=[64,128]'")
    r.add_argument("--smoke", action="store_true", help="apply the config's [smoke] overrides (quick variant)")
    r.add_argument("--executor", help="override experiment.executor (local, serial, ray, ...)")
    r.add_argument("--workers", type=int, help="override experiment.workers")
    r.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local one)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_run)

    v = sub.add_parser("validate", help="check a config without running it",
                       description="Validate a config and print how many runs it expands to.")
    v.add_argument("config")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    v.add_argument("--smoke", action="store_true")
    v.set_defaults(func=_cmd_validate)

    rep = sub.add_parser("report", help="re-print the table and re-draw the plots of a run directory",
                         description="Rebuild results.csv from the run log, print the table, redraw plots.")
    rep.add_argument("run_dir")
    rep.add_argument("--format", choices=["table", "markdown", "csv"], default="table",
                     help="table (terminal, default), markdown (GitHub table + legend) or csv (means and "
                          "standard errors per group)")
    rep.add_argument("--html", nargs="?", const="", metavar="FILE",
                     help="also write a self-contained HTML page (table with units, plots, config, manifest); "
                          "default FILE: RUN_DIR/report.html")
    rep.set_defaults(func=_cmd_report)

    ls = sub.add_parser("list", help="list registered plugins and metrics",
                        description="List every registry's plugins (verifiers, behaviours, tasks, ledgers, "
                                    "executors, policies, matchers, strategies), or every task's metrics "
                                    "with unit and meaning.")
    ls.add_argument("what", nargs="?", default="all", choices=["all", *REGISTRIES, "metrics"])
    ls.set_defaults(func=_cmd_list)

    b = sub.add_parser("bench", help="run benchmark scripts from ./benchmarks",
                       description="Run benchmarks/NAME.py scripts of a vcompute checkout; each prints "
                                   "ratios measured side by side in one run.")
    b.add_argument("names", nargs="*", help="benchmark names (default: all in ./benchmarks)")
    b.add_argument("--quick", action="store_true", help="pass --quick (short sizes) to each script")
    b.add_argument("--dir", default="benchmarks", help="where the scripts are (default ./benchmarks)")
    b.set_defaults(func=_cmd_bench)

    for mod in _PLUGIN_COMMANDS:
        try:
            importlib.import_module(mod).add_parser(sub)
        except ImportError:
            continue
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vcompute`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from vcompute.experiment.config import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        return _err(str(e))
    except KeyboardInterrupt:
        print("interrupted; rerun the same command with the same --out to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `vcompute list metrics | head`: the reader left, nothing is wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    for opt, key in (("executor", "experiment.executor"), ("workers", "experiment.workers"),
                     ("address", "experiment.address")):
        val = getattr(args, opt, None)
        if val is not None:
            extra.append(f"{key}={val!r}" if isinstance(val, str) else f"{key}={val}")
    return extra


def _console():
    from rich.console import Console

    # Piped output (CI logs, files) is not wrapped at rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=160)


def _cmd_validate(args: argparse.Namespace) -> int:
    from vcompute.experiment.config import expand_runs, load_config

    cfg = load_config(args.config, overrides=args.overrides, smoke=args.smoke)
    runs = expand_runs(cfg)
    print(f"{args.config}: valid; task {cfg.experiment.task!r}, {len(runs)} runs "
          f"({len(runs) // len(cfg.experiment.seed_list())} parameter sets x "
          f"{len(cfg.experiment.seed_list())} seeds)")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from vcompute.experiment.config import load_config
    from vcompute.experiment.report import format_table
    from vcompute.experiment.runner import run_experiment

    overrides = _overrides(args)
    cfg = load_config(args.config, overrides=overrides, smoke=args.smoke)
    console = _console()
    show = not args.quiet
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[failed_note]}", style="red"), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn(), console=console, disable=not show,
                        transient=False)
    state: dict[str, int] = {}

    def on_start(todo: int, skipped: int) -> None:
        if skipped:
            console.print(f"resuming: {skipped} runs already done, {todo} to go")
        state["task"] = progress.add_task(cfg.experiment.name, total=todo, failed_note="")

    def on_progress(done: int, failed: int, total: int) -> None:
        progress.update(state["task"], completed=done, failed_note=f"{failed} failed" if failed else "")

    with progress:
        res = run_experiment(cfg, out=args.out, config_path=args.config, overrides=overrides,
                             smoke=args.smoke, progress=on_progress, on_start=on_start)
    console.print(format_table(cfg, res.rows, width=console.width))
    console.print(f"run directory: {res.run_dir}  (results.csv, manifest.json)")
    for p in res.plots:
        console.print(f"plot: {p}")
    if res.failed:
        errors = [r for r in res.rows if r.get("status") != "ok"]
        console.print(f"[red]{res.failed} of {res.total} runs failed[/red]; first error: "
                      f"{errors[0].get('error') if errors else '?'} (details in {res.run_dir / 'runs.jsonl'})")
        return 1
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import json

    from vcompute.experiment.config import ConfigError, ExperimentConfig, expand_runs
    from vcompute.experiment.report import draw_plots
    from vcompute.experiment.results import MANIFEST_FILE, RunLog, read_results, write_results_csv
    from vcompute.experiment.runner import current_records
    from vcompute.experiment.table import format_table, table_csv, table_markdown

    run_dir = Path(args.run_dir)
    mpath = run_dir / MANIFEST_FILE
    if not mpath.exists():
        raise ConfigError(f"{run_dir}: no {MANIFEST_FILE}; is this a run directory written by `vcompute run`?")
    try:
        manifest = json.loads(mpath.read_text())
        cfg = ExperimentConfig.model_validate(manifest["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{mpath}: not a manifest written by `vcompute run` ({type(e).__name__})") from None
    order = {r.key: i for i, r in enumerate(expand_runs(cfg))}
    write_results_csv(run_dir, current_records(RunLog(run_dir), order), order)
    rows = read_results(run_dir)
    plots = draw_plots(cfg, rows, run_dir)
    if args.format == "markdown":
        sys.stdout.write(table_markdown(cfg, rows))
    elif args.format == "csv":
        sys.stdout.write(table_csv(cfg, rows))
    else:
        console = _console()
        console.print(format_table(cfg, rows, width=console.width))
        for p in plots:
            console.print(f"plot: {p}")
    if args.html is not None:
        from vcompute.experiment.html import write_html_report

        out = Path(args.html) if args.html else run_dir / "report.html"
        write_html_report(run_dir, cfg, rows, manifest, plots, out)
        print(f"html: {out}", file=sys.stderr if args.format != "table" else sys.stdout)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import subprocess

    from vcompute.experiment.config import ConfigError

    root = Path(args.dir)
    available = sorted(p.stem for p in root.glob("*.py") if not p.name.startswith("_"))
    if not available:
        raise ConfigError(f"no benchmark scripts in {root}/; run from a vcompute checkout or pass --dir")
    names = args.names or available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}")
    rc = 0
    for n in names:
        print(f"== benchmarks/{n}.py", flush=True)
        cmd = [sys.executable, str(root / f"{n}.py"), *(["--quick"] if args.quick else [])]
        rc = max(rc, subprocess.run(cmd).returncode)
    return 1 if rc else 0


def _cmd_list(args: argparse.Namespace) -> int:
    from vcompute.core.registry import Registry

    if args.what == "metrics":
        return _list_metrics()
    for what, (mod, attr) in REGISTRIES.items():
        if args.what not in ("all", what):
            continue
        try:
            reg: Registry = getattr(importlib.import_module(mod), attr)
            names = reg.names()
        except ImportError as e:  # an optional extra is missing
            print(f"{what}: (unavailable: {e.name or e} is not installed)")
            continue
        print(f"{what}: {', '.join(names) if names else '(none)'}")
    if args.what == "all":
        print("metrics: `vcompute list metrics` (every task's metrics with unit and meaning)")
    return 0


def _list_metrics() -> int:
    from vcompute.experiment.metrics import task_metric_infos
    from vcompute.experiment.tasks import TASKS

    for task in TASKS.names():
        infos = task_metric_infos(task)
        print(f"{task}:")
        if not infos:
            print("  (the task declares no metrics)")
        width = max((len(m) for m in infos), default=0)
        for m, info in infos.items():
            text = f"[{info.unit}] {info.meaning}" + (f" (nan: {info.nan})" if info.nan else "") if info \
                else "(no unit declared)"
            print(f"  {m:<{width}}  {text}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
