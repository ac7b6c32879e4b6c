"""Closed-form error and cost of voting, spot-checking and credibility.

Paper: L. F. G. Sarmenta, "Sabotage-tolerance mechanisms for volunteer
computing systems", Future Generation Computer Systems 18(4), 2002.

These are the formulas the Monte-Carlo models in
:mod:`vcompute.trust.montecarlo` are checked against, and the numbers
``proofs/replication.md`` quotes. Notation: ``f`` is the fraction of
saboteurs, ``s`` their sabotage rate, ``phi = f * s`` the probability that
one replica is wrong; colluders (``c = 1``) all return the same wrong answer,
the worst case for voting. Those formulas also assume each replica decides
*independently* whether to cheat; colluders who decide it from the job (a
hash of its id) cheat together; :mod:`vcompute.trust.correlated` bounds
them (the coalition votes as one correlated voter).

Example:
    >>> round(m_first_error(15, 0.35), 4)
    0.0476
    >>> min_m_for_error(0.01, 0.35)
    29
"""

from __future__ import annotations

import math

__all__ = [
    "m_first_error",
    "m_first_redundancy",
    "min_m_for_error",
    "majority_error",
    "spot_check_error",
    "spot_check_error_bound",
    "wrong_accepted_per_identity",
    "worker_credibility",
    "group_credibility",
    "wilson_interval",
    "check_probability",
]


def check_probability(name: str, x: float) -> float:
    """``x`` as a float if it is a probability, else ValueError naming ``name``.

    Example:
        >>> check_probability("q", 0.25)
        0.25
    """
    if not (isinstance(x, (int, float)) and 0.0 <= x <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1], got {x!r}")
    return float(x)


def _binom_pmf(n: int, j: int, p: float) -> float:
    if p == 0.0:
        return 1.0 if j == 0 else 0.0
    if p == 1.0:
        return 1.0 if j == n else 0.0
    # log-space keeps C(99, 50) * p^50 finite and accurate
    return math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                    + j * math.log(p) + (n - j) * math.log1p(-p))


def m_first_error(m: int, phi: float) -> float:
    """Error of M-first voting when each replica is wrong with probability ``phi``.

    ``err(M, phi) = sum_{j=M}^{2M-1} C(2M-1, j) phi^j (1-phi)^(2M-1-j)``: the
    wrong (colluding) answer reaches ``M`` votes first exactly when at least
    ``M`` of the first ``2M - 1`` replicas are wrong.

    Args:
        m: votes needed to accept (``M >= 1``).
        phi: probability that one replica is wrong (``f * s``).

    Returns:
        The probability that a wrong result is accepted.

    Raises:
        ValueError: for ``m < 1`` or ``phi`` outside ``[0, 1]``.

    Example:
        >>> m_first_error(1, 0.2)
        0.2
    """
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"M must be a positive integer, got {m!r}")
    phi = check_probability("phi", phi)
    n = 2 * m - 1
    return min(1.0, sum(_binom_pmf(n, j, phi) for j in range(m, n + 1)))


def m_first_redundancy(m: int, phi: float) -> float:
    """Expected replicas M-first voting dispatches before one answer has ``M`` votes.

    Replicas are drawn one at a time; voting stops at the ``t``-th replica
    when either answer reaches ``M`` there, so
    ``E[T] = sum_t t C(t-1, M-1) [(1-phi)^M phi^(t-M) + phi^M (1-phi)^(t-M)]``.

    Args:
        m: votes needed to accept.
        phi: probability that one replica is wrong (colluding).

    Returns:
        The mean number of replicas per job (between ``M`` and ``2M - 1``).

    Raises:
        ValueError: for bad arguments (as :func:`m_first_error`).

    Example:
        >>> m_first_redundancy(1, 0.3)
        1.0
    """
    m_first_error(m, phi)  # validates
    q = 1.0 - phi
    total = 0.0
    for t in range(m, 2 * m):
        ways = math.comb(t - 1, m - 1)
        total += t * ways * (q**m * phi ** (t - m) + phi**m * q ** (t - m))
    return total


def min_m_for_error(eps: float, phi: float, *, max_m: int = 1000) -> int | None:
    """Smallest ``M`` with ``m_first_error(M, phi) <= eps``, or None if above ``max_m``.

    Args:
        eps: target error rate.
        phi: probability that one replica is wrong; must be below 1/2,
            otherwise no amount of voting helps.
        max_m: search limit.

    Returns:
        The smallest sufficient ``M`` or None.

    Raises:
        ValueError: for ``eps`` outside ``(0, 1]`` or ``phi`` outside ``[0, 1]``.

    Example:
        >>> min_m_for_error(0.05, 0.35)
        15
    """
    if not (isinstance(eps, (int, float)) and 0.0 < eps <= 1.0):
        raise ValueError(f"eps must be in (0, 1], got {eps!r}")
    phi = check_probability("phi", phi)
    for m in range(1, max_m + 1):
        if m_first_error(m, phi) <= eps:
            return m
    return None


def majority_error(k: int, phi: float) -> float:
    """Error of a fixed ``k``-replica majority vote against colluders.

    A wrong answer wins when more than half of the ``k`` replicas are wrong;
    for odd ``k = 2M - 1`` this equals :func:`m_first_error` (``M``). Ties
    (even ``k``) are not accepted, so they are not errors.

    Args:
        k: replicas.
        phi: probability that one replica is wrong.

    Returns:
        ``P[#wrong > k/2]``.

    Raises:
        ValueError: for ``k < 1`` or a bad ``phi``.

    Example:
        >>> round(majority_error(3, 0.5), 6)
        0.5
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    phi = check_probability("phi", phi)
    return sum(_binom_pmf(k, j, phi) for j in range(k // 2 + 1, k + 1))


def spot_check_error(f: float, s: float, q: float, n: int) -> float:
    """Error rate of spot-checking with blacklisting and backtracking after ``n`` turns.

    Each worker does ``n`` turns; each turn is a spot-check with probability
    ``q``, indistinguishable from real work. A saboteur cheats on each turn
    with probability ``s`` and is blacklisted (all its results discarded) the
    first time it fails a spot-check, so it survives with probability
    ``(1 - q s)^n``; given survival each of its turns is real work with
    probability ``(1-q)/(1-qs)`` and wrong with probability ``s``. The ratio
    of expected wrong to expected accepted results is
    ``err = f s (1-qs)^(n-1) / ((1-f) + f (1-qs)^(n-1))``
    (Sarmenta writes ``n`` for ``n - 1``, the same for large ``n``).

    Args:
        f: fraction of saboteurs.
        s: sabotage rate.
        q: spot-check rate.
        n: turns per worker in the batch (``>= 1``).

    Returns:
        The expected fraction of accepted results that are wrong.

    Raises:
        ValueError: for probabilities outside ``[0, 1]`` or ``n < 1``.

    Example:
        >>> spot_check_error(0.2, 1.0, 0.1, 1) == 0.2
        True
    """
    f, s, q = (check_probability(nm, v) for nm, v in (("f", f), ("s", s), ("q", q)))
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    survive = (1.0 - q * s) ** (n - 1)
    denom = (1.0 - f) + f * survive
    return 0.0 if denom == 0 else f * s * survive / denom


def spot_check_error_bound(f: float, q: float, n: int) -> float:
    """Sarmenta's bound ``f / ((1 - f) q (n - 1) e)`` on :func:`spot_check_error` over all ``s``.

    ``s (1 - q s)^(n-1) <= 1 / (q (n-1) e)``, so the error falls linearly
    with the work ``n`` (voting's falls exponentially with redundancy).

    Args:
        f: fraction of saboteurs (``< 1``).
        q: spot-check rate (``> 0``).
        n: turns per worker (``>= 2``).

    Returns:
        The bound.

    Raises:
        ValueError: for ``f = 1``, ``q = 0`` or ``n < 2``.

    Example:
        >>> round(spot_check_error_bound(0.2, 0.1, 101), 5)
        0.0092
    """
    f, q = check_probability("f", f), check_probability("q", q)
    if f >= 1.0 or q <= 0.0 or not isinstance(n, int) or n < 2:
        raise ValueError("the bound needs f < 1, q > 0 and n >= 2")
    return f / ((1.0 - f) * q * (n - 1) * math.e)


def wrong_accepted_per_identity(q: float, p: float) -> float:
    """Expected wrong results a cheater gets accepted before it is caught and banned.

    Per slot a job is a known-answer job with probability ``q``, and a real
    job is re-executed with probability ``p``; a cheater that cheats on
    every job it cheats on at all is caught on a checked job and gets the
    unchecked ones accepted. The count is geometric with mean
    ``(1-q)(1-p) / (q + (1-q) p)``, whatever the cheating rate ``s > 0``.

    Args:
        q: known-answer rate.
        p: audit (re-execution) probability of real jobs.

    Returns:
        The expectation (``inf`` when nothing is ever checked).

    Raises:
        ValueError: for probabilities outside ``[0, 1]``.

    Example:
        >>> wrong_accepted_per_identity(0.0, 0.1)
        9.0
    """
    q, p = check_probability("q", q), check_probability("p", p)
    d = q + (1.0 - q) * p
    return math.inf if d == 0 else (1.0 - q) * (1.0 - p) / d


def worker_credibility(f: float, passed: int, *, blacklisting: bool = True) -> float:
    """Sarmenta's credibility of a worker that has passed ``passed`` spot-checks.

    With blacklisting a saboteur of rate ``s`` survives ``k`` checks with
    probability ``(1-s)^k`` and ``s (1-s)^k <= 1/(e k)``, so a result of such
    a worker is wrong with probability at most ``f / ((1-f) e k)``. Without
    blacklisting the bound is ``f / k``. A worker with no passed checks has
    credibility ``1 - f``.

    Args:
        f: assumed upper bound on the fraction of saboteurs.
        passed: spot-checks passed (``k``).
        blacklisting: whether caught saboteurs are removed.

    Returns:
        A lower bound on the probability that the worker's result is right.

    Raises:
        ValueError: for ``f`` outside ``[0, 1)`` or negative ``passed``.

    Example:
        >>> round(worker_credibility(0.2, 10), 4)
        0.9908
    """
    f = check_probability("f", f)
    if f >= 1.0 or not isinstance(passed, int) or passed < 0:
        raise ValueError("worker credibility needs f < 1 and passed >= 0")
    if passed == 0:
        return 1.0 - f
    bad = f / ((1.0 - f) * math.e * passed) if blacklisting else f / passed
    return max(1.0 - f, 1.0 - bad)


def group_credibility(groups: list[list[float]], index: int) -> float:
    """Credibility that group ``index`` of matching results is the right answer.

    Sarmenta's rule for colluding saboteurs: with ``P_good(g)`` the product
    of its results' credibilities and ``P_bad(g)`` the product of their
    complements,
    ``Cr(g_a) = P_good(g_a) prod_{b != a} P_bad(g_b) /
    (prod_b P_bad(g_b) + sum_c P_good(g_c) prod_{b != c} P_bad(g_b))``.

    Args:
        groups: per group, the credibilities of its results.
        index: which group.

    Returns:
        The group's credibility in ``[0, 1]``.

    Raises:
        IndexError: if ``index`` names no group.

    Example:
        >>> round(group_credibility([[0.8, 0.8], [0.8]], 0), 4)
        0.7619
    """
    good = [math.prod(g) for g in groups]
    bad = [math.prod(1.0 - c for c in g) for g in groups]
    all_bad = math.prod(bad)
    terms = [good[c] * math.prod(bad[b] for b in range(len(groups)) if b != c) for c in range(len(groups))]
    denom = all_bad + sum(terms)
    return 0.0 if denom == 0 else terms[index] / denom


def wilson_interval(successes: int, trials: int, *, z: float = 3.0) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (``z = 3``: about 99.7%).

    Args:
        successes: count of events.
        trials: number of trials (``> 0``).
        z: normal quantile.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: for ``trials < 1``.

    Example:
        >>> lo, hi = wilson_interval(50, 100)
        >>> lo < 0.5 < hi
        True
    """
    if trials < 1:
        raise ValueError("wilson_interval needs at least one trial")
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)
