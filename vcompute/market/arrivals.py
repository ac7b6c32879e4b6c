"""When jobs arrive and what they are: a Poisson process or a recorded trace."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["arrival_schedule", "read_trace"]


def read_trace(path: str | Path, names: list[str]) -> tuple[np.ndarray, list[int | None]]:
    """Read an arrival trace: rows of ``hours[,job]``, an optional header, ``#`` comments.

    Args:
        path: the CSV file.
        names: the job mix's names (a row's ``job`` must be one of them).

    Returns:
        Arrival times in seconds (sorted as given) and, per row, the mix index or None.

    Raises:
        ValueError: for a missing file, a bad number, times going backwards or an
            unknown job name; the message names the line.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"arrival trace {p} not found; give consumers.trace a CSV of 'hours[,job]' rows")
    times: list[float] = []
    kinds: list[int | None] = []
    with p.open(newline="") as f:
        for ln, row in enumerate(csv.reader(f), 1):
            if not row or row[0].strip().startswith("#"):
                continue
            try:
                t = float(row[0]) * 3600.0
            except ValueError:
                if ln == 1:
                    continue  # a header
                raise ValueError(f"{p}:{ln}: arrival time {row[0]!r} is not a number of hours") from None
            if times and t < times[-1] or t < 0:
                raise ValueError(f"{p}:{ln}: arrival times must be non-negative and non-decreasing")
            job = row[1].strip() if len(row) > 1 and row[1].strip() else None
            if job is not None and job not in names:
                raise ValueError(f"{p}:{ln}: job {job!r} is not in the mix ({', '.join(names)})")
            times.append(t)
            kinds.append(None if job is None else names.index(job))
    if not times:
        raise ValueError(f"arrival trace {p} has no rows")
    return np.asarray(times), kinds


def arrival_schedule(consumers: Any, n: int, capacity_tflops: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gaps between arrivals (seconds) and the mix index of each of up to ``n`` jobs.

    Poisson arrivals at ``consumers.load`` times the providers' capacity, or
    the trace's times (then at most its length); job types not given by the
    trace are drawn from the mix weights.
    """
    mix = consumers.mix
    w = np.array([j.weight for j in mix], dtype=float)
    if consumers.trace is None:
        mean_pflop = float(np.dot(w, [j.pflop for j in mix]) / w.sum())
        rate = consumers.load * capacity_tflops / (mean_pflop * 1000.0)
        gaps = rng.exponential(1.0 / rate, size=n)
        return gaps, rng.choice(len(mix), size=n, p=w / w.sum())
    times, kinds = read_trace(consumers.trace, [j.name for j in mix])
    times, kinds = times[:n], kinds[:n]
    drawn = rng.choice(len(mix), size=len(times), p=w / w.sum())
    types = np.array([k if k is not None else d for k, d in zip(kinds, drawn)], dtype=int)
    return np.diff(times, prepend=0.0), types
