"""Strategies (when a provider cheats): the strategic rule, collusion, streaks; the old names still work."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vcompute.core.registry import UnknownPluginError
from vcompute.market.strategies import STRATEGIES, CheatOffer, unit_hash
from vcompute.market.config import AdversaryConfig


def _offer(gain, loss, p, d=1.0, key=0):
    return CheatOffer(key, gain_usd=gain, loss_usd=loss, announced_p=p, detect_p=d)


@given(gain=st.floats(0, 100), loss=st.floats(0, 1000), p=st.floats(0, 1), d=st.floats(0, 1))
def test_strategic_cheats_exactly_when_gain_beats_expected_loss(gain, loss, p, d):
    s = STRATEGIES.get("strategic")(AdversaryConfig(strategy="strategic"))
    assert s.decide(_offer(gain, loss, p, d), np.random.default_rng(0)) == (gain > p * d * loss)


def test_strategic_learns_the_audit_rate_it_observes():
    s = STRATEGIES.get("strategic")(AdversaryConfig(strategy="strategic"), prior_jobs=10)
    offer = _offer(gain=1.0, loss=5.0, p=0.5)  # announced: 0.5 * 5 = 2.5 > 1, stay honest
    rng = np.random.default_rng(0)
    assert not s.decide(offer, rng)
    for _ in range(200):  # auditors announced 0.5 but never check
        s.observe(audited=False, caught=False)
    assert s.p_hat(0.5) < 0.05
    assert s.decide(offer, rng)


def test_colluders_cheat_on_the_same_jobs():
    cfg = AdversaryConfig(strategy="colluding", cheat_rate=0.3)
    a, b = (STRATEGIES.get("colluding")(cfg, seed=42) for _ in range(2))
    rng = np.random.default_rng(0)
    da = [a.decide(_offer(1, 1, 0, key=k), rng) for k in range(2000)]
    db = [b.decide(_offer(1, 1, 0, key=k), rng) for k in range(2000)]
    assert da == db
    assert 0.25 < np.mean(da) < 0.35


def test_streak_then_cheat_is_honest_for_the_streak():
    s = STRATEGIES.get("streak_then_cheat")(AdversaryConfig(strategy="streak_then_cheat", streak=7))
    rng = np.random.default_rng(0)
    out = [s.decide(_offer(1, 1, 0), rng) for _ in range(20)]
    assert out == [False] * 7 + [True] * 13


def test_lazy_cheat_rate_and_honest_never():
    rng = np.random.default_rng(1)
    lazy = STRATEGIES.get("lazy")(AdversaryConfig(strategy="lazy", cheat_rate=0.2))
    honest = STRATEGIES.get("honest")(AdversaryConfig())
    assert 0.17 < np.mean([lazy.decide(_offer(1, 1, 0), rng) for _ in range(4000)]) < 0.23
    assert not any(honest.decide(_offer(1e9, 0, 0), rng) for _ in range(100))
    assert lazy.cheat == "skip_k" and STRATEGIES.get("low_precision")().cheat == "low_precision"


def test_unknown_strategy_raises_listing_known():
    with pytest.raises(UnknownPluginError, match="strategic"):
        STRATEGIES.get("nope")


def test_unit_hash_is_uniform_enough():
    xs = np.array([unit_hash(7, k) for k in range(20000)])
    assert xs.min() >= 0 and xs.max() < 1
    assert abs(xs.mean() - 0.5) < 0.01


def test_the_old_module_and_key_still_work():
    from pydantic import ValidationError

    import importlib
    import sys

    from vcompute.market.config import MarketParams

    sys.modules.pop("vcompute.market.behaviours", None)
    with pytest.warns(DeprecationWarning, match="vcompute.market.strategies"):
        behaviours = importlib.import_module("vcompute.market.behaviours")

    assert behaviours.MARKET_BEHAVIOURS is STRATEGIES and behaviours.CHEAT_SAVINGS["random_output"] == 0.95
    old = MarketParams.model_validate({"adversary": {"behaviour": "lazy"}})
    assert old == MarketParams.model_validate({"adversary": {"strategy": "lazy"}})
    with pytest.raises(ValidationError, match="give 'strategy' only"):
        MarketParams.model_validate({"adversary": {"strategy": "lazy", "behaviour": "honest"}})


def test_vcompute_list_shows_the_strategies():
    from vcompute.cli import REGISTRIES

    assert REGISTRIES["strategies"] == ("vcompute.market.strategies", "STRATEGIES")
