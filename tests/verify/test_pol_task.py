"""The PoL experiment tasks and the calibration command, on tiny jobs."""

from __future__ import annotations

import argparse

import pytest

from vcompute.experiment.tasks import TASKS


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_detection_task_reports_each_setting():
    task = TASKS.get("pol.detection")()
    p = task.Params(framework="jax", dataset="synthetic", steps=8, adversary="interpolate", trials=2,
                    random_segments=1, settings=["ours", "reference"])
    out = task.run(p, seed=0)
    assert out["detected_ours"] == 1.0 and out["cheated"] == 1 and out["attack_cost"] == 0.0
    assert 0 < out["reexecuted_fraction_ours"] <= 1 and out["bytes_fraction_reference"] >= 1.0


def test_calibration_command_prints_delta(capsys):
    from vcompute.verify.pol.cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["pol", "calibrate", "--frameworks", "jax", "--seeds", "1", "--steps", "4",
                              "--segments", "1"])
    assert args.func(args) == 0
    assert "chosen delta" in capsys.readouterr().out
