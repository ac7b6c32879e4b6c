"""Every cited number in ``proofs/claims.toml`` is reproduced by its shipped config.

Each claim names a config; its smoke variant runs (once per config) and the
claim's metric, averaged over the rows its ``where`` selects, must lie in the
claim's ``smoke_band``. A result that leaves its band fails here, so a change
that breaks a published number cannot land unnoticed.
"""

from __future__ import annotations

import math
import statistics
import tomllib
from functools import cache
from pathlib import Path

import pytest

from vcompute.experiment.config import load_config
from vcompute.experiment.runner import run_experiment

ROOT = Path(__file__).resolve().parents[2]
CLAIMS = tomllib.loads((ROOT / "proofs" / "claims.toml").read_text())["claim"]
FIELDS = {"id", "claim", "source", "config", "metric", "where", "smoke_band", "full", "anchor"}


def test_claims_are_well_formed():
    ids = [c["id"] for c in CLAIMS]
    assert len(ids) == len(set(ids)), "claim ids must be unique"
    for c in CLAIMS:
        assert set(c) == FIELDS, (c["id"], set(c) ^ FIELDS)
        assert (ROOT / c["config"]).is_file(), c["config"]
        assert (ROOT / c["source"].split(" ")[0]).is_file(), c["source"]
        lo, hi = c["smoke_band"]
        assert lo <= hi, c["id"]
        cfg = load_config(ROOT / c["config"], smoke=True)
        from vcompute.experiment.tasks import TASKS

        declared = getattr(TASKS.get(cfg.experiment.task), "metrics", None)
        assert declared is None or c["metric"] in declared, (c["id"], c["metric"])


@cache
def _smoke_rows(config: str, tmp: str) -> tuple[dict, ...]:
    cfg = load_config(ROOT / config, smoke=True, overrides=["experiment.executor='serial'"])
    res = run_experiment(cfg, out=Path(tmp) / Path(config).stem, smoke=True)
    assert res.failed == 0, [r.get("error") for r in res.rows if r.get("status") != "ok"]
    return tuple(res.rows)


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("claims"))


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c["id"])
def test_claim_holds_at_its_smoke_size(claim, smoke_dir, monkeypatch):
    monkeypatch.chdir(smoke_dir)
    rows = [r for r in _smoke_rows(claim["config"], smoke_dir) if r.get("status") == "ok"
            and all(r.get(k) == v for k, v in claim["where"].items())]
    assert rows, f"{claim['id']}: no smoke row matches where = {claim['where']}"
    vals = [float(r[claim["metric"]]) for r in rows if not math.isnan(float(r[claim["metric"]]))]
    assert vals, f"{claim['id']}: {claim['metric']} is nan in every selected row"
    mean = statistics.fmean(vals)
    lo, hi = claim["smoke_band"]
    assert lo - 1e-12 <= mean <= hi + 1e-12, (
        f"{claim['id']}: {claim['metric']} = {mean:.4g} left its band [{lo}, {hi}] "
        f"({claim['config']} --smoke); the claim in {claim['source']} no longer holds")
