"""Plots with a metric on x (trade-off frontiers): validation, points, error bars, report-time errors.

The task is ``synthetic.burn``: ``elements`` (= size * iters) is exact, so the
x of every point is known; ``checksum`` depends on the seed, so the y means
and standard errors are checked against runs of the task made here.
"""

from __future__ import annotations

import math
import statistics
import textwrap

import matplotlib
import pytest

from vcompute.experiment.config import ConfigError, expand_runs, flatten_params, load_config
from vcompute.experiment.report import _draw, draw_plots, frontier_series, plot_figure
from vcompute.experiment.results import aggregate, read_results
from vcompute.experiment.runner import run_experiment
from vcompute.experiment.tasks.synthetic import Burn, BurnParams

matplotlib.use("Agg")

SIZES = [100, 200, 400]
ITERS = [1, 2]
SEEDS = 3

CFG = textwrap.dedent(f"""
    [experiment]
    name = "frontier-test"
    task = "synthetic.burn"
    seeds = {SEEDS}
    executor = "serial"
    [grid]
    size = {SIZES}
    iters = {ITERS}
    [[plots]]
    name = "frontier"
    x = "elements"
    x_metric = true
    y = "checksum"
    hue = "iters"
    order = "size"
    [[plots]]
    name = "by-size"
    x = "size"
    y = "checksum"
    hue = "iters"
    [smoke]
    "grid.size" = [100, 200]
    "experiment.seeds" = 2
""")


def _checksums(size: int, iters: int) -> list[float]:
    return [Burn().run(BurnParams(size=size, iters=iters), seed=s)["checksum"] for s in range(SEEDS)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("frontier") / "run"
    cfg = load_config(text=CFG)
    res = run_experiment(cfg, out=out)
    assert res.failed == 0 and res.ok == len(SIZES) * len(ITERS) * SEEDS
    return cfg, res


def test_metric_x_config_validates_and_draws_pngs(run):
    cfg, res = run
    assert [p.name for p in res.plots] == ["frontier.png", "by-size.png"]
    assert all(p.stat().st_size > 1000 for p in res.plots)
    assert cfg.plots[0].x_metric and cfg.plots[0].order == "size"
    assert not cfg.plots[1].x_metric and cfg.plots[1].order is None


def test_one_point_per_parameter_set_with_se_on_both_axes(run):
    cfg, res = run
    params = [*flatten_params(expand_runs(cfg)[0].params), "seed"]
    series = frontier_series(cfg.plots[0], res.rows, params)
    assert [s.hue for s in series] == ITERS  # one line per hue value
    for s in series:
        assert s.order == SIZES  # joined in the order of `order`
        assert s.x == [float(size * s.hue) for size in SIZES]  # elements = size * iters, the same for every seed
        assert s.xerr == [0.0] * len(SIZES)
        assert s.runs == [SEEDS] * len(SIZES)
        for size, y, yerr in zip(SIZES, s.y, s.yerr):
            vals = _checksums(size, s.hue)
            assert y == pytest.approx(statistics.fmean(vals), rel=1e-12)
            assert yerr == pytest.approx(statistics.stdev(vals) / math.sqrt(SEEDS), rel=1e-9)
            assert yerr > 0


def test_figure_holds_the_plotted_points(run):
    cfg, res = run
    fig = plot_figure(cfg, cfg.plots[0], res.rows)
    try:
        ax = fig.axes[0]
        bars = ax.containers
        assert len(bars) == len(ITERS)
        n_points = 0
        for container, iters in zip(bars, ITERS):
            line, (xbars, ybars) = container.lines[0], container.lines[2]
            assert list(line.get_xdata()) == [float(size * iters) for size in SIZES]
            assert len(line.get_ydata()) == len(SIZES)
            assert line.get_linestyle() == "-"  # kind = "line": points joined
            assert len(xbars.get_segments()) == len(ybars.get_segments()) == len(SIZES)
            n_points += len(line.get_xdata())
        assert n_points == len(SIZES) * len(ITERS)
        assert ax.get_xlabel() == "elements [count]" and ax.get_ylabel() == "checksum [1]"  # units from the catalogue
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["iters=1", "iters=2"]
    finally:
        matplotlib.pyplot.close(fig)


def test_default_order_is_x_and_other_parameters_share_the_line(run):
    cfg, res = run
    # Without order and without hue every parameter set is a point of one line, sorted by x.
    spec = cfg.plots[0].model_copy(update={"order": None, "hue": None, "kind": "scatter"})
    (s,) = frontier_series(spec, res.rows, ["size", "iters", "seed"])
    assert s.order is None and len(s.x) == len(SIZES) * len(ITERS)
    assert s.x == sorted(s.x) == sorted(float(a * b) for a in SIZES for b in ITERS)
    fig = plot_figure(cfg, spec, res.rows)
    try:
        (container,) = fig.axes[0].containers
        assert container.lines[0].get_linestyle() == "None"  # scatter: points only
    finally:
        matplotlib.pyplot.close(fig)
    # order, not x, sets the sequence along a line (rows made here: x falls, rises, falls along a).
    xs = {1: 3.0, 2: 1.0, 3: 2.0, 4: 0.5}
    rows = [{"status": "ok", "seed": seed, "a": a, "m": xs[a] + 0.1 * seed, "n": float(a * a)}
            for a in xs for seed in (0, 1)]
    frontier = cfg.plots[0].model_copy(update={"x": "m", "y": "n", "hue": None, "order": "a"})
    (s,) = frontier_series(frontier, rows, ["a", "seed"])
    assert s.order == [1, 2, 3, 4] and s.x == pytest.approx([3.05, 1.05, 2.05, 0.55])
    assert s.y == [1.0, 4.0, 9.0, 16.0] and s.xerr == pytest.approx([0.05] * 4) and s.yerr == [0.0] * 4
    (s,) = frontier_series(frontier.model_copy(update={"order": None}), rows, ["a", "seed"])
    assert s.order is None and s.x == pytest.approx([0.55, 1.05, 2.05, 3.05]) and s.y == [16.0, 4.0, 9.0, 1.0]
    # With order and no hue, the other varying parameter (iters) splits the lines.
    spec = cfg.plots[0].model_copy(update={"hue": None})
    lines = frontier_series(spec, res.rows, ["size", "iters", "seed"])
    assert [s.fixed for s in lines] == [{"iters": 1}, {"iters": 2}]
    assert all(s.order == SIZES for s in lines)


def test_param_x_plot_unchanged(run):
    cfg, res = run
    fig = plot_figure(cfg, cfg.plots[1], res.rows, index=1)
    try:
        ax = fig.axes[0]
        expected = aggregate(res.rows, ["iters", "size"], ["checksum"])
        assert len(ax.containers) == len(ITERS)
        for container, iters in zip(ax.containers, ITERS):
            pts = [g for g in expected if g["iters"] == iters]
            assert list(container.lines[0].get_xdata()) == SIZES
            assert list(container.lines[0].get_ydata()) == pytest.approx([g["checksum"] for g in pts])
        assert ax.get_title() == "frontier-test: checksum vs size"
    finally:
        matplotlib.pyplot.close(fig)
    # the same drawing as the plain param-x path
    fig2, ax2 = matplotlib.pyplot.subplots()
    try:
        _draw(ax2, cfg.plots[1], res.rows)
        assert [list(c.lines[0].get_ydata()) for c in ax2.containers] == [
            list(c.lines[0].get_ydata()) for c in ax.containers]
    finally:
        matplotlib.pyplot.close(fig2)


def test_smoke_variant_runs_quickly(tmp_path):
    cfg = load_config(text=CFG, smoke=True)
    res = run_experiment(cfg, out=tmp_path / "run")
    assert res.failed == 0 and res.ok == 2 * len(ITERS) * 2
    assert (tmp_path / "run" / "plots" / "frontier.png").exists()


def _mut(old: str, new: str):
    return lambda s: s.replace(old, new, 1)


@pytest.mark.parametrize("mutate, expected", [
    (_mut('x_metric = true\n', ''),
     r"plots\[0\]\.x: 'elements' is not a parameter; parameters: .*add x_metric = true"),
    (_mut('x = "size"', 'x = "size"\nx_metric = true'),
     r"plots\[1\]\.x_metric: x = 'size' is a parameter, not a metric; remove x_metric"),
    (_mut('order = "size"', 'order = "sise"'), r"plots\[0\]\.order: 'sise' is not a parameter.*parameters: .*size"),
    (_mut('order = "size"', 'order = "seed"'), r"plots\[0\]\.order: 'seed' is not a parameter"),
    (_mut('hue = "iters"', 'hue = "iter"'), r"plots\[0\]\.hue: 'iter' is not a parameter; parameters: .*iters"),
    (_mut('order = "size"', 'order = "size"\nkind = "bar"'), r"plots\[0\]\.kind: 'bar' needs a parameter on x"),
    (lambda s: s.replace('hue = "iters"\n[smoke]', 'hue = "iters"\norder = "iters"\n[smoke]'),
     r"plots\[1\]\.order: only a plot with a metric on x \(x_metric = true\) takes order"),
    (lambda s: s.replace('x = "size"', 'x = "sise"'), r"plots\[1\]\.x: 'sise' is not a parameter"),
])
def test_bad_names_fail_before_running_with_key_path(mutate, expected, monkeypatch):
    monkeypatch.delattr(Burn, "metrics")  # an undeclared (third-party) task: a metric on x needs x_metric
    text = mutate(CFG)
    assert text != CFG
    with pytest.raises(ConfigError, match=expected):
        load_config(text=text)


def test_declared_task_metrics_are_checked_before_running(monkeypatch):
    assert Burn.metrics == ("checksum", "elements", "burn_s")
    load_config(text=CFG)
    # a declared metric needs no x_metric
    load_config(text=CFG.replace('x_metric = true\n', '', 1))
    with pytest.raises(ConfigError, match=r"plots\[0\]\.x: metric 'elementz' is not produced by task 'synthetic\.burn'"):
        load_config(text=CFG.replace('x = "elements"', 'x = "elementz"'))


def test_unknown_metric_fails_at_report_time_naming_the_key(tmp_path, monkeypatch):
    # a task that declares no metric names (a third-party one): a misspelt metric on x passes validation ...
    monkeypatch.delattr(Burn, "metrics")
    bad = CFG.replace('x = "elements"', 'x = "elementz"')
    cfg = load_config(text=bad, smoke=True)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"(?s)plots\[0\]\.x: 'elementz' is not a metric in the results of task "
                                          r"'synthetic\.burn'; its numeric metrics: burn_s, checksum, elements"
                                          r".*rerun `vcompute run CONFIG --out "):
        run_experiment(cfg, out=out)
    # ... the runs are kept and the other plot was still drawn
    assert len(read_results(out)) == 8 and (out / "plots" / "by-size.png").exists()
    assert not (out / "plots" / "frontier.png").exists()
    # a bad y is named the same way
    cfg_y = load_config(text=CFG.replace('y = "checksum"', 'y = "checksun"', 1), smoke=True)
    with pytest.raises(ConfigError, match=r"plots\[0\]\.y: 'checksun' is not a metric"):
        draw_plots(cfg_y, read_results(out), out)
    # the fix: the corrected config, the same run directory; nothing reruns
    res = run_experiment(load_config(text=CFG, smoke=True), out=out)
    assert res.skipped == 8 and (out / "plots" / "frontier.png").exists()
