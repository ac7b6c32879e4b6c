"""The results table and plots of a run directory."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vcompute.experiment.config import ExperimentConfig, PlotSpec
from vcompute.experiment.results import aggregate, numeric_metrics

__all__ = ["summary_table", "format_table", "draw_plots"]


def summary_table(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Aggregate ``rows`` as the config's ``[report]`` asks.

    Returns:
        ``(metrics, groups)``: the metric columns and one aggregated dict per group.
    """
    group_by = list(cfg.report.group_by)
    metrics = list(cfg.report.metrics) or numeric_metrics(rows, exclude=_param_columns(rows, cfg))
    return metrics, aggregate(rows, group_by, metrics)


def _param_columns(rows: Sequence[dict[str, Any]], cfg: ExperimentConfig) -> list[str]:
    from vcompute.experiment.config import expand_runs, flatten_params

    return list(flatten_params(expand_runs(cfg)[0].params))


def _fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.{max(digits - 2, 1)}e}"
        return f"{v:.{digits}g}"
    return str(v)


def format_table(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]], *, title: str | None = None):
    """A ``rich`` table of means (± standard error over seeds) per group."""
    from rich.table import Table

    metrics, groups = summary_table(cfg, rows)
    table = Table(title=title or cfg.experiment.name, show_lines=False,
                  caption="mean±standard error over seeds" if len(cfg.experiment.seed_list()) > 1 else None)
    for g in cfg.report.group_by:
        table.add_column(g, overflow="fold")
    table.add_column("runs", justify="right")
    for m in metrics:
        table.add_column(m, justify="right", overflow="fold")
    for grp in groups:
        cells = [_fmt(grp[g]) for g in cfg.report.group_by] + [str(grp["runs"])]
        for m in metrics:
            se = grp.get(f"{m}_se", 0.0)
            cells.append(_fmt(grp[m], 3) + (f"±{_fmt(se, 2)}" if se and not math.isnan(se) else ""))
        table.add_row(*cells)
    return table


def draw_plots(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]], run_dir: Path) -> list[Path]:
    """Draw every ``[[plots]]`` entry into ``run_dir/plots``; returns the PNG paths."""
    if not cfg.plots:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(run_dir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in cfg.plots:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        try:
            _draw(ax, spec, rows)
            ax.set_title(spec.title or f"{cfg.experiment.name}: {', '.join(spec.ys())} vs {spec.x}")
            fig.tight_layout()
            path = out_dir / f"{spec.name}.png"
            fig.savefig(path, dpi=110)
            paths.append(path)
        finally:
            plt.close(fig)
    return paths


def _draw(ax: Any, spec: PlotSpec, rows: Sequence[dict[str, Any]]) -> None:
    ys = spec.ys()
    hue_key = [spec.hue] if spec.hue else []
    groups = aggregate(rows, [*hue_key, spec.x], ys)
    series: dict[Any, list[dict[str, Any]]] = {}
    for g in groups:
        series.setdefault(g[spec.hue] if spec.hue else None, []).append(g)
    n_series = max(1, len(series) * len(ys))
    for s_i, (hue_val, pts) in enumerate(series.items()):
        for y_i, y in enumerate(ys):
            label = ", ".join(str(p) for p in ([f"{spec.hue}={hue_val}"] if spec.hue else []) +
                              ([y] if len(ys) > 1 else [])) or y
            xs = [p[spec.x] for p in pts]
            vals = [p[y] for p in pts]
            errs = [p[f"{y}_se"] for p in pts]
            if spec.kind == "bar":
                idx = s_i * len(ys) + y_i
                width = 0.8 / n_series
                pos = [i + (idx - (n_series - 1) / 2) * width for i in range(len(xs))]
                ax.bar(pos, vals, width=width, yerr=errs, label=label, capsize=2)
                labels = [str(x) for x in xs]
                long = sum(len(t) for t in labels) > 48
                ax.set_xticks(range(len(xs)), labels, rotation=25 if long else 0, ha="right" if long else "center")
            elif spec.kind == "scatter":
                ax.scatter(xs, vals, label=label, s=14)
            else:
                ax.errorbar(xs, vals, yerr=errs, marker="o", ms=3, capsize=2, label=label)
    ax.set_xlabel(spec.x)
    ax.set_ylabel(ys[0] if len(ys) == 1 else "value")
    if spec.logx:
        ax.set_xscale("log")
    if spec.logy:
        ax.set_yscale("log")
    if (spec.hue or len(ys) > 1) and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
