"""Which segments to replay, and the reference's KS test of the initialisation.

Top-Q alone (Jia et al.) is predictable: a spoofer keeps its fabricated
segments small and lets the verifier replay honest decoys (Fang et al.).
Adding ``R`` segments drawn uniformly from the rest, with randomness fixed
only after the commitment is posted, makes any fabricated segment escape
with probability at most ``1 - R / (C - |top-Q|)`` each (see proofs/pol.md).
Segments the verifier always replays (the last one, which binds the final
model) are ``forced``: chosen whatever the table says, never by chance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["select_segments", "escape_probability", "ks_uniform_pvalue", "beacon_rng", "MIN_BEACON_BYTES"]

#: Shortest beacon accepted: 128 bits, so the challenge cannot be guessed before it is revealed.
MIN_BEACON_BYTES = 16


def beacon_rng(beacon: bytes, root: bytes) -> np.random.Generator:
    """Challenge randomness from a beacon revealed after the commitment, mixed with the transcript root.

    The seed is SHA-256 of a domain tag, the beacon and the root: the same
    (beacon, root) always gives the same challenges, and a prover that
    commits before the beacon is revealed cannot choose them.

    Example:
        >>> a = beacon_rng(bytes(16), bytes(32)).integers(1 << 30)
        >>> bool(a == beacon_rng(bytes(16), bytes(32)).integers(1 << 30))
        True
    """
    import hashlib

    h = hashlib.sha256(b"vcompute-pol-challenge\0" + len(beacon).to_bytes(8, "little") + bytes(beacon)
                       + bytes(root)).digest()
    return np.random.default_rng(int.from_bytes(h, "little"))


def select_segments(table: np.ndarray, columns: Sequence[int], *, top_q: int, random_segments: int,
                    rng: np.random.Generator, group: int | None = None,
                    max_segments: int | None = None, forced: Sequence[int] = ()) -> list[int]:
    """Forced segments, top-``top_q`` per metric column (per group of ``group`` segments if given), random ones.

    Args:
        table: ``(C, n_metrics)`` update sizes.
        columns: metric columns to rank by.
        top_q: segments per metric (and per group).
        random_segments: further segments drawn uniformly without replacement from the rest.
        rng: the verifier's randomness (drawn after the commitment).
        group: rank within consecutive groups of this many segments (the reference's per-epoch
            selection) instead of globally.
        max_segments: cap on the total; the random draws shrink to fit (never below
            ``max_segments - |forced and top-Q set|``).
        forced: segments always chosen (e.g. the last one); they count towards ``max_segments``.

    Returns:
        Sorted distinct segment indices.

    Example:
        >>> t = np.array([[1.0], [5.0], [2.0], [0.5]])
        >>> select_segments(t, [0], top_q=1, random_segments=0, rng=np.random.default_rng(0))
        [1]
    """
    C = int(table.shape[0])
    chosen: set[int] = {int(j) for j in forced if 0 <= int(j) < C}
    groups = [range(C)] if not group else [range(s, min(s + group, C)) for s in range(0, C, group)]
    for g in groups:
        idx = np.asarray(list(g))
        for c in columns:
            # stable sort on the negated value: ties go to the earlier segment, deterministically
            order = idx[np.argsort(-table[idx, c], kind="stable")]
            chosen.update(int(i) for i in order[:top_q])
    rest = np.array(sorted(set(range(C)) - chosen), dtype=np.int64)
    r = min(random_segments, rest.size)
    if max_segments is not None:
        r = max(0, min(r, max_segments - len(chosen)))
    if r:
        chosen.update(int(i) for i in rng.choice(rest, size=r, replace=False))
    return sorted(chosen)


def escape_probability(n_segments: int, n_bad: int, n_random: int, n_top: int = 0) -> float:
    """Chance that ``n_random`` uniform draws (without replacement) from ``n_segments - n_top``
    segments miss all ``n_bad`` fabricated ones that top-Q did not pick.

    Example:
        >>> round(escape_probability(100, 50, 6), 4)
        0.0133
    """
    pool = n_segments - n_top
    if n_bad <= 0:
        return 1.0
    if n_random > pool - n_bad:
        return 0.0
    return math.comb(pool - n_bad, n_random) / math.comb(pool, n_random)


def ks_uniform_pvalue(x: np.ndarray, lo: float, hi: float) -> float:
    """Asymptotic p-value of the one-sample Kolmogorov-Smirnov test of ``x`` against ``U(lo, hi)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ks_uniform_pvalue(rng.uniform(-1, 1, 2000), -1, 1) > 0.01
        True
        >>> ks_uniform_pvalue(rng.normal(0, 0.3, 2000), -1, 1) < 1e-6
        True
    """
    x = np.sort(np.asarray(x, np.float64).ravel())
    n = x.size
    if n == 0:
        return 0.0
    cdf = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    i = np.arange(1, n + 1)
    d = max(float(np.max(i / n - cdf)), float(np.max(cdf - (i - 1) / n)))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    if lam < 0.2:
        return 1.0
    p = 2.0 * sum((-1) ** (j - 1) * math.exp(-2.0 * j * j * lam * lam) for j in range(1, 101))
    return float(min(max(p, 0.0), 1.0))
