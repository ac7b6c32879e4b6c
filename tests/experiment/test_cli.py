"""The command line: exit codes, messages, help, list, report."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vcompute.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_help_everywhere(capsys):
    for argv in (["--help"], ["run", "--help"], ["report", "--help"], ["list", "--help"], ["validate", "--help"],
                 ["bench", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    assert "--set" in capsys.readouterr().out


def test_list_shows_registries(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "verifiers:" in out and "freivalds" in out
    assert "behaviours:" in out and "skip_k" in out
    assert "tasks:" in out and "freivalds.detection" in out
    assert "executors:" in out and "local" in out


def test_invalid_config_exit_2_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[experiment]\nname = "x"\ntask = "freivalds.detection"\nseeds = 1\n[params]\nrounds = -1\n')
    p = subprocess.run([sys.executable, "-m", "vcompute.cli", "run", str(bad)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert "params.rounds" in p.stderr and "greater than or equal to 1" in p.stderr
    assert "Traceback" not in p.stderr


def test_run_smoke_then_report(tmp_path, capsys):
    out = tmp_path / "qs"
    rc = main(["run", str(ROOT / "experiments" / "freivalds-quickstart.toml"), "--smoke", "--out", str(out),
               "--executor", "serial", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "behaviour" in text and "detected" in text and str(out) in text
    assert (out / "results.csv").exists() and (out / "plots" / "detection.png").exists()
    (out / "plots" / "detection.png").unlink()
    (out / "results.csv").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "results.csv").exists() and (out / "plots" / "detection.png").exists()


def test_report_on_non_run_dir(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_set_override_and_validate(capsys):
    cfg = str(ROOT / "experiments" / "freivalds-quickstart.toml")
    assert main(["validate", cfg, "--set", "grid.n=[32]", "--set", "experiment.seeds=1"]) == 0
    assert "runs" in capsys.readouterr().out
    assert main(["validate", cfg, "--set", "params.rounds=zero"]) == 2


@pytest.mark.skipif(shutil.which("vcompute") is None and not (Path(sys.executable).parent / "vcompute").exists(),
                    reason="console script not installed")
def test_console_script_installed():
    exe = shutil.which("vcompute") or str(Path(sys.executable).parent / "vcompute")
    p = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "vcompute" in p.stdout
