"""The results table: numbers never wrap, headers abbreviate with a legend, Markdown / CSV / HTML."""

from __future__ import annotations

import csv
import io
import re

import pytest
from rich.console import Console

from vcompute.experiment.config import load_config
from vcompute.experiment.html import render_html_report
from vcompute.experiment.table import abbreviate, format_table, layout_table, table_csv, table_markdown

CFG = """
[experiment]
name = "table-test"
task = "market.run"
seeds = 2
[grid]
"adversary.strategy" = ["lazy", "low_precision"]
[report]
group_by = ["adversary.strategy"]
metrics = ["cheat_rate_adversary", "profit_honest", "profit_adversary", "detect_latency_jobs",
           "fraud_rate", "cost_per_correct", "verification_overhead"]
"""


def _rows():
    rows = []
    for b, base in (("lazy", 0.0558), ("low_precision", 1234567.0)):
        for seed in (0, 1):
            rows.append({"key": f"{b}{seed}", "seed": seed, "status": "ok", "adversary.strategy": b,
                         "cheat_rate_adversary": base + seed * 0.00013, "profit_honest": -base / 3 + seed,
                         "profit_adversary": float("nan"), "detect_latency_jobs": 12.0 + seed,
                         "fraud_rate": 1e-7 * (seed + 1), "cost_per_correct": 0.2318 + seed / 1000,
                         "verification_overhead": 0.1 + seed / 7})
    return rows


def _render(width):
    cfg = load_config(text=CFG)
    rows = _rows()
    console = Console(width=width, color_system=None, record=True, file=io.StringIO())
    console.print(format_table(cfg, rows, width=width))
    return cfg, rows, console.export_text()


@pytest.mark.parametrize("width", [60, 80, 100, 120, 200])
def test_numbers_never_wrap_and_every_line_fits(width):
    cfg, rows, text = _render(width)
    lay = layout_table(cfg, rows, width)
    table_lines = [ln for ln in text.splitlines() if ln[:1] in "┏┃┡│└"]
    assert table_lines and max(len(ln) for ln in table_lines) <= width
    shown = set(re.findall(r"[-\d.e+±nan]+", "".join(table_lines)))
    for r in lay.rows:  # every cell appears whole on one line
        for cell in r[lay.groups:]:
            assert any(cell in ln for ln in table_lines), (cell, width)
    assert shown
    # every abbreviated header is spelled out in the legend, with its unit
    for short, full in lay.abbreviations.items():
        assert f"{short} = {full}: " in text.replace("\n", " ")
    assert "[USD]" in text and "[fraction]" in text


def test_nan_is_explained_where_it_appears():
    _, _, text = _render(200)
    flat = " ".join(text.split())
    assert "profit_adversary: mean profit per non-honest provider" in flat
    assert "nan: the market has no adversary" in flat
    assert "mean±standard error over 2 seeds" in flat


def test_narrow_terminal_splits_rather_than_wraps():
    cfg, rows, text = _render(60)
    assert "(1/" in text
    assert layout_table(cfg, rows, 60).chunks != [[0, 1, 2, 3, 4, 5, 6]]


def test_abbreviate_is_unique_and_short():
    taken: set[str] = set()
    names = ["cheat_rate_adversary", "cheat_rate_honest", "cheat_rate_lazy", "caught_by_1", "caught_by_4"]
    out = []
    for n in names:
        out.append(abbreviate(n, 6, taken))
        taken.add(out[-1])
    assert len(set(out)) == len(out) and all(len(a) <= 6 for a in out)


def test_markdown_and_csv():
    cfg = load_config(text=CFG)
    md = table_markdown(cfg, _rows())
    assert md.splitlines()[0].startswith("| adversary.strategy | runs | cheat_rate_adversary")
    assert "- cost_per_correct: everything consumers paid" in md and "[USD]" in md
    parsed = list(csv.DictReader(io.StringIO(table_csv(cfg, _rows()))))
    assert [r["adversary.strategy"] for r in parsed] == ["lazy", "low_precision"]
    assert float(parsed[0]["detect_latency_jobs"]) == pytest.approx(12.5)
    assert float(parsed[0]["detect_latency_jobs_se"]) == pytest.approx(0.5)


def test_html_report_is_self_contained(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = tmp_path / "p.png"
    fig.savefig(png)
    plt.close(fig)
    cfg = load_config(text=CFG)
    page = render_html_report(cfg, _rows(), {"runs": 4, "git": {"commit": "abc"}, "started": "now"}, [png])
    assert "data:image/png;base64," in page and "<table>" in page and "[USD]" in page
    assert "[experiment]" in page  # the config, as TOML
    # nothing is loaded from anywhere: no scripts, no remote URLs, no external stylesheets
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page, re.I)
    assert "<link" not in page.lower()
