"""The runner: run directory contents, manifest, resume, failures recorded."""

from __future__ import annotations

import csv
import json

from vcompute.experiment.config import load_config
from vcompute.experiment.results import RunLog
from vcompute.experiment.runner import run_experiment

CFG = """
[experiment]
name = "runner-test"
task = "freivalds.detection"
seeds = 2
executor = "serial"
[params]
trials = 1
[grid]
n = [8, 16]
behaviour = ["honest", "random_output"]
[report]
group_by = ["behaviour"]
metrics = ["detected"]
[[plots]]
name = "det"
x = "n"
y = "detected"
hue = "behaviour"
"""


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_run_directory_contents(tmp_path):
    cfg = load_config(text=CFG)
    res = run_experiment(cfg, out=tmp_path / "run", config_path="inline.toml", overrides=["x=1"])
    assert (res.total, res.ok, res.failed, res.skipped) == (8, 8, 0, 0)
    rows = _rows(tmp_path / "run" / "results.csv")
    assert len(rows) == 8
    assert {"key", "seed", "status", "n", "behaviour", "rounds", "detected", "verify_s"} <= set(rows[0])
    by_b = {}
    for r in rows:
        by_b.setdefault(r["behaviour"], set()).add(float(r["detected"]))
    assert by_b == {"honest": {0.0}, "random_output": {1.0}}
    assert (tmp_path / "run" / "plots" / "det.png").stat().st_size > 1000
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["config"]["grid"]["n"] == [8, 16]
    assert m["seeds"] == [0, 1] and m["runs"] == 8 and m["task"] == "freivalds.detection"
    assert m["packages"]["numpy"] and m["platform"]["python"]
    assert "commit" in m["git"] and m["started"] and m["finished"]
    assert m["overrides"] == ["x=1"] and m["outcome"] == {"ok": 8, "failed": 0, "skipped": 0, "total": 8}


def test_rerun_same_out_skips_done_runs_and_is_reproducible(tmp_path):
    cfg = load_config(text=CFG)
    run_experiment(cfg, out=tmp_path / "r")
    first = _rows(tmp_path / "r" / "results.csv")
    res = run_experiment(cfg, out=tmp_path / "r")
    assert res.skipped == 8 and res.ok == 8
    second = _rows(tmp_path / "r" / "results.csv")
    assert first == second
    # a fresh directory reproduces the deterministic columns exactly
    run_experiment(cfg, out=tmp_path / "s")
    third = _rows(tmp_path / "s" / "results.csv")
    det = lambda rows: [(r["key"], r["seed"], r["n"], r["behaviour"], r["detected"]) for r in rows]  # noqa: E731
    assert det(first) == det(third)


def test_resume_after_partial_log_with_torn_line(tmp_path):
    cfg = load_config(text=CFG)
    run_experiment(cfg, out=tmp_path / "r")
    log = (tmp_path / "r" / "runs.jsonl").read_bytes().splitlines(keepends=True)
    # keep 3 complete records and half of the 4th, as a SIGKILL mid-write would
    (tmp_path / "r" / "runs.jsonl").write_bytes(b"".join(log[:3]) + log[3][:20])
    assert len(RunLog(tmp_path / "r").done_keys()) == 3
    res = run_experiment(cfg, out=tmp_path / "r")
    assert res.skipped == 3 and res.ok == 8
    assert len(_rows(tmp_path / "r" / "results.csv")) == 8


def test_failed_run_is_recorded_and_sweep_goes_on(tmp_path):
    cfg = load_config(text="""
[experiment]
name = "fail-test"
task = "synthetic.burn"
seeds = 4
executor = "serial"
[params]
size = 100
fail_seed = 2
[grid]
iters = [1, 2]
""")
    res = run_experiment(cfg, out=tmp_path / "f")
    assert res.failed == 2 and res.ok == 6
    rows = _rows(tmp_path / "f" / "results.csv")
    errors = [r for r in rows if r["status"] == "error"]
    assert len(errors) == 2 and all(r["seed"] == "2" and "synthetic failure" in r["error"] for r in errors)
    # rerunning retries only the failed runs
    res = run_experiment(cfg, out=tmp_path / "f")
    assert res.skipped == 6 and res.failed == 2


def test_another_config_in_the_same_out_is_refused_and_nothing_mixes(tmp_path):
    import pytest

    from vcompute.experiment.config import ConfigError

    run_experiment(load_config(text=CFG), out=tmp_path / "r")
    before = (tmp_path / "r" / "results.csv").read_text()
    other = load_config(text=CFG, overrides=["params.rounds=3"])
    with pytest.raises(ConfigError, match=r"another config \(params.rounds: unset there, 3 here\).*--out"):
        run_experiment(other, out=tmp_path / "r")
    grid = load_config(text=CFG, overrides=["grid.n=[8]"])
    with pytest.raises(ConfigError, match=r"grid.n: \[8, 16\] there, \[8\] here"):
        run_experiment(grid, out=tmp_path / "r")
    assert (tmp_path / "r" / "results.csv").read_text() == before
    assert len(RunLog(tmp_path / "r").records()) == 8


def test_same_experiment_with_other_seeds_plots_or_executor_resumes(tmp_path):
    run_experiment(load_config(text=CFG), out=tmp_path / "r")
    more = load_config(text=CFG, overrides=["experiment.seeds=3", "experiment.executor='local'",
                                            "report.metrics=['detected', 'verify_s']"])
    res = run_experiment(more, out=tmp_path / "r")
    assert (res.skipped, res.total) == (8, 12)
    fewer = load_config(text=CFG, overrides=["experiment.seeds=1"])
    res = run_experiment(fewer, out=tmp_path / "r")
    # the table shows only the runs this config expands to, never the others' seeds
    assert len(res.rows) == 4 and {r["seed"] for r in res.rows} == {0}
    assert len(RunLog(tmp_path / "r").records()) == 12
