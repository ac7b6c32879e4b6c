"""One self-contained HTML page per run directory (``vcompute report RUN --html``).

The page holds the results table with units and meanings, every plot
(embedded as PNG data), the resolved config as TOML and the manifest. It
loads nothing from anywhere: no script, no remote style or font, so it opens
offline and can be attached to a paper review.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vcompute.experiment.config import ExperimentConfig
from vcompute.experiment.metrics import metric_info
from vcompute.experiment.results import atomic_write_text
from vcompute.experiment.table import fmt_number, summary_table

__all__ = ["render_html_report", "write_html_report"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:72em;
padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:.25em .6em;white-space:nowrap}
th{background:#f3f3f3}td.num{text-align:right}
dt{font-family:monospace;font-weight:bold}dd{margin:0 0 .4em 1.5em}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.unit{color:#666;font-weight:normal;font-size:.85em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def render_html_report(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]], manifest: dict[str, Any],
                       plots: Sequence[Path]) -> str:
    """The page as a string (see the module docstring).

    Args:
        cfg: the run directory's config.
        rows: rows of its ``results.csv``.
        manifest: its ``manifest.json``.
        plots: PNG files to embed.
    """
    import tomli_w

    task = cfg.experiment.task
    metrics, groups = summary_table(cfg, rows)
    heads = [*cfg.report.group_by, "runs"]
    th = "".join(f"<th>{_e(h)}</th>" for h in heads)
    for m in metrics:
        info = metric_info(m, task)
        th += f"<th>{_e(m)}" + (f" <span class=unit>[{_e(info.unit)}]</span>" if info else "") + "</th>"
    body = []
    for g in groups:
        cells = "".join(f"<td>{_e(fmt_number(g[h], 4))}</td>" for h in cfg.report.group_by)
        cells += f"<td class=num>{g['runs']}</td>"
        for m in metrics:
            se = g.get(f"{m}_se", 0.0)
            text = fmt_number(g[m], 4)
            if se and not math.isnan(se) and text != "nan":
                text += "±" + fmt_number(se, 2)
            cells += f"<td class=num>{_e(text)}</td>"
        body.append(f"<tr>{cells}</tr>")
    legend = []
    for m in metrics:
        info = metric_info(m, task)
        text = f"{info.meaning} [{info.unit}]" + (f"; nan: {info.nan}" if info.nan else "") if info \
            else "(no unit declared)"
        legend.append(f"<dt>{_e(m)}</dt><dd>{_e(text)}</dd>")
    figures = []
    for p in plots:
        data = base64.b64encode(Path(p).read_bytes()).decode()
        figures.append(f"<figure><img alt='{_e(Path(p).stem)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{_e(Path(p).name)}</figcaption></figure>")
    config_toml = tomli_w.dumps(_toml_ready(cfg.model_dump(mode="json", exclude_none=True)))
    n_seeds = len(cfg.experiment.seed_list())
    title = f"{cfg.experiment.name}: {cfg.experiment.description}" if cfg.experiment.description \
        else cfg.experiment.name
    return "\n".join([
        "<!DOCTYPE html>", "<html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(cfg.experiment.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>task <code>{_e(task)}</code>; {manifest.get('runs', '?')} runs; "
        f"{'mean±standard error over ' + str(n_seeds) + ' seeds' if n_seeds > 1 else 'one seed per row'}; "
        f"git {_e((manifest.get('git') or {}).get('commit') or '?')}; started {_e(manifest.get('started'))}.</p>",
        "<h2>Results</h2>", f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>",
        f"<dl>{''.join(legend)}</dl>",
        "<h2>Plots</h2>" if figures else "", *figures,
        "<h2>Config</h2>", f"<pre>{_e(config_toml)}</pre>",
        "<h2>Manifest</h2>", f"<pre>{_e(json.dumps(manifest, indent=2, sort_keys=True))}</pre>",
        "</body></html>", ""])


def _toml_ready(x: Any) -> Any:
    """JSON values TOML can write (it has no null)."""
    if isinstance(x, dict):
        return {k: _toml_ready(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_toml_ready(v) for v in x if v is not None]
    return x


def write_html_report(run_dir: Path, cfg: ExperimentConfig, rows: Sequence[dict[str, Any]],
                      manifest: dict[str, Any], plots: Sequence[Path], out: Path | None = None) -> Path:
    """Write the page (default ``run_dir/report.html``) atomically; returns its path."""
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    atomic_write_text(path, render_html_report(cfg, rows, manifest, plots))
    return path
