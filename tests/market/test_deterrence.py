"""The deterrence claims of proofs/market.md, checked on whole market runs.

1. Cheating pays iff p * penalty < gain (penalty = slashed stake + forfeited price).
2. A strategic provider cheats exactly on that side of the line.
3. A provider cheating on every job is caught within k jobs with probability 1 - (1 - p d)^k.
"""

from __future__ import annotations

import math

import pytest

from vcompute.market.strategies import CHEAT_SAVINGS
from vcompute.market.config import HARDWARE, MarketParams
from vcompute.market.sim import Market

P_AUDIT, MARKUP, PFLOP = 0.2, 0.3, 300.0
A100 = HARDWARE["a100"]
COST = A100.hourly_cost / (A100.tflops * 3.6) * PFLOP
PRICE = COST * (1 + MARKUP)
GAIN = CHEAT_SAVINGS["random_output"] * COST


def _stake_for(ratio):
    """The stake making p * (stake + price) = ratio * gain."""
    return ratio * GAIN / P_AUDIT - PRICE


def _params(ratio, behaviour, *, fraction=0.5, jobs=3000):
    return MarketParams.model_validate({
        "jobs": jobs,
        "providers": {"count": 20, "hardware": {"a100": 1.0}, "markup": MARKUP, "markup_spread": 0.0},
        "consumers": {"count": 5, "audit_p": P_AUDIT, "stake_usd": _stake_for(ratio), "verifier": "freivalds",
                      "mix": [{"name": "t", "pflop": PFLOP, "memory_gb": 8}]},
        "adversary": {"behaviour": behaviour, "fraction": fraction, "cheat_rate": 1.0, "cheat": "random_output"},
        "matching": {"reputation_weight": 0.0},
    })


def _profit_per_job(mk, group):
    ps = [p for p in mk.providers if p.group == group]
    jobs = sum(p.jobs for p in ps)
    return sum((p.earned - p.slashed) / 10_000 - p.compute_cost for p in ps) / jobs


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_cheating_pays_iff_p_times_penalty_is_below_gain(ratio):
    mk = Market(_params(ratio, "lazy"), seed=0)
    mk.run()
    cheat, honest = _profit_per_job(mk, "lazy"), _profit_per_job(mk, "honest")
    # expected per-job advantage of cheating is gain - p * (stake + price) = (1 - ratio) * gain
    assert (cheat > honest) == (ratio < 1)
    assert cheat - honest == pytest.approx((1 - ratio) * GAIN, abs=0.25 * GAIN)


@pytest.mark.parametrize("ratio, expected", [(0.5, 1.0), (2.0, 0.0)])
def test_strategic_provider_cheats_exactly_below_the_line(ratio, expected):
    out = Market(_params(ratio, "strategic"), seed=0).run()
    assert out["cheat_rate_strategic"] == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("p, k", [(0.25, 16), pytest.param(0.05, 16, marks=pytest.mark.slow),
                                  pytest.param(0.05, 4, marks=pytest.mark.slow)])
def test_catch_probability_within_k_jobs(p, k):
    params = MarketParams.model_validate({
        "jobs": 9000, "providers": {"count": 300},
        "consumers": {"audit_p": p, "stake_usd": 0.01, "verifier": "freivalds"},
        "adversary": {"behaviour": "lazy", "fraction": 1.0, "cheat_rate": 1.0, "cheat": "random_output"},
        # one random bidder per job spreads the jobs evenly over the cheaters
        "matching": {"kind": "auction", "bidders": 1, "reputation_weight": 0.0},
    })
    mk = Market(params, seed=1)
    out = mk.run()
    theory = 1 - (1 - p) ** k  # Freivalds detects random_output with probability 1 (calibration table)
    n = sum(1 for q in mk.providers if q.cheats and (q.detect_latency_jobs is not None
                                                      or q.jobs - q.first_cheat_job + 1 >= k))
    assert n >= 200
    se = math.sqrt(theory * (1 - theory) / n)
    assert abs(out[f"caught_by_{k}"] - theory) <= 3.29 * se + 1.0 / n
    if (p, k) == (0.25, 16):
        assert out["caught_by_16"] >= 0.97  # Pocket's p = 0.25, k = 16: 99 %


def test_caught_within_is_an_unbiased_kaplan_meier_estimate_under_censoring():
    from types import SimpleNamespace as C

    import numpy as np

    from vcompute.market.metrics import caught_within

    rng = np.random.default_rng(0)
    cheaters = []
    for _ in range(5000):
        latency, seen = int(rng.geometric(0.1)), int(rng.integers(1, 31))  # censored at 1..30 jobs
        cheaters.append(C(detect_latency_jobs=latency if latency <= seen else None, jobs=seen, first_cheat_job=1))
    got = caught_within(cheaters, (1, 4, 16, 64))
    for k, v in zip((1, 4, 16), got):
        assert abs(v - (1 - 0.9 ** k)) < 0.02
    assert math.isnan(got[3])  # nobody was watched for 64 jobs


def test_caught_within_is_one_when_everyone_was_caught_early():
    from types import SimpleNamespace as C

    from vcompute.market.metrics import caught_within

    cs = [C(detect_latency_jobs=1, jobs=3, first_cheat_job=1), C(detect_latency_jobs=2, jobs=4, first_cheat_job=1)]
    assert caught_within(cs, (1, 2, 16)) == [0.5, 1.0, 1.0]
