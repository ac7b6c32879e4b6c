"""The market.run task through the experiment runner: registered, reproducible results.csv."""

from __future__ import annotations

from pathlib import Path

from vcompute.experiment.config import load_config
from vcompute.experiment.runner import run_experiment
from vcompute.experiment.tasks import TASKS
from vcompute.experiment.tasks.market import MarketRun
from vcompute.market.config import MarketParams

ROOT = Path(__file__).resolve().parents[2]


def test_task_is_registered_with_nested_params():
    assert TASKS.get("market.run") is MarketRun
    assert MarketRun.Params is MarketParams


def test_task_reports_theory_next_to_measurement():
    out = MarketRun().run(MarketParams(jobs=50, consumers={"audit_p": 0.25}), seed=0)
    assert out["theory_caught_by_16"] == 1 - 0.75 ** 16
    assert out["ledger_conserved"] == 1


def test_same_seed_gives_the_same_results_csv(tmp_path):
    cfg = load_config(ROOT / "experiments" / "quickstart.toml", smoke=True,
                      overrides=["experiment.executor='serial'", "params.jobs=100"])  # real mode
    texts = []
    for i in range(2):
        run_experiment(cfg, out=tmp_path / f"r{i}", smoke=True)
        texts.append((tmp_path / f"r{i}" / "results.csv").read_text())
    assert texts[0] == texts[1]
