"""Every config in experiments/ validates, says how to run it, and its smoke variant runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcompute.experiment.config import load_config
from vcompute.experiment.runner import run_experiment

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "experiments").glob("*.toml"))


def test_there_are_configs():
    assert any(p.name == "quickstart.toml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_header_and_validation(path):
    text = path.read_text()
    header = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert any("vcompute run experiments/" in ln for ln in header), "header must give the exact command"
    assert len(header) >= 2, "header must say what the config reproduces"
    load_config(path)
    load_config(path, smoke=True)
    assert "smoke" in text, "every experiment needs a [smoke] variant for the tests"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_smoke_variant_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in a config (ledger files) land here, not in the checkout
    cfg = load_config(path, smoke=True, overrides=["experiment.executor='serial'"])
    res = run_experiment(cfg, out=tmp_path / "run", smoke=True)
    assert res.failed == 0, [r.get("error") for r in res.rows if r.get("status") != "ok"]
    assert res.ok == res.total
