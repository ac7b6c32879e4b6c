"""The calibration table: shipped, loadable, and reproduced by measuring real mode."""

from __future__ import annotations

import math

import pytest

from vcompute.market.calibration import CalibrationTable, calibrate, default_table, wilson_interval


def test_shipped_table_has_the_matmul_schemes():
    t = default_table()
    for s in ("freivalds", "spotcheck", "replication"):
        assert t.has(s)
        assert t.detect(s, "honest") == 0.0  # completeness: no honest claim rejected
    assert t.detect("freivalds", "random_output") == 1.0
    assert 0.05 < t.detect("spotcheck", "random_output") < 0.2  # p = 0.1 re-execution
    assert t.schemes["replication"]["replicas"] == 3
    # proof-of-learning, measured on real training runs with real spoofs
    assert t.detect("pol", "honest") == 0.0 and t.detect("pol", "random_output") == 1.0


def test_verify_fraction_interpolates_log_log():
    t = CalibrationTable(schemes={"x": {"detect": {}, "verify_fraction": {"10": 1.0, "100": 0.1}}})
    assert t.verify_fraction("x", 10) == pytest.approx(1.0)
    assert t.verify_fraction("x", 100) == pytest.approx(0.1)
    assert t.verify_fraction("x", math.sqrt(1000)) == pytest.approx(math.sqrt(0.1))
    assert t.verify_fraction("x", 1000) == pytest.approx(0.01)  # extrapolated along the slope


def test_unknown_scheme_says_how_to_calibrate():
    with pytest.raises(KeyError, match="python -m vcompute.market.calibration"):
        default_table().detect("zk-snark", "honest")


def test_calibrating_again_reproduces_the_shipped_detection_rates():
    fresh = calibrate(["freivalds", "spotcheck"], sizes=(16, 32, 64), trials=60, fraction_trials=5, seed=123)
    shipped = default_table()
    for s in ("freivalds", "spotcheck"):
        for cheat, (hits, n) in fresh.schemes[s]["detect"].items():
            lo, hi = wilson_interval(hits, n, z=3.29)
            assert lo <= shipped.detect(s, cheat) <= hi, (s, cheat)


def test_table_round_trips_through_json(tmp_path):
    t = default_table()
    path = tmp_path / "t.json"
    path.write_text(t.to_json())
    assert CalibrationTable.load(path).schemes == t.schemes


def test_wilson_interval_covers():
    lo, hi = wilson_interval(0, 400)
    assert lo == 0.0 and hi < 0.02


def test_a_row_is_read_for_its_kind_whatever_alias_wrote_or_asks_for_it():
    row = {"detect": {"honest": [0, 4], "random_output": [1, 4], "skip_k": [2, 4], "low_precision": [3, 4]},
           "verify_fraction": {"tiny": 0.5}, "replicas": 1, "params": {}}
    t = CalibrationTable(schemes=dict(default_table().schemes), kinds={"training": {"pol": row}})
    assert t.has_kind("train", "pol") and t.has_kind("training", "pol")
    assert t.detect("pol", "skip_k", kind="train") == 0.5 == t.detect("pol", "skip_k", kind="training")
    with pytest.raises(ValueError, match="both"):
        CalibrationTable(kinds={"train": {"pol": row}, "training": {"pol": row}})


def test_the_command_line_writes_a_kind_row_under_the_kinds_name(tmp_path):
    from vcompute.market.calibration import main

    out = tmp_path / "table.json"
    out.write_text(default_table().to_json())
    main(["--kinds", "inference:model", "--trials", "1", "--out", str(out)])
    kinds = CalibrationTable.load(out).kinds
    assert "forward" in kinds and "model" in kinds["forward"] and "inference" not in kinds


def test_a_replicated_schemes_detection_counts_the_cheating_claim_blamed():
    from vcompute.market.calibration import calibrate_kind

    fresh = calibrate(["replication"], sizes=(16,), trials=3, fraction_trials=1, seed=1)
    row = calibrate_kind("matmul", "replication", sizes=[16], trials=3, fraction_trials=1, seed=1)
    for r in (fresh.schemes["replication"], row):
        assert r["replicas"] == 3
        assert r["detect"]["honest"] == [0, 3] and r["detect"]["random_output"] == [3, 3], r["detect"]
    assert default_table().detect("replication", "random_output") == 1.0
