"""The results table of a run directory, for a terminal, Markdown or CSV.

Numbers never wrap: a table wider than the terminal first abbreviates its
headers (a legend names each one with its unit and meaning), then prints
fewer significant digits, and finally splits into several tables that
repeat the group columns. Units and meanings come from
:mod:`vcompute.experiment.metrics`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vcompute.core.registry import UnknownPluginError
from vcompute.experiment.config import ExperimentConfig
from vcompute.experiment.metrics import MetricInfo, metric_info
from vcompute.experiment.results import aggregate, numeric_metrics

__all__ = ["summary_table", "format_table", "table_markdown", "table_csv", "TableLayout", "layout_table"]

#: Columns never get narrower than this (headers are abbreviated down to it).
_MIN_HEADER = 5
_PAD = 3  # rich's column padding and separator


def summary_table(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Aggregate ``rows`` as the config's ``[report]`` asks.

    Returns:
        ``(metrics, groups)``: the metric columns and one aggregated dict per group.
    """
    metrics = list(cfg.report.metrics) or numeric_metrics(rows, exclude=_param_columns(rows, cfg))
    return metrics, aggregate(rows, list(cfg.report.group_by), metrics)


def _param_columns(rows: Sequence[dict[str, Any]], cfg: ExperimentConfig) -> list[str]:
    from vcompute.experiment.config import expand_runs, flatten_params

    return list(flatten_params(expand_runs(cfg)[0].params))


def fmt_number(v: Any, digits: int = 3) -> str:
    """A value with ``digits`` significant digits (scientific outside 1e-3..1e5)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.{max(digits - 1, 0)}e}"
    return f"{v:.{digits}g}"


def _cell(grp: dict[str, Any], m: str, digits: int) -> str:
    se = grp.get(f"{m}_se", 0.0)
    text = fmt_number(grp[m], digits)
    if se and not math.isnan(se) and text != "nan":
        text += "±" + fmt_number(se, max(digits - 1, 1))
    return text


def abbreviate(name: str, width: int, taken: set[str]) -> str:
    """``name`` shortened to at most ``width`` characters, unique among ``taken``.

    Each ``_``-separated part is cut to a common prefix length, the last
    part kept longest; a numeric suffix resolves clashes.

    Example:
        >>> abbreviate("verify_over_compute", 8, set())
        've_ov_co'
    """
    if len(name) <= width:
        return name
    parts = name.split("_")
    for keep in range(max(len(p) for p in parts), 0, -1):
        cand = "_".join(p[:keep] for p in parts)
        if len(cand) <= width and cand not in taken:
            return cand
    # Too many parts for the width: initials.
    cand = "".join(p[:1] for p in parts)[:width]
    base, i = cand, 2
    while cand in taken:
        cand = f"{base[:max(width - len(str(i)), 1)]}{i}"
        i += 1
    return cand


@dataclass(frozen=True)
class TableLayout:
    """How a summary table fits a width.

    Attributes:
        headers: the group, ``runs`` and metric headers (abbreviated where needed).
        rows: the cells, as strings, in header order.
        chunks: the metric columns of each printed table (indices into the metrics).
        digits: significant digits used for means.
        abbreviations: header -> metric for every abbreviated metric.
        groups: how many leading columns are group columns (``runs`` included).
    """

    headers: list[str]
    rows: list[list[str]]
    chunks: list[list[int]]
    digits: int
    abbreviations: dict[str, str]
    groups: int


def _widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]


def layout_table(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]], width: int = 100) -> TableLayout:
    """Decide headers, digits and splits so that no line is wider than ``width``."""
    metrics, groups = summary_table(cfg, rows)
    group_cols = [*cfg.report.group_by, "runs"]
    gcells = [[fmt_number(g[c], 4) if c != "runs" else str(g["runs"]) for c in group_cols] for g in groups]
    best: TableLayout | None = None
    for digits in (3, 2, 1):
        mcells = [[_cell(g, m, digits) for m in metrics] for g in groups]
        cell_w = [max([1, *(len(r[j]) for r in mcells)]) for j in range(len(metrics))]
        gw = 1 + sum(w + _PAD for w in _widths(group_cols, gcells))  # + the left border
        headers, abbrevs = list(metrics), {}
        # Shorten headers only as far as needed: the longest header budget that fits.
        for budget in range(max([_MIN_HEADER, *map(len, metrics)]), _MIN_HEADER - 1, -1):
            taken = set(group_cols)
            headers = []
            for j, m in enumerate(metrics):
                headers.append(abbreviate(m, max(cell_w[j], budget), taken))
                taken.add(headers[-1])
            if gw + sum(max(len(h), cw) + _PAD for h, cw in zip(headers, cell_w)) <= width:
                break
        abbrevs = {h: m for h, m in zip(headers, metrics) if h != m}
        chunks, cur, used = [], [], gw
        for j, h in enumerate(headers):
            w = max(len(h), cell_w[j]) + _PAD
            if cur and used + w > width:
                chunks.append(cur)
                cur, used = [], gw
            cur.append(j)
            used += w
        chunks.append(cur)
        layout = TableLayout(headers=[*group_cols, *headers],
                             rows=[g + m for g, m in zip(gcells, mcells)], chunks=chunks,
                             digits=digits, abbreviations=abbrevs, groups=len(group_cols))
        if best is None or len(chunks) < len(best.chunks):
            best = layout
        if len(chunks) == 1:
            break
    assert best is not None
    return best


def _legend(cfg: ExperimentConfig, metrics: Sequence[str], layout: TableLayout) -> list[str]:
    from vcompute.experiment.tasks import TASKS

    task = cfg.experiment.task
    try:
        cls = TASKS.get(task)
    except UnknownPluginError:  # an unregistered task still prints its table, without units
        cls = None
    short = {m: h for h, m in layout.abbreviations.items()}
    lines = []
    nan_cols = {layout.headers[layout.groups + j] for r in layout.rows
                for j in range(len(metrics)) if r[layout.groups + j] == "nan"}
    for m in metrics:
        info: MetricInfo | None = metric_info(m, task, cls)
        head = short.get(m, m)
        label = f"{head} = {m}" if head != m else m
        if info is None:
            lines.append(f"{label}: (no unit declared)")
            continue
        text = f"{label}: {info.meaning} [{info.unit}]"
        if head in nan_cols:
            text += f"; nan: {info.nan or 'no run gave a finite value'}"
        lines.append(text)
    return lines


def format_table(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]], *, title: str | None = None,
                 width: int = 100) -> Any:
    """A ``rich`` renderable: the table of means (± standard error over seeds) and its legend.

    Args:
        cfg: the config (its ``[report]``).
        rows: rows of ``results.csv``.
        title: the table title (default: the experiment name).
        width: the terminal width the table must fit; numbers never wrap.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    metrics, _ = summary_table(cfg, rows)
    lay = layout_table(cfg, rows, width)
    widths = _widths(lay.headers, lay.rows)
    tables = []
    for n, chunk in enumerate(lay.chunks):
        cols = list(range(lay.groups)) + [lay.groups + j for j in chunk]
        part = f" ({n + 1}/{len(lay.chunks)})" if len(lay.chunks) > 1 else ""
        t = Table(title=(title or cfg.experiment.name) + part)
        for c in cols:
            t.add_column(lay.headers[c], justify="left" if c < lay.groups - 1 else "right", no_wrap=True,
                         min_width=widths[c], overflow="ignore")
        for r in lay.rows:
            t.add_row(*(r[c] for c in cols))
        tables.append(t)
    n_seeds = len(cfg.experiment.seed_list())
    notes = ([f"cells: mean±standard error over {n_seeds} seeds (runs: seeds behind each row)"]
             if n_seeds > 1 else ["cells: one seed per row (no standard error)"])
    legend = Text("\n".join([*notes, *_legend(cfg, metrics, lay)]), style="dim", overflow="fold")
    return Group(*tables, legend)


def table_markdown(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]]) -> str:
    """The summary table as GitHub Markdown, with the legend below it."""
    metrics, groups = summary_table(cfg, rows)
    heads = [*cfg.report.group_by, "runs", *metrics]
    out = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    for g in groups:
        cells = [fmt_number(g[c], 4) for c in cfg.report.group_by] + [str(g["runs"])]
        cells += [_cell(g, m, 4) for m in metrics]
        out.append("| " + " | ".join(cells) + " |")
    lay = layout_table(cfg, rows, width=10**6)
    out += ["", *(f"- {line}" for line in _legend(cfg, metrics, lay))]
    return "\n".join(out) + "\n"


def table_csv(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]]) -> str:
    """The summary table as CSV: group columns, ``runs``, then ``m`` and ``m_se`` per metric."""
    metrics, groups = summary_table(cfg, rows)
    heads = [*cfg.report.group_by, "runs", *(x for m in metrics for x in (m, f"{m}_se"))]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(heads)
    for g in groups:
        w.writerow([g.get(h) for h in heads])
    return buf.getvalue()
