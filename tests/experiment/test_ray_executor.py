"""The Ray executor on a real local Ray cluster (one per module: Ray takes seconds to start)."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from vcompute.experiment.config import RunSpec, expand_runs, load_config
from vcompute.experiment.executors import EXECUTORS, create_executor
from vcompute.experiment.runner import run_experiment

ray = pytest.importorskip("ray")
# With `pytest -n 2 --dist loadgroup` every test here shares one worker, hence one Ray cluster.
pytestmark = [
    pytest.mark.xdist_group("ray-cluster"),
    # Starting Ray spawns processes with subprocess (fork then exec: the child runs no Python,
    # so JAX's threads cannot deadlock it); JAX's warning about any fork does not apply.
    pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning"),
]

from vcompute.experiment.ray_executor import RayExecutor  # noqa: E402

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "freivalds-quickstart.toml"
# Wall-clock metrics differ from one execution to the next; everything else must not.
TIMING = {"compute_s", "verify_s", "verify_over_compute", "burn_s"}

BURN = """
[experiment]
name = "ray-burn"
task = "synthetic.burn"
seeds = 3
executor = "ray"
workers = 2
[params]
iters = 4
fail_seed = 1
[grid]
size = [1000, 3000]
"""


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU local Ray cluster shared by the module; yields its address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def test_ray_is_registered_lazily():
    assert "ray" in EXECUTORS.names()
    assert isinstance(create_executor("ray", workers=3), RayExecutor)


@pytest.mark.parametrize("kw", [{"workers": 0}, {"in_flight": 0}, {"num_cpus_per_run": 0}])
def test_bad_arguments_are_rejected(kw):
    with pytest.raises(ValueError):
        RayExecutor(**kw)


def test_quickstart_smoke_on_ray_equals_local(cluster, tmp_path):
    on_ray = run_experiment(load_config(QUICKSTART, smoke=True, overrides=["experiment.executor='ray'"]),
                            out=tmp_path / "ray")
    local = run_experiment(load_config(QUICKSTART, smoke=True, overrides=["experiment.executor='local'"]),
                           out=tmp_path / "local")
    assert on_ray.failed == 0 and on_ray.ok == on_ray.total == local.ok
    assert rows(tmp_path / "ray") == rows(tmp_path / "local")
    assert ray.is_initialized(), "a Ray session the executor did not start must stay up"


def test_failed_runs_are_recorded_and_match_serial(cluster, tmp_path):
    on_ray = run_experiment(load_config(text=BURN), out=tmp_path / "ray")
    serial = run_experiment(load_config(text=BURN, overrides=["experiment.executor='serial'"]),
                            out=tmp_path / "serial")
    assert (on_ray.ok, on_ray.failed) == (serial.ok, serial.failed) == (4, 2)
    got = rows(tmp_path / "ray")
    assert got == rows(tmp_path / "serial")
    failed = [r for r in got if r["status"] == "error"]
    assert {r["seed"] for r in failed} == {"1"}
    assert all("synthetic failure" in r["error"] for r in failed)


def test_a_crashed_worker_is_an_error_record_and_the_sweep_goes_on(cluster):
    cfg = load_config(text=BURN, overrides=["params.fail_seed=-1", "params.exit_seed=2"])
    runs = expand_runs(cfg)
    recs = dict((r.key, rec) for r, rec in RayExecutor(workers=2).map(runs))
    assert set(recs) == {r.key for r in runs}
    crashed = [recs[r.key] for r in runs if r.seed == 2]
    assert crashed and all(rec["status"] == "error" and "ray task failed" in rec["error"] for rec in crashed)
    assert all(recs[r.key]["status"] == "ok" for r in runs if r.seed != 2)


def test_in_flight_window_bounds_submissions(cluster):
    runs = [RunSpec(key=f"k{i}", task="synthetic.burn", params={"size": 10, "iters": 1}, seed=i)
            for i in range(5)]
    ex = RayExecutor(in_flight=1)
    got = [(r.key, rec["status"]) for r, rec in ex.map(runs)]
    # One run in flight at a time: completion order is submission order.
    assert got == [(f"k{i}", "ok") for i in range(5)]


def test_killed_driver_joining_a_cluster_resumes_to_same_results(cluster, tmp_path):
    """A sweep joined to a running cluster by --address, SIGKILLed mid-way, then resumed."""
    from test_resume_kill import kill_when_logged, start_sweep  # same directory, on sys.path

    cfg_path = tmp_path / "burn.toml"
    cfg_path.write_text(BURN.replace("fail_seed = 1", "sleep_s = 0.3").replace("seeds = 3", "seeds = 6"))
    out = tmp_path / "killed"
    logged = kill_when_logged(start_sweep(cfg_path, out, "--address", cluster), out, n=2)
    assert logged < 12
    rerun = subprocess.run([sys.executable, "-m", "vcompute.cli", "run", str(cfg_path), "--out", str(out),
                            "--quiet", "--address", cluster], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stdout
    run_experiment(load_config(cfg_path, overrides=["experiment.executor='serial'",
                                                      "params.sleep_s=0.0"]), out=tmp_path / "fresh")
    drop = {"sleep_s", "key"}  # the fresh run skips the idling, so its params (and keys) differ there
    assert ([{k: v for k, v in r.items() if k not in drop} for r in rows(out)]
            == [{k: v for k, v in r.items() if k not in drop} for r in rows(tmp_path / "fresh")])
    assert ray.is_initialized()
