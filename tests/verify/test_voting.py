"""Voting, spot-check and credibility formulas, and the Monte-Carlo models checked against them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcompute.trust.correlated import (coordinated_group_credibility, coordinated_majority_error,
                                        coordinated_m_first_error)
from vcompute.trust.montecarlo import simulate_adaptive, simulate_credibility, simulate_m_first
from vcompute.trust.policies import Blacklist, ConsecutiveValid, FixedReplication
from vcompute.trust.voting import (group_credibility, m_first_error, majority_error, min_m_for_error,
                                    spot_check_error, spot_check_error_bound, wilson_interval,
                                    worker_credibility, wrong_accepted_per_identity)


def test_sarmenta_m_first_targets():
    """f = 0.35, s = 1, c = 1 needs M = 15 / 29 / > 50 for eps = 0.05 / 0.01 / 0.001."""
    assert min_m_for_error(0.05, 0.35) == 15
    assert min_m_for_error(0.01, 0.35) == 29
    assert min_m_for_error(0.001, 0.35) > 50


@given(m=st.integers(1, 30), phi=st.floats(0, 1))
def test_m_first_equals_odd_majority_and_is_monotone(m, phi):
    assert m_first_error(m, phi) == pytest.approx(majority_error(2 * m - 1, phi), abs=1e-12)
    if phi < 0.5 and m > 1:
        assert m_first_error(m, phi) <= m_first_error(m - 1, phi) + 1e-12


@pytest.mark.parametrize("m", [1, 3, 15])
def test_m_first_monte_carlo_within_ci_of_formula(m):
    r = simulate_m_first(m, 0.35, trials=60_000, rng=np.random.default_rng(m))
    assert r["error_lo"] <= r["formula"] <= r["error_hi"]
    assert r["redundancy"] == pytest.approx(r["formula_redundancy"], rel=0.01)


def test_partial_collusion_is_bounded_by_the_formula():
    r = simulate_m_first(3, 0.35, c=0.5, trials=40_000, rng=np.random.default_rng(0))
    assert r["error_hi"] < r["formula"]
    r = simulate_m_first(3, 0.35, s=0.5, trials=40_000, rng=np.random.default_rng(0))
    assert r["error_lo"] <= m_first_error(3, 0.175) <= r["error_hi"]


def _spot_check_mc(f, s, q, n, workers, rng):
    sab = rng.random(workers) < f
    cheats = rng.random((workers, n), dtype=np.float32) < s
    checked = rng.random((workers, n), dtype=np.float32) < q
    alive = ~np.any(cheats & checked & sab[:, None], axis=1)
    real = ~checked & alive[:, None]
    wrong = real & cheats & sab[:, None]
    return int(wrong.sum()), int(real.sum())


@pytest.mark.parametrize("s", [0.05, 0.3, 1.0])
def test_spot_check_formula_matches_simulation_and_bound(s):
    f, q, n = 0.2, 0.1, 50
    wrong, total = _spot_check_mc(f, s, q, n, 100_000, np.random.default_rng(1))
    # at s = 1 only ~1 in 200 saboteurs survives 50 turns: the estimate rests on ~100 survivors
    assert wrong / total == pytest.approx(spot_check_error(f, s, q, n), rel=0.3 if s == 1.0 else 0.05)
    assert spot_check_error(f, s, q, n) <= spot_check_error_bound(f, q, n)


@given(k=st.integers(1, 500), s=st.floats(0, 1))
def test_credibility_bound_holds_for_every_sabotage_rate(k, s):
    """s (1-s)^k <= 1/(e k): the step behind worker_credibility."""
    assert s * (1 - s) ** k <= 1 / (math.e * k) + 1e-15


def test_group_credibility_cases():
    assert group_credibility([[0.9]], 0) == pytest.approx(0.9)
    # a credible dissenter lowers the majority group below a lone result: 0.081 / 0.091
    assert group_credibility([[0.9, 0.9], [0.9]], 0) == pytest.approx(0.081 / 0.091)
    assert group_credibility([[0.9, 0.9], [0.9]], 1) == pytest.approx(0.009 / 0.091)
    assert worker_credibility(0.3, 0) == pytest.approx(0.7)
    assert worker_credibility(0.3, 5, blacklisting=False) == pytest.approx(1 - 0.3 / 5)
    assert wrong_accepted_per_identity(0.0, 0.0) == math.inf


def test_wilson_interval_contains_truth_and_validates():
    lo, hi = wilson_interval(0, 1000)
    assert lo == 0.0 and 0 < hi < 0.01
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_adaptive_cost_accounting_and_policy_ordering():
    kw = dict(hosts=200, jobs=20_000, faulty_fraction=0.05, fault_rate=1.0)
    fixed = simulate_adaptive(FixedReplication(k=2), rng=np.random.default_rng(0), **kw)
    cv = simulate_adaptive(ConsecutiveValid(), rng=np.random.default_rng(0), **kw)
    assert fixed["overhead"] >= 1.0 and fixed["unreplicated_share"] == 0.0
    assert fixed["residual_error"] == 0.0  # always-wrong faulty hosts never agree with each other
    assert cv["overhead"] < 0.3 and cv["unreplicated_share"] > 0.7
    assert cv["residual_error"] == 0.0  # hosts that always fail never build a streak


def test_streak_then_cheat_beats_boinc_and_the_resisting_policy_holds():
    kw = dict(hosts=200, jobs=30_000, faulty_fraction=0.0, attacker_fraction=0.02, attacker_streak=20)
    boinc = simulate_adaptive(ConsecutiveValid(), rng=np.random.default_rng(2), **kw)
    resist = simulate_adaptive(Blacklist(ConsecutiveValid(min_check=0.05)), backtrack=True,
                               rng=np.random.default_rng(2), **kw)
    assert boinc["residual_error"] > 5 * max(resist["residual_error"], 1e-5)
    assert resist["banned"] > 0 and resist["backtracked"] > 0


def test_credibility_beats_voting_redundancy_at_f_035():
    r = simulate_credibility(workers=60, entries=3000, f=0.35, s=1.0, q=0.1, threshold=0.999,
                             rng=np.random.default_rng(0))
    assert r["unfinished"] == 0 and r["error_hi"] <= 0.01
    voting = min_m_for_error(0.001, 0.35)
    assert r["slowdown"] < voting  # M-first needs at least M replicas per entry


@pytest.mark.parametrize("bad", [dict(m=0, f=0.1), dict(m=2, f=1.5)])
def test_simulation_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        simulate_m_first(trials=10, rng=np.random.default_rng(0), **bad)


def test_honest_errors_set_a_floor_on_residual_error():
    """Unreplicated results are taken on trust: residual >= honest error rate x unreplicated share."""
    r = simulate_adaptive(ConsecutiveValid(), hosts=200, jobs=40_000, faulty_fraction=0.0, honest_error_rate=2e-3,
                          rng=np.random.default_rng(4))
    floor = 2e-3 * r["unreplicated_share"]
    lo, hi = wilson_interval(int(r["wrong_accepted"]), int(r["accepted"]), z=4)
    assert lo <= floor <= hi


def test_throttling_cuts_the_compute_wasted_on_failing_hosts():
    from vcompute.experiment.tasks.replication import make_preset

    kw = dict(hosts=200, jobs=20_000, faulty_fraction=0.05, fault_rate=1.0)
    plain = simulate_adaptive(make_preset("boinc_cv")[0], rng=np.random.default_rng(1), **kw)
    throttled = simulate_adaptive(make_preset("cv_throttle")[0], rng=np.random.default_rng(1), **kw)
    assert throttled["overhead"] < plain["overhead"] - 0.02
    assert throttled["residual_error"] == plain["residual_error"] == 0.0


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 15), f=st.floats(0, 1), s=st.floats(0, 1), split=st.floats(0, 1))
def test_coordinated_bound_dominates_every_job_decided_strategy(k, f, s, split):
    """C9: the bound is >= the independent formula and >= any two-level mixture with mean share f s."""
    bound = coordinated_majority_error(k, f, s)
    assert bound >= majority_error(k, f * s) - 1e-12
    # a ring that cheats with a share x of its members on some jobs and y on others, E[share] = f s
    x = f * s * split
    if f * s > 0 and x < f * s:
        for y in (f, (f + f * s) / 2):
            w = (f * s - x) / (y - x) if y > x else 1.0
            if 0 <= w <= 1:
                assert bound >= w * majority_error(k, y) + (1 - w) * majority_error(k, x) - 1e-9
    if f <= 0.5:
        assert bound == pytest.approx(s * majority_error(k, f))
    if k % 2:
        assert coordinated_m_first_error((k + 1) // 2, f, s) == pytest.approx(bound)


def test_coordinated_colluders_break_the_independent_formula_in_simulation():
    """C9, abstract model: the ring cheats together on a share s of jobs; majority of 3 over 200 000 jobs."""
    rng = np.random.default_rng(9)
    k, f, s, trials = 3, 0.3, 0.3, 200_000
    colluder = rng.random((trials, k)) < f
    ring_cheats = rng.random(trials) < s
    wrong = int(np.sum(ring_cheats & (colluder.sum(axis=1) > k // 2)))
    lo, hi = wilson_interval(wrong, trials)
    assert lo > 2.5 * majority_error(k, f * s)  # about 2.8x the independent claim
    assert lo <= coordinated_majority_error(k, f, s) <= hi


def test_coordinated_credibility_meets_its_target_where_the_independent_rule_does_not():
    """C9 for credibility: coordinated saboteurs break Sarmenta's target 1e-3; the coordinated rule meets it.

    f = 0.35, s = 0.05, q = 0.1, 100 workers, 3 seeds x 2000 entries pooled (20 turns per worker).
    """
    kw = dict(workers=100, entries=2000, f=0.35, s=0.05, q=0.1, threshold=0.999, coordinated=True)
    runs = {rule: [simulate_credibility(rule=rule, rng=np.random.default_rng(seed), **kw) for seed in range(3)]
            for rule in ("independent", "coordinated")}
    wrong = {rule: sum(round(r["error_rate"] * 2000) for r in rs) for rule, rs in runs.items()}
    assert wilson_interval(wrong["independent"], 6000)[0] > 1e-3  # the independent rule misses its target
    assert wilson_interval(wrong["coordinated"], 6000)[0] <= 1e-3 and wrong["coordinated"] < wrong["independent"]
    assert all(r["unfinished"] == 0 for r in runs["coordinated"])
    red = {rule: np.mean([r["redundancy"] for r in rs]) for rule, rs in runs.items()}
    assert red["coordinated"] > red["independent"]  # the price of dropping the independence discount
    tie = [coordinated_group_credibility([[5], [5]], i, f=0.2) for i in (0, 1)]
    assert tie[0] == tie[1] < 0.5  # two dissenting groups of equal standing: neither is credible
