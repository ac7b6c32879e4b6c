"""Error bounds for colluders who coordinate *when* to cheat (claim C9 of ``proofs/replication.md``).

The formulas of :mod:`vcompute.trust.voting` assume every replica decides
independently whether to cheat. A ring of colluders can decide it from the
job alone (a hash of its id), so that on a given job every member cheats or
none does. The ring then votes as one correlated voter: its answer wins with
probability P(the ring fills a majority of the slots) x P(it cheats on this
job), with no independence discount. These bounds cover that strategy and,
being the worst case over every job-decided strategy, independent coins too.

Example:
    >>> round(coordinated_majority_error(3, 0.3, 0.3), 4)
    0.0648
"""

from __future__ import annotations

import math

from vcompute.trust.voting import check_probability, m_first_error, majority_error

__all__ = ["coordinated_majority_error", "coordinated_m_first_error", "coordinated_group_error",
           "coordinated_group_credibility"]


def _coordinated(tail, f: float, s: float) -> float:
    """Largest ``E[tail(X)]`` over job-decided cheating with ``E[X] = f s``, ``0 <= X <= f``.

    ``X`` is the share of the population that cheats on a given job. The
    maximum is the concave envelope of ``tail`` on ``[0, f]`` at ``f s``:
    ``tail`` is convex on ``[0, 1/2]``, so for ``f <= 1/2`` it is
    ``s tail(f)`` (all colluders cheat together on a share ``s`` of jobs);
    above, the envelope is a chord from 0 then ``tail`` itself, found as
    ``max_{x in [fs, f]} (f s / x) tail(x)`` on a fine grid.
    """
    if f == 0.0 or s == 0.0:
        return 0.0
    if f <= 0.5 or s == 1.0:
        return min(1.0, s * tail(f))
    y = f * s
    xs = [y + (f - y) * i / 2000 for i in range(2001)]
    return min(1.0, max(y / x * tail(x) for x in xs))


def coordinated_majority_error(k: int, f: float, s: float) -> float:
    """Wrong-acceptance bound of a ``k``-replica majority against colluders who coordinate *when* to cheat.

    Replicas are drawn independently; a fraction ``f`` of providers
    belongs to the coalition, and each colluder cheats on a share ``s`` of
    jobs, deciding from the job alone (no talk at run time, no knowledge
    of who else got the job). The coalition is then one correlated voter:
    for ``f <= 1/2`` the worst such strategy is "everyone cheats on the
    same share ``s`` of jobs", and the wrong answer wins with probability
    ``s * majority_error(k, f)`` (P(colluders fill a majority of the
    slots) x P(they cheat on this job)), with no independence discount.
    Colluders who cheat independently are covered too:
    ``majority_error(k, f s) <= coordinated_majority_error(k, f, s)``.
    Derivation in ``proofs/replication.md`` (C9).

    Args:
        k: replicas.
        f: fraction of providers in the coalition.
        s: share of jobs each colluder cheats on.

    Returns:
        The bound on ``P[the colluders' answer is accepted]``.

    Raises:
        ValueError: for ``k < 1`` or probabilities outside ``[0, 1]``.

    Example:
        >>> from vcompute.trust.voting import majority_error
        >>> round(coordinated_majority_error(3, 0.3, 0.3), 4), round(majority_error(3, 0.09), 4)
        (0.0648, 0.0228)
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    f, s = check_probability("f", f), check_probability("s", s)
    return _coordinated(lambda x: majority_error(k, x), f, s)


def coordinated_m_first_error(m: int, f: float, s: float) -> float:
    """M-first voting's error against job-coordinated colluders (see :func:`coordinated_majority_error`).

    Equals ``s * m_first_error(m, f)`` for ``f <= 1/2``.

    Raises:
        ValueError: for ``m < 1`` or probabilities outside ``[0, 1]``.

    Example:
        >>> round(coordinated_m_first_error(15, 0.35, 1.0), 4)
        0.0476
    """
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"M must be a positive integer, got {m!r}")
    f, s = check_probability("f", f), check_probability("s", s)
    return _coordinated(lambda x: m_first_error(m, x), f, s)


def coordinated_group_error(f: float, passed: int, m: int, *, blacklisting: bool = True) -> float:
    """Bound on the odds that ``m`` agreeing results are all wrong, for job-coordinated colluders.

    Each of the ``m`` workers passed ``passed`` spot-checks. Under
    Sarmenta's independence each is wrong with probability at most
    ``f/((1-f) e k)`` and the group's odds multiply (``~(e k)^-m``). A
    coalition that cheats on the same jobs breaks that: all ``m`` are
    colluders with odds at most ``(f/(1-f))^m`` (dispatch is random, so
    membership is independent), the survival of their ``m k`` checks
    costs ``(1-s)^(m k)``, and then they cheat on *this* job together with
    probability ``s`` once, not ``s^m``. With blacklisting
    ``s (1-s)^(m k) <= 1/(e m k)``, so the odds are at most
    ``(f/(1-f))^m / (e m k)``; without it (or with ``k = 0``) passed
    checks earn nothing and the bound is ``(f/(1-f))^m``.

    Args:
        f: assumed upper bound on the colluders' share (``< 1``).
        passed: spot-checks each worker passed.
        m: agreeing results.
        blacklisting: whether caught colluders are removed.

    Returns:
        An upper bound on ``P[all wrong] / P[all right]`` for the group.

    Raises:
        ValueError: for ``f`` outside ``[0, 1)``, negative ``passed`` or ``m < 1``.

    Example:
        >>> round(coordinated_group_error(0.2, 10, 2), 7)
        0.0011496
    """
    f = check_probability("f", f)
    if f >= 1.0 or not isinstance(passed, int) or passed < 0 or not isinstance(m, int) or m < 1:
        raise ValueError("coordinated_group_error needs f < 1, passed >= 0 and m >= 1")
    return _coordinated_odds(f, [passed] * m, blacklisting)


def _coordinated_odds(f: float, passes: list[int], blacklisting: bool) -> float:
    """``(f/(1-f))^m min(1, 1/(e K))`` for a group of ``m`` results whose workers passed ``K`` checks in all."""
    odds = (f / (1.0 - f)) ** len(passes)
    total = int(sum(passes))
    if blacklisting and total > 0:
        odds *= min(1.0, 1.0 / (math.e * total))
    return odds


def coordinated_group_credibility(groups: list[list[int]], index: int, *, f: float,
                                  blacklisting: bool = True) -> float:
    """Credibility of group ``index`` when the colluders may coordinate when to cheat.

    Sarmenta's rule (:func:`group_credibility`) in odds form, with each
    group's odds of being the colluders' wrong answer taken from
    :func:`coordinated_group_error` instead of a product of independent
    worker odds: a group of ``m`` results whose workers passed ``K`` checks
    in all has odds at most ``(f/(1-f))^m min(1, 1/(e K))`` (with
    blacklisting; ``(f/(1-f))^m`` without), and
    ``Cr(g_a) = (1/o_a) / (1 + sum_c 1/o_c)``.

    Args:
        groups: per group of matching results, the spot-checks each of its
            workers passed.
        index: which group.
        f: assumed upper bound on the colluders' share (``< 1``).
        blacklisting: whether caught colluders are removed.

    Returns:
        The group's credibility in ``[0, 1]``.

    Raises:
        ValueError: for ``f`` outside ``[0, 1)``; IndexError if ``index`` names no group.

    Example:
        >>> round(coordinated_group_credibility([[10, 10]], 0, f=0.2), 4)
        0.9989
    """
    f = check_probability("f", f)
    if f >= 1.0:
        raise ValueError(f"f must be below 1, got {f!r}")
    if f == 0.0:
        return 1.0 if len(groups) == 1 else 0.0
    inv = [1.0 / max(_coordinated_odds(f, g, blacklisting), 1e-300) for g in groups]
    return inv[index] / (1.0 + sum(inv))
