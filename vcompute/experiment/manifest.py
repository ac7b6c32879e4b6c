"""The reproducibility manifest written beside every result."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["build_manifest", "git_state", "package_versions"]

_PACKAGES = ("vcompute", "numpy", "torch", "jax", "jaxlib", "optax", "pydantic", "simpy", "ray",
             "web3", "py-evm", "eth-tester", "vyper", "pycryptodome", "py-ecc", "scikit-learn",
             "matplotlib", "array-api-compat")


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages results can depend on (None if absent)."""
    out: dict[str, str | None] = {}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def git_state(path: Path | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the git checkout holding ``path`` (or of vcompute's source)."""
    where = Path(path or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def build_manifest(*, config: dict[str, Any], config_path: str | None, overrides: list[str],
                   smoke: bool, seeds: list[int], n_runs: int, started: str) -> dict[str, Any]:
    """The manifest of one experiment invocation (``finished`` is filled at the end)."""
    return {
        "vcompute_version": _version(),
        "experiment": config["experiment"]["name"],
        "task": config["experiment"]["task"],
        "config_path": config_path,
        "config": config,
        "overrides": list(overrides),
        "smoke": smoke,
        "seeds": seeds,
        "runs": n_runs,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "git": git_state(),
        "platform": {
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "packages": package_versions(),
        "started": started,
        "finished": None,
    }


def _version() -> str:
    from vcompute import __version__

    return __version__
