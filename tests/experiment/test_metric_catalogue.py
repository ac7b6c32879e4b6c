"""Every metric a task declares has a unit and a meaning; every registry is listed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vcompute
from vcompute.cli import REGISTRIES, main
from vcompute.experiment.metrics import MetricInfo, metric_info, task_metric_infos
from vcompute.experiment.tasks import TASKS


@pytest.mark.parametrize("task", TASKS.names())
def test_every_declared_metric_has_a_unit_and_meaning(task):
    infos = task_metric_infos(task)
    assert infos, f"{task} declares no metrics"
    missing = [m for m, i in infos.items() if i is None]
    assert not missing, f"{task}: no unit/meaning for {missing}; add them to vcompute/experiment/metrics.py"
    for m, info in infos.items():
        assert info.unit and info.meaning, m


def test_a_task_can_declare_its_own_units():
    class Own:
        metric_info = {"speed": MetricInfo("m/s", "how fast")}

    assert metric_info("speed", "third.party", Own).unit == "m/s"
    assert metric_info("speed", "third.party") is None


def test_list_metrics_prints_every_metric_with_its_unit(capsys):
    assert main(["list", "metrics"]) == 0
    out = capsys.readouterr().out
    assert "market.run:" in out and "cost_per_correct" in out and "[USD]" in out
    for task in TASKS.names():
        for m in task_metric_infos(task):
            assert f"  {m} " in out


def test_vcompute_list_shows_every_registry_in_the_package(capsys):
    found = set()
    root = Path(vcompute.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Call) \
                    and getattr(node.value.func, "id", None) == "Registry":
                target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
                mod = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
                found.add((mod, target.id))
    listed = set(REGISTRIES.values())
    assert found - listed == set(), f"registries missing from `vcompute list`: {found - listed}"
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in REGISTRIES:
        assert out.count(f"{name}: ") >= 1
