"""Light Monte-Carlo models of voting, adaptive replication and credibility.

Three models, each a plain function of its parameters and a seeded
generator, returning a dict of flat metrics (what experiment tasks report):

- :func:`simulate_m_first`: M-first voting against saboteurs (fraction
  ``f``, sabotage rate ``s``, collusion rate ``c``), checked against
  :func:`~vcompute.trust.voting.m_first_error`.
- :func:`simulate_adaptive`: a host population (honest, faulty,
  streak-then-cheat attackers) under any
  :class:`~vcompute.trust.policies.ReplicationPolicy`, with BOINC-style
  min-quorum validation, optional backtracking, and cost accounting.
- :func:`simulate_credibility`: Sarmenta's credibility-based fault
  tolerance (spot-checks, blacklisting, backtracking, group credibility).

Cost accounting is the same everywhere: ``overhead`` is extra compute over
useful compute (results computed / jobs accepted - 1, spot-checks and
re-executions included) and ``residual_error`` is wrong results accepted
over results accepted. The models are abstract (answers are labels, not
arrays) so millions of jobs run in seconds; the marketplace runs the same
policies against real verifiers and real workloads.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from vcompute.trust.policies import ReplicationPolicy
from vcompute.trust.voting import group_credibility, m_first_error, m_first_redundancy, wilson_interval

__all__ = ["simulate_m_first", "simulate_adaptive", "simulate_credibility"]

_RIGHT, _COLLUDE, _UNIQUE = 0, 1, 2


def _check(name: str, x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    if not (isinstance(x, (int, float)) and lo <= x <= hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {x!r}")
    return float(x)


def simulate_m_first(m: int, f: float, *, s: float = 1.0, c: float = 1.0, trials: int = 100_000,
                     rng: np.random.Generator, batch: int = 20_000) -> dict[str, float]:
    """M-first voting: draw replicas until one answer has ``m`` votes.

    Each replica comes from a saboteur with probability ``f``; a saboteur
    returns a wrong answer with probability ``s``; a wrong answer is the
    colluders' shared answer with probability ``c`` and otherwise a unique
    one that never matches. A job is wrong when the shared wrong answer
    reaches ``m`` first.

    Args:
        m: votes needed.
        f, s, c: saboteur fraction, sabotage rate, collusion rate.
        trials: jobs simulated.
        rng: the generator.
        batch: jobs per vectorised batch.

    Returns:
        ``error_rate``, its 3-sigma Wilson interval ``error_lo``/``error_hi``,
        the ``formula`` value ``err(m, f s)`` (exact for ``c = 1``, an upper
        bound otherwise), ``redundancy`` (mean replicas per job) and
        ``formula_redundancy``.

    Raises:
        ValueError: for out-of-range arguments.

    Example:
        >>> r = simulate_m_first(2, 0.2, trials=20_000, rng=np.random.default_rng(0))
        >>> r["error_lo"] <= r["formula"] <= r["error_hi"]
        True
    """
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be a positive integer, got {m!r}")
    f, s, c = _check("f", f), _check("s", s), _check("c", c)
    phi = f * s
    if phi * c >= 0.5 and phi * (1 - c) > 0.999:
        raise ValueError("with almost every replica unique and wrong no answer ever reaches m votes")
    probs = np.array([1.0 - phi, phi * c, phi * (1.0 - c)])
    wrong = total = done = 0
    while done < trials:
        nb = min(batch, trials - done)
        width = int(2 * m / max(1e-3, 1.0 - probs[2])) + 16
        counts = np.zeros((nb, 2), dtype=np.int64)
        stop = np.full(nb, -1, dtype=np.int64)
        winner = np.zeros(nb, dtype=np.int64)
        offset = 0
        while (stop < 0).any():
            live = np.flatnonzero(stop < 0)
            draws = rng.choice(3, size=(live.size, width), p=probs)
            right = counts[live, 0, None] + np.cumsum(draws == _RIGHT, axis=1)
            coll = counts[live, 1, None] + np.cumsum(draws == _COLLUDE, axis=1)
            hit = (right >= m) | (coll >= m)
            any_hit = hit.any(axis=1)
            first = np.argmax(hit, axis=1)
            rows = live[any_hit]
            stop[rows] = offset + first[any_hit] + 1
            winner[rows] = coll[any_hit, first[any_hit]] >= m
            counts[live, 0], counts[live, 1] = right[:, -1], coll[:, -1]
            offset += width
        wrong += int(winner.sum())
        total += int(stop.sum())
        done += nb
    lo, hi = wilson_interval(wrong, trials)
    return {"error_rate": wrong / trials, "error_lo": lo, "error_hi": hi, "formula": m_first_error(m, phi),
            "redundancy": total / trials, "formula_redundancy": m_first_redundancy(m, phi),
            "trials": float(trials)}


class _Host:
    __slots__ = ("kind", "done", "unchecked", "unchecked_wrong")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.done = 0  # results returned (drives the streak-then-cheat switch)
        # accepted-unchecked results since the host was last caught: a valid
        # check of one result says nothing about the others, so only a catch resets them
        self.unchecked = 0
        self.unchecked_wrong = 0


def simulate_adaptive(policy: ReplicationPolicy, *, hosts: int = 1000, jobs: int = 100_000,
                      faulty_fraction: float = 0.01, fault_rate: float = 0.5,
                      attacker_fraction: float = 0.0, attacker_streak: int = 20,
                      rejoin: bool = True, backtrack: bool = False, min_quorum: int = 2,
                      max_replicas: int = 10, honest_error_rate: float = 0.0,
                      rng: np.random.Generator) -> dict[str, float]:
    """Adaptive replication over a host population, with cost accounting.

    Each job goes to a host drawn uniformly from those the policy allows.
    ``policy.replicas_for`` says how many replicas it gets; a replicated job
    is validated BOINC-style (more replicas from distinct hosts until one
    answer has ``min_quorum`` votes, at most ``max_replicas``), and every
    replica's outcome is recorded with the policy. An unreplicated job is
    accepted unchecked. A policy with a ``quota`` (:class:`~vcompute.trust.policies.Blacklist`)
    throttles: a host below its full quota is offered a job with
    probability ``quota / max_quota``.

    Host kinds: honest (always right); faulty (wrong with probability
    ``fault_rate``, each wrong answer unique); streak-then-cheat attackers
    (right for their first ``attacker_streak`` results, then always the
    colluders' shared wrong answer; caught, they start a new streak). A
    banned attacker comes back under a new identity when ``rejoin``. With ``backtrack``, an invalid result
    makes the dispatcher re-execute (and correct) all of that host's
    unchecked results since it was last caught, at a cost
    (Sarmenta's backtracking).

    Args:
        policy: the replication policy under test (mutated: it learns).
        hosts, jobs: population size and jobs dispatched.
        faulty_fraction, fault_rate: share of faulty hosts and their error rate.
        attacker_fraction, attacker_streak: share of attackers and their honest prefix.
        rejoin: banned attackers return with a fresh identity.
        backtrack: re-execute a host's unchecked results when it is caught.
        min_quorum: agreeing votes that validate a replicated job.
        max_replicas: give up on a job (not accepted) after this many.
        honest_error_rate: occasional (unique) errors of honest hosts, e.g.
            hardware faults; 0 by default.
        rng: the generator.

    Returns:
        ``residual_error``, its interval ``error_lo``/``error_hi``,
        ``overhead``, ``accepted``, ``wrong_accepted``, ``unreplicated_share``,
        ``backtracked``, ``banned``.

    Raises:
        ValueError: for out-of-range arguments.
    """
    _check("faulty_fraction", faulty_fraction)
    _check("attacker_fraction", attacker_fraction, 0.0, 1.0 - faulty_fraction)
    _check("fault_rate", fault_rate)
    _check("honest_error_rate", honest_error_rate)
    if hosts < max(2, min_quorum) or jobs < 1:
        raise ValueError("need at least min_quorum hosts and one job")
    n_faulty = int(round(faulty_fraction * hosts))
    n_att = int(round(attacker_fraction * hosts))
    kinds = ["faulty"] * n_faulty + ["attacker"] * n_att + ["honest"] * (hosts - n_faulty - n_att)
    pool: list[str] = []
    info: dict[str, _Host] = {}
    for i, kind in enumerate(rng.permutation(np.array(kinds, dtype=object))):
        pool.append(f"h{i}")
        info[f"h{i}"] = _Host(str(kind))
    fresh = hosts
    accepted = wrong_accepted = computed = unreplicated = backtracked = banned = 0

    def answer(hid: str) -> int:
        h = info[hid]
        h.done += 1
        if h.kind == "faulty":
            return _UNIQUE if rng.random() < fault_rate else _RIGHT
        if h.kind == "attacker":
            return _COLLUDE if h.done > attacker_streak else _RIGHT
        if honest_error_rate and rng.random() < honest_error_rate:
            return _UNIQUE
        return _RIGHT

    def caught(hid: str) -> None:
        nonlocal wrong_accepted, computed, backtracked
        h = info[hid]
        if h.kind == "attacker":
            h.done = 0  # it sees its result rejected and rebuilds its streak before cheating again
        if backtrack:
            computed += h.unchecked
            backtracked += h.unchecked
            wrong_accepted -= h.unchecked_wrong
            h.unchecked = h.unchecked_wrong = 0

    quota = getattr(policy, "quota", None)
    full = getattr(policy, "params", {}).get("max_quota", 0)
    for _ in range(jobs):
        first = pool[int(rng.integers(len(pool)))]
        # punitive throttling: a host below its full quota gets the job only with probability quota / full
        # (no draw at full quota, so unthrottled runs see the same random stream)
        while quota is not None and quota(first) < full and rng.random() >= quota(first) / full:
            first = pool[int(rng.integers(len(pool)))]
        k = policy.replicas_for(first, rng)
        if k <= 1:
            a = answer(first)
            computed += 1
            accepted += 1
            unreplicated += 1
            wrong_accepted += a != _RIGHT
            info[first].unchecked += 1
            info[first].unchecked_wrong += a != _RIGHT
            continue
        chosen = [first]
        answers = [answer(first)]
        tries = 0
        while len(chosen) < min(max_replicas, len(pool)) and tries < 50 * max_replicas:
            if len(chosen) >= k and _canonical(answers, min_quorum) is not None:
                break
            hid = pool[int(rng.integers(len(pool)))]
            tries += 1
            if hid in chosen:
                continue
            chosen.append(hid)
            answers.append(answer(hid))
        computed += len(chosen)
        canonical = _canonical(answers, min_quorum)
        if canonical is None:
            continue  # BOINC gives up on the workunit: nothing accepted, the compute is overhead
        accepted += 1
        wrong_accepted += canonical != _RIGHT
        for hid, a in zip(chosen, answers):
            ok = a == canonical and a != _UNIQUE
            policy.record(hid, "valid" if ok else "invalid")
            if not ok:
                caught(hid)
            if not policy.allowed(hid):
                banned += 1
                idx = pool.index(hid)
                if rejoin and info[hid].kind == "attacker":
                    pool[idx] = f"h{fresh}"
                    info[pool[idx]] = _Host("attacker")
                    fresh += 1
                else:
                    pool[idx] = pool[-1]
                    pool.pop()
                    if len(pool) < min_quorum:
                        raise RuntimeError("the policy banned almost every host; lower its severity or add hosts")
    lo, hi = wilson_interval(max(0, wrong_accepted), max(1, accepted))
    return {"residual_error": wrong_accepted / max(1, accepted), "error_lo": lo, "error_hi": hi,
            "overhead": computed / max(1, accepted) - 1.0, "accepted": float(accepted),
            "wrong_accepted": float(wrong_accepted), "unreplicated_share": unreplicated / max(1, accepted),
            "backtracked": float(backtracked), "banned": float(banned)}


def _canonical(answers: list[int], q: int) -> int | None:
    for label in (_RIGHT, _COLLUDE):  # unique wrong answers never reach a quorum
        if answers.count(label) >= q:
            return label
    return None


def simulate_credibility(*, workers: int = 100, entries: int = 10_000, f: float = 0.35, s: float = 1.0,
                         q: float = 0.1, threshold: float = 0.999, f_assumed: float | None = None,
                         blacklisting: bool = True, backtrack: bool = True, coordinated: bool = False,
                         rule: str = "independent", rng: np.random.Generator) -> dict[str, float]:
    """Sarmenta's credibility-based fault tolerance on a batch of work entries.

    Workers take turns in random order each round. A turn is a spot-check
    with probability ``q`` (a saboteur fails it with probability ``s``, is
    blacklisted and, with ``backtrack``, all its results are discarded and
    their entries reopened); otherwise the worker computes the next open
    entry it has not worked on (a saboteur returns the colluders' shared
    wrong answer with probability ``s``). An entry is finished when one
    group of matching results has group credibility ``>= threshold``, with
    worker credibility ``1 - f/((1-f) e k)`` after ``k`` passed checks.
    With ``coordinated`` the saboteurs decide *when* to cheat from the work
    entry (all of them cheat on the same share ``s`` of entries) instead of
    each flipping its own coin; spot-checks are fresh jobs, so each is
    cheated on with probability ``s``. ``rule`` is the group credibility
    the entries settle by: ``"independent"`` (Sarmenta's,
    :func:`~vcompute.trust.voting.group_credibility`) or
    ``"coordinated"`` (:func:`~vcompute.trust.correlated.coordinated_group_credibility`).

    Args:
        workers, entries: batch shape.
        f, s: saboteur fraction and sabotage rate.
        q: spot-check rate.
        threshold: credibility threshold ``1 - eps``.
        f_assumed: the ``f`` credibility is computed with (default ``f``).
        blacklisting, backtrack: Sarmenta's two mechanisms.
        coordinated: saboteurs cheat together on the same entries.
        rule: ``"independent"`` or ``"coordinated"`` group credibility.
        rng: the generator.

    Returns:
        ``error_rate`` (wrong finished entries over entries) with its
        interval, ``redundancy`` (results computed per entry, discarded
        ones included), ``slowdown`` (turns per entry, spot-checks
        included), ``overhead`` (``slowdown - 1``), ``caught`` (saboteurs
        blacklisted), ``unfinished``.

    Raises:
        ValueError: for out-of-range arguments.

    Example:
        >>> r = simulate_credibility(workers=20, entries=200, f=0.2, q=0.1, threshold=0.99,
        ...                          rng=np.random.default_rng(0))
        >>> r["unfinished"]
        0.0
    """
    from vcompute.trust.correlated import coordinated_group_credibility
    from vcompute.trust.voting import worker_credibility

    if rule not in ("independent", "coordinated"):
        raise ValueError(f"rule must be 'independent' or 'coordinated', got {rule!r}")
    f, s, q = _check("f", f, 0.0, 0.99), _check("s", s), _check("q", q, 0.0, 0.99)
    fa = f if f_assumed is None else _check("f_assumed", f_assumed, 0.0, 0.99)
    if not 0.0 < threshold < 1.0 or workers < 2 or entries < 1:
        raise ValueError("need 0 < threshold < 1, at least 2 workers and one entry")
    sab = np.zeros(workers, dtype=bool)
    sab[rng.choice(workers, int(round(f * workers)), replace=False)] = True
    passed = np.zeros(workers, dtype=np.int64)
    active = np.ones(workers, dtype=bool)
    results: list[dict[int, int]] = [{} for _ in range(entries)]
    contributed: list[list[int]] = [[] for _ in range(workers)]
    done = np.zeros(entries, dtype=bool)
    final = np.zeros(entries, dtype=np.int64)
    open_q = deque(range(entries))
    # drawn only when used, so independent runs keep their random stream
    entry_cheat = rng.random(entries) < s if coordinated else None
    turns = work = caught = 0
    limit = 1000 * entries

    def cred(w: int) -> float:
        return worker_credibility(fa, int(passed[w]), blacklisting=blacklisting)

    def settle(e: int) -> bool:
        groups: dict[int, list[int]] = {}
        for w, a in results[e].items():
            groups.setdefault(a, []).append(int(w))
        labels = list(groups)
        if rule == "coordinated":
            passes = [[int(passed[w]) for w in groups[a]] for a in labels]
            score = [coordinated_group_credibility(passes, i, f=fa, blacklisting=blacklisting)
                     for i in range(len(labels))]
        else:
            creds = [[cred(w) for w in groups[a]] for a in labels]
            score = [group_credibility(creds, i) for i in range(len(labels))]
        for i, a in enumerate(labels):
            if score[i] >= threshold:
                done[e], final[e] = True, a
                return True
        return False

    while open_q and turns < limit:
        for w in rng.permutation(np.flatnonzero(active)):
            if not open_q:
                break
            turns += 1
            cheat = bool(sab[w]) and rng.random() < s
            if rng.random() < q:
                if not cheat:
                    passed[w] += 1
                    continue
                caught += 1
                passed[w] = 0
                if blacklisting:
                    active[w] = False
                if backtrack:
                    for e in contributed[w]:
                        results[e].pop(int(w), None)
                        if done[e]:
                            done[e] = False
                            open_q.append(e)
                    contributed[w] = []
                continue
            for _ in range(len(open_q)):  # the next open entry this worker has not answered
                e = open_q.popleft()
                if int(w) not in results[e]:
                    break
                open_q.append(e)
            else:
                continue
            if entry_cheat is not None:
                cheat = bool(sab[w]) and bool(entry_cheat[e])
            results[e][int(w)] = _COLLUDE if cheat else _RIGHT
            contributed[w].append(e)
            work += 1
            if not settle(e):
                open_q.append(e)
        if not active.any():
            break
    wrong = int(np.sum(done & (final != _RIGHT)))
    lo, hi = wilson_interval(wrong, entries)
    return {"error_rate": wrong / entries, "error_lo": lo, "error_hi": hi, "redundancy": work / entries,
            "slowdown": turns / entries, "overhead": turns / entries - 1.0, "caught": float(caught),
            "unfinished": float(entries - int(done.sum()))}
