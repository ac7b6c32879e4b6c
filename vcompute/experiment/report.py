"""The results table and plots of a run directory.

A plot puts a parameter on x (:func:`draw_plots` averages each y over seeds
and the other parameters per x value), or a metric (``x_metric = true``):
then :func:`frontier_series` makes one point per parameter set, x and y
both averaged over seeds with standard-error bars on both axes, one line
per ``hue`` value (and per value of the parameters that are neither hue nor
``order``), its points in the order of ``order`` or else of x.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vcompute.experiment.config import ConfigError, ExperimentConfig, PlotSpec, plot_x_is_metric
from vcompute.experiment.results import aggregate, numeric_metrics
from vcompute.experiment.metrics import metric_info
from vcompute.experiment.table import fmt_number, format_table, summary_table

__all__ = ["summary_table", "format_table", "draw_plots", "plot_figure", "frontier_series", "FrontierSeries"]


def draw_plots(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]], run_dir: Path) -> list[Path]:
    """Draw every ``[[plots]]`` entry into ``run_dir/plots``; returns the PNG paths.

    Raises:
        ConfigError: after drawing every other plot, if a plot with a metric on
            x names an x or y metric the results do not hold (the message names
            ``plots[i].x`` / ``plots[i].y`` and how to redraw).
    """
    if not cfg.plots:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(run_dir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, errors = [], []
    for i, spec in enumerate(cfg.plots):
        try:
            fig = plot_figure(cfg, spec, rows, index=i)
        except ConfigError as e:
            errors.append(str(e))
            continue
        try:
            path = out_dir / f"{spec.name}.png"
            fig.savefig(path, dpi=110)
            paths.append(path)
        finally:
            plt.close(fig)
    if errors:
        raise ConfigError("\n".join(errors) + f"\nthe results are kept in {run_dir}; fix the config and rerun "
                          f"`vcompute run CONFIG --out {run_dir}`: every finished run is skipped and only "
                          f"the table and plots are redone")
    return paths


def plot_figure(cfg: ExperimentConfig, spec: PlotSpec, rows: Sequence[dict[str, Any]], *, index: int = 0) -> Any:
    """The matplotlib figure of one ``[[plots]]`` entry (the caller closes it).

    Args:
        cfg: the config (its parameters decide whether x is a metric).
        spec: the plot.
        rows: rows of ``results.csv``.
        index: the plot's position in ``[[plots]]``, for error messages.

    Raises:
        ConfigError: for a metric on x whose x or y metric the rows do not hold.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = _param_names(cfg)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    try:
        if plot_x_is_metric(spec, params):
            _draw_frontier(ax, frontier_series(spec, rows, params, where=f"plots[{index}]", task=cfg.experiment.task),
                           spec, cfg.experiment.task)
        else:
            _draw(ax, spec, rows, cfg.experiment.task)
        ax.set_title(spec.title or f"{cfg.experiment.name}: {', '.join(spec.ys())} vs {spec.x}")
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _param_names(cfg: ExperimentConfig) -> list[str]:
    from vcompute.experiment.config import expand_runs, flatten_params

    return [*flatten_params(expand_runs(cfg)[0].params), "seed"]


@dataclass(frozen=True)
class FrontierSeries:
    """One line of a plot with a metric on x: per-parameter-set means in drawing order.

    Attributes:
        label: the legend entry.
        hue: the series' ``hue`` value (None without hue).
        metric: the y metric.
        fixed: the other varying parameters held fixed along the line (name -> value).
        x, y: means over seeds per parameter set.
        xerr, yerr: their standard errors (0 for a single seed).
        order: the ``order`` parameter's value per point (None without order).
        runs: ok runs (seeds) behind each point.
    """

    label: str
    hue: Any
    metric: str
    fixed: dict[str, Any]
    x: list[float]
    y: list[float]
    xerr: list[float]
    yerr: list[float]
    order: list[Any] | None
    runs: list[int]


def _sort_key(v: Any) -> tuple[str, Any]:
    return (str(type(v)), v)


def frontier_series(spec: PlotSpec, rows: Sequence[dict[str, Any]], params: Sequence[str], *,
                    where: str = "plots[?]", task: str = "the task") -> list[FrontierSeries]:
    """The points of a plot with a metric on x, one per parameter set, grouped into lines.

    A parameter set is one combination of the parameters that vary across the
    ok rows (seed excepted); its point is (mean of ``spec.x``, mean of each y)
    over its seeds, with standard errors. Points of one ``hue`` value form one
    line, sorted by x; with ``spec.order`` they form one line per combination
    of the other varying parameters, sorted by the ``order`` parameter. Points
    whose x or y mean is NaN (the metric was never finite) are left out.

    Args:
        spec: the plot (``x`` a metric).
        rows: rows of ``results.csv``.
        params: the config's parameter names (flattened, with ``seed``).
        where, task: for error messages.

    Raises:
        ConfigError: if ``spec.x`` or a y metric is not a numeric column of the ok rows.
    """
    ok = [r for r in rows if r.get("status") == "ok"]
    ys = spec.ys()
    if ok:
        pset = set(params)
        reported = numeric_metrics(ok, exclude=pset)
        for fld, names in (("x", [spec.x]), ("y", ys)):
            for m in names:
                if m in pset and fld == "y":
                    continue  # a parameter on y is its own mean
                if not any(_is_number(r.get(m)) for r in ok):
                    raise ConfigError(f"{where}.{fld}: {m!r} is not a metric in the results of task {task!r}; "
                                      f"its numeric metrics: {', '.join(reported) or '(none)'}")
    varying = [p for p in params if p != "seed" and len({repr(r.get(p)) for r in ok}) > 1]
    group_by = list(dict.fromkeys([*varying, *[k for k in (spec.hue, spec.order) if k]]))
    along = [p for p in varying if p not in (spec.hue, spec.order)] if spec.order else []
    groups = aggregate(ok, group_by, [spec.x, *ys])
    short = _short_names([k for k in (spec.hue, *along) if k])
    out = []
    for y in ys:
        lines: dict[tuple, list[dict[str, Any]]] = {}
        for g in groups:
            if math.isnan(g[spec.x]) or math.isnan(g[y]):
                continue
            key = (g[spec.hue] if spec.hue else None, tuple(g[p] for p in along))
            lines.setdefault(key, []).append(g)
        for (hue_val, fixed_vals), pts in lines.items():
            pts.sort(key=(lambda g: _sort_key(g[spec.order])) if spec.order else (lambda g: g[spec.x]))
            fixed = dict(zip(along, fixed_vals))
            parts = [f"{short[spec.hue]}={hue_val}"] if spec.hue else []
            parts += [f"{short[k]}={v}" for k, v in fixed.items()]
            parts += [y] if len(ys) > 1 else []
            out.append(FrontierSeries(
                label=", ".join(parts) or y, hue=hue_val, metric=y, fixed=fixed,
                x=[g[spec.x] for g in pts], y=[g[y] for g in pts],
                xerr=[g[f"{spec.x}_se"] for g in pts], yerr=[g[f"{y}_se"] for g in pts],
                order=[g[spec.order] for g in pts] if spec.order else None, runs=[g["runs"] for g in pts]))
    return out


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """Dotted parameter names by their last part for legends, where that stays unambiguous."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (t if last.count(t) == 1 else k) for k, t in zip(keys, last)}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_STYLES = ("-", "--", ":", "-.")


def _draw_frontier(ax: Any, series: Sequence[FrontierSeries], spec: PlotSpec, task: str | None = None) -> None:
    """Draw :func:`frontier_series` lines: colour per (hue, y), marker and dash per fixed parameters."""
    import matplotlib.pyplot as plt

    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    colour_keys = list(dict.fromkeys((s.hue, s.metric) for s in series))
    fixed_keys = list(dict.fromkeys(tuple(s.fixed.items()) for s in series))
    for s in series:
        ci = colour_keys.index((s.hue, s.metric))
        fi = fixed_keys.index(tuple(s.fixed.items()))
        ax.errorbar(s.x, s.y, xerr=s.xerr, yerr=s.yerr, color=colours[ci % len(colours)],
                    marker=_MARKERS[fi % len(_MARKERS)], ms=4, capsize=2, elinewidth=0.8,
                    linestyle=_STYLES[fi % len(_STYLES)] if spec.kind == "line" else "none", label=s.label)
        if s.order is not None and len(s.x) > 1:
            for xv, yv, ov in zip(s.x, s.y, s.order):
                ax.annotate(fmt_number(ov, 3), (xv, yv), textcoords="offset points", xytext=(3, 3), fontsize=6,
                            color=colours[ci % len(colours)])
    ys = spec.ys()
    ax.set_xlabel(axis_label(spec.x, task))
    ax.set_ylabel(axis_label(ys[0], task) if len(ys) == 1 else _shared_unit_label(ys, task))
    if spec.order:
        ax.text(0.99, 0.01, f"points labelled by {spec.order}", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=6, alpha=0.7)
    if spec.logx:
        ax.set_xscale("log")
    if spec.logy:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend(fontsize=6 if len(series) > 6 else 7)
    ax.grid(alpha=0.3)


def _draw(ax: Any, spec: PlotSpec, rows: Sequence[dict[str, Any]], task: str | None = None) -> None:
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
    ax.set_xlabel(axis_label(spec.x, task))
    ax.set_ylabel(axis_label(ys[0], task) if len(ys) == 1 else _shared_unit_label(ys, task))
    if spec.logx:
        ax.set_xscale("log")
    if spec.logy:
        ax.set_yscale("log")
    if (spec.hue or len(ys) > 1) and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def axis_label(name: str, task: str | None) -> str:
    """``name [unit]`` for a metric with a declared unit; the name alone otherwise (a parameter)."""
    info = metric_info(name, task)
    return f"{name} [{info.unit}]" if info is not None else name


def _shared_unit_label(ys: Sequence[str], task: str | None) -> str:
    units = {getattr(metric_info(y, task), "unit", None) for y in ys}
    return f"value [{units.pop()}]" if len(units) == 1 and None not in units else "value"
