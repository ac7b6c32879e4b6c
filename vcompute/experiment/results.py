"""A run directory: the append-only run log, ``results.csv`` and the table.

``runs.jsonl`` is the source of truth: one JSON line per finished run,
appended and fsync'ed, so a killed sweep loses at most the runs in flight
and a torn last line is ignored on reading. ``results.csv`` is rewritten
from it atomically (temporary file + rename), so it is never half-written.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vcompute.experiment.config import flatten_params

__all__ = ["RunLog", "write_results_csv", "read_results", "aggregate", "atomic_write_text"]

RUNS_FILE = "runs.jsonl"
RESULTS_FILE = "results.csv"
MANIFEST_FILE = "manifest.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunLog:
    """The append-only log of finished runs in a run directory.

    Args:
        run_dir: the run directory (created if missing).
    """

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / RUNS_FILE

    def records(self) -> list[dict[str, Any]]:
        """All complete records, last one per run key (a retried failure replaces the failure)."""
        if not self.path.exists():
            return []
        by_key: dict[str, dict[str, Any]] = {}
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue  # a torn line from a killed writer
                if isinstance(rec, dict) and "key" in rec:
                    by_key[rec["key"]] = rec
        return list(by_key.values())

    def done_keys(self) -> set[str]:
        """Keys of runs that finished successfully."""
        return {r["key"] for r in self.records() if r.get("status") == "ok"}

    def append(self, rec: dict[str, Any]) -> None:
        """Append one record durably (a newline first if the file ends torn)."""
        line = json.dumps(rec, sort_keys=True, default=_json_default, allow_nan=True)
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def rows_from_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per run: key, seed, status, every parameter, every metric, error."""
    rows = []
    for r in records:
        row: dict[str, Any] = {"key": r["key"], "seed": r["seed"], "status": r["status"]}
        row.update(flatten_params(r.get("params", {})))
        row.update(r.get("metrics") or {})
        # Wall-clock run time stays in runs.jsonl: results.csv of a seeded
        # deterministic task is then identical from one invocation to the next.
        row["error"] = r.get("error", "")
        rows.append(row)
    return rows


def write_results_csv(run_dir: Path, records: Sequence[dict[str, Any]],
                      order: dict[str, int] | None = None) -> Path:
    """Rewrite ``results.csv`` from ``records`` atomically; returns its path.

    Rows follow ``order`` (run key -> position in the config's expansion),
    unknown keys last, so the file is identical however runs were scheduled.
    """
    order = order or {}
    records = sorted(records, key=lambda r: (order.get(r["key"], len(order)), r["key"]))
    rows = rows_from_records(records)
    cols: list[str] = []
    for row in rows:
        for c in row:
            if c not in cols:
                cols.append(c)
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({c: _csv_value(row.get(c, "")) for c in cols})
    path = Path(run_dir) / RESULTS_FILE
    atomic_write_text(path, buf.getvalue())
    return path


def _csv_value(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return v


def _parse(v: str) -> Any:
    if v == "":
        return ""
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    if v in ("True", "False"):
        return v == "True"
    return v


_TEXT_COLUMNS = frozenset({"key", "status", "error"})


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of ``results.csv`` with numbers parsed."""
    with open(Path(run_dir) / RESULTS_FILE, newline="") as f:
        return [{k: (v if k in _TEXT_COLUMNS else _parse(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def numeric_metrics(rows: Sequence[dict[str, Any]], exclude: Iterable[str]) -> list[str]:
    """Columns holding numbers in every ok row, except ``exclude``."""
    skip = set(exclude) | {"key", "seed", "status", "error", "seconds"}
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return []
    return [c for c in ok[0] if c not in skip and all(_is_num(r.get(c)) for r in ok)]


def aggregate(rows: Sequence[dict[str, Any]], group_by: Sequence[str],
              metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Mean, standard error and count of ``metrics`` per group of ok rows.

    Returns:
        One dict per group: the group's values, ``runs`` (the count), and for each metric
        ``m`` the keys ``m`` (mean) and ``m_se`` (standard error).
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        groups.setdefault(tuple(r.get(g) for g in group_by), []).append(r)
    out = []
    for gkey in sorted(groups, key=lambda t: tuple((str(type(x)), x) for x in t)):
        members = groups[gkey]
        row: dict[str, Any] = dict(zip(group_by, gkey))
        row["runs"] = len(members)
        for m in metrics:
            vals = [float(r[m]) for r in members if _is_num(r.get(m)) and not math.isnan(float(r[m]))]
            row[m] = statistics.fmean(vals) if vals else float("nan")
            row[f"{m}_se"] = (statistics.stdev(vals) / math.sqrt(len(vals))) if len(vals) > 1 else 0.0
        out.append(row)
    return out
