"""Every task declares the metrics its runs return, and configs naming others fail before running.

Each registered task is run on the cheapest valid configuration (the
``[smoke]`` variant of an experiment config that uses it, or tiny explicit
parameters); the metric names it returns must all be in its ``metrics``
declaration. ``load_config`` then rejects a misspelt metric in
``[report] metrics``, a plot's ``y`` or a plot's metric ``x`` with the key
path and the task's metrics.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from vcompute.experiment.config import ConfigError, expand_runs, load_config
from vcompute.experiment.tasks import TASKS

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"

# task -> cheap configurations: ("config.toml", [overrides]) runs every run of the
# config's smoke variant; a dict runs those explicit parameters with seed 0.
CASES: dict[str, list[tuple[str, list[str]] | dict]] = {
    # int8 x nan_inject is not applicable: covers the short "not_applicable" result
    "freivalds.detection": [("freivalds-detection.toml", [])],
    "freivalds.model": [("freivalds-model.toml", [])],
    "pol.detection": [
        ("pol-attacks.toml", ['grid.adversary=["interpolate"]']),  # four settings: suffixed names
        # one setting: plain names too ("detected" from "detected_topq_only", not "detected_topq")
        {"dataset": "synthetic", "steps": 4, "trials": 1, "random_segments": 1, "settings": ["topq_only"]},
    ],
    "pol.calibration": [("pol-calibration.toml", [])],
    "synthetic.burn": [{"size": 1000, "iters": 1}],
    "inference.calibration": [("inference-calibration.toml", [])],
    "inference.detection": [("inference-detection.toml", [])],
    "inference.cost": [("inference-cost.toml", [])],
    "inference.glue_cost": [("inference-glue.toml", [])],
    "inference.statistics": [("inference-statistics.toml", [])],
    "inference.training": [{"train_steps": 20}],
    "market.run": [
        ("quickstart.toml", []),
        # an adaptive policy adds its own metrics
        ("market-adaptive.toml", ["params.jobs=300", 'grid.consumers.adaptive_policy=["resist_backtrack"]']),
    ],
    # one cell of the smoke grid, and a proof-of-learning cell on a non-training kind (not applicable)
    "market.hybrid": [("hybrid-breakeven.toml", ['grid.kind=["matmul"]', 'grid.consumers.verifier=["freivalds"]',
                                                 'grid.adversary.fraction=[0.3]', "params.jobs=300"]),
                      {"jobs": 50, "kind": "matmul", "consumers": {"verifier": "pol"}}],
    "replication.voting": [("replication-voting.toml", [])],
    "replication.collusion": [("replication-collusion.toml", [])],
    "replication.adaptive": [("adaptive-replication.toml", [])],
    "replication.credibility": [("adaptive-credibility.toml", [])],
    "spotcheck.identity": [("spotcheck-identity.toml", [])],
    "dispute.games": [("dispute-games.toml", []), ("dispute-escrow.toml", [])],
    "dispute.operator": [("dispute-operator.toml", [])],
}


def test_every_builtin_task_has_a_case():
    builtin = {n for n in TASKS.names() if TASKS.get(n).__module__.startswith("vcompute.experiment.tasks.")}
    assert builtin <= set(CASES), f"add a cheap case for {sorted(builtin - set(CASES))}"
    assert set(CASES) <= builtin


def _runs(task: str, case: tuple[str, list[str]] | dict) -> list[tuple[dict, int]]:
    if isinstance(case, dict):
        return [(case, 0)]
    cfg = load_config(EXPERIMENTS / case[0], smoke=True, overrides=case[1])
    assert cfg.experiment.task == task
    return [(r.params, r.seed) for r in expand_runs(cfg)]


@pytest.mark.parametrize("task", sorted(CASES))
def test_returned_metrics_are_declared(task):
    cls = TASKS.get(task)
    declared = cls.metrics
    assert isinstance(declared, tuple) and declared and all(isinstance(m, str) for m in declared)
    assert len(set(declared)) == len(declared), f"duplicates: {sorted({m for m in declared if declared.count(m) > 1})}"
    for case in CASES[task]:
        for params, seed in _runs(task, case):
            out = cls().run(cls.Params.model_validate(params), seed)
            assert out, params
            undeclared = sorted(set(out) - set(declared))
            assert not undeclared, f"{task} with {params} returned undeclared metrics {undeclared}"


def test_pol_single_setting_gets_whole_plain_names():
    cls = TASKS.get("pol.detection")
    params = cls.Params.model_validate(CASES["pol.detection"][1])
    out = cls().run(params, 0)
    assert {"detected", "reexecuted_fraction", "bytes_fraction", "verify_s"} <= set(out)
    assert out["detected"] == out["detected_topq_only"]
    assert "detected_topq" not in out


def test_market_declares_every_registered_strategy():
    from vcompute.market.strategies import STRATEGIES

    declared = TASKS.get("market.run").metrics
    for b in STRATEGIES.names():
        assert f"profit_{b}" in declared and f"cheat_rate_{b}" in declared


CFG = textwrap.dedent("""
    [experiment]
    name = "metrics-test"
    task = "synthetic.burn"
    seeds = 1
    executor = "serial"
    [grid]
    size = [100, 200]
    [report]
    metrics = ["checksum", "burn_s"]
    [[plots]]
    name = "by-size"
    x = "size"
    y = ["checksum", "elements"]
    [[plots]]
    name = "frontier"
    x = "elements"
    x_metric = true
    y = "burn_s"
""")

LISTED = re.escape("its metrics: checksum, elements, burn_s")


def test_the_base_config_is_valid():
    load_config(text=CFG)


@pytest.mark.parametrize("old, new, key", [
    ('metrics = ["checksum", "burn_s"]', 'metrics = ["checksum", "burn_z"]', r"report\.metrics\[1\]"),
    ('y = ["checksum", "elements"]', 'y = ["checksum", "element"]', r"plots\[0\]\.y\[1\]"),
    ('y = "burn_s"', 'y = "burns"', r"plots\[1\]\.y"),
    ('x = "elements"', 'x = "elemnts"', r"plots\[1\]\.x"),
])
def test_unknown_metric_fails_at_load_with_key_path_and_metrics(old, new, key):
    text = CFG.replace(old, new, 1)
    assert text != CFG
    bad = new.split('"')[-2]
    with pytest.raises(ConfigError, match=rf"{key}: metric '{bad}' is not produced by task "
                                          rf"'synthetic\.burn'; {LISTED}"):
        load_config(text=text)


def test_every_experiment_config_names_declared_metrics():
    # load_config checks them (each task declares metrics); this fails if one does not
    for path in sorted(EXPERIMENTS.glob("*.toml")):
        cfg = load_config(path)
        declared = set(TASKS.get(cfg.experiment.task).metrics)
        params = set(expand_runs(cfg)[0].params)
        named = set(cfg.report.metrics) | {y for p in cfg.plots for y in p.ys()}
        named |= {p.x for p in cfg.plots if p.x_metric}
        assert named - params <= declared, (path.name, sorted(named - params - declared))
