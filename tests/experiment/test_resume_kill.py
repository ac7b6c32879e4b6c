"""A sweep killed with SIGKILL mid-way resumes to the same results, and never leaves a corrupt results.csv."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vcompute.experiment.config import load_config
from vcompute.experiment.runner import run_experiment

# Each run idles 0.2 s so the sweep is reliably still going when it is killed.
CFG = """
[experiment]
name = "kill-test"
task = "synthetic.burn"
seeds = 8
executor = "local"
workers = 2
[params]
iters = 3
sleep_s = 0.2
[grid]
size = [1000, 5000]
"""

TIMING = {"burn_s"}


def deterministic_rows(run_dir: Path) -> list[dict[str, str]]:
    """Rows of results.csv without the timing columns."""
    with open(run_dir / "results.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def start_sweep(cfg_path: Path, out: Path, *extra: str) -> subprocess.Popen:
    """``vcompute run`` in its own process group (so a kill reaches its pool workers too)."""
    return subprocess.Popen([sys.executable, "-m", "vcompute.cli", "run", str(cfg_path), "--out", str(out),
                             "--quiet", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def kill_when_logged(proc: subprocess.Popen, out: Path, n: int, timeout: float = 60.0) -> int:
    """SIGKILL ``proc``'s group once ``n`` runs are in the log; return how many were logged."""
    log = out / "runs.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.read_bytes().count(b"\n") if log.exists() else 0
        if lines >= n:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return lines
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (rc {proc.returncode}) before it could be killed: "
                        f"{proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"fewer than {n} runs logged after {timeout} s")


def test_sigkilled_sweep_resumes_to_the_uninterrupted_results(tmp_path):
    cfg_path = tmp_path / "kill.toml"
    cfg_path.write_text(CFG)
    out = tmp_path / "killed"
    logged = kill_when_logged(start_sweep(cfg_path, out), out, n=4)
    assert logged < 16, "the sweep finished before the kill; make the runs slower"

    # Whatever the moment of the kill, results.csv (if written yet) is a whole CSV.
    if (out / "results.csv").exists():
        partial = deterministic_rows(out)
        assert all(r["status"] == "ok" and r["checksum"] for r in partial)
        assert len(partial) <= logged

    rerun = subprocess.run([sys.executable, "-m", "vcompute.cli", "run", str(cfg_path), "--out", str(out),
                            "--quiet"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stdout

    fresh = run_experiment(load_config(cfg_path, overrides=["experiment.executor='serial'"]),
                           out=tmp_path / "fresh")
    assert fresh.ok == 16
    assert deterministic_rows(out) == deterministic_rows(tmp_path / "fresh")
    # The log holds every run exactly once as a success: no run was done twice after its success.
    recs = []
    for line in (out / "runs.jsonl").read_text().splitlines():
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:  # the line torn by the kill
            pass
    ok_keys = [r["key"] for r in recs if r["status"] == "ok"]
    assert len(set(ok_keys)) == 16 and len(ok_keys) == 16
