"""Invalid market configs fail at validation, before anything runs, with a clear message."""

from __future__ import annotations

import pydantic
import pytest

from vcompute.market.config import MarketParams


@pytest.mark.parametrize("bad, needle", [
    ({"consumers": {"stake_usd": -1.0}}, "stake_usd"),
    ({"auditors": {"fee_usd": -0.5}}, "fee_usd"),
    ({"auditors": {"jackpot_usd": -5}}, "jackpot_usd"),
    ({"consumers": {"max_price_usd_per_pflop": 0}}, "max_price_usd_per_pflop"),
    ({"providers": {"markup": -0.1}}, "markup"),
    ({"consumers": {"audit_p": 1.5}}, "audit_p"),
    ({"consumers": {"audit_p": -0.01}}, "audit_p"),
    ({"auditors": {"forced_error_rate": 2}}, "forced_error_rate"),
    ({"adversary": {"fraction": 1.2}}, "fraction"),
    ({"adversary": {"cheat_rate": -0.2}}, "cheat_rate"),
    ({"providers": {"crash_rate": 1.1}}, "crash_rate"),
])
def test_negative_prices_and_bad_probabilities_are_rejected(bad, needle):
    with pytest.raises(pydantic.ValidationError) as e:
        MarketParams.model_validate(bad)
    assert needle in str(e.value)


def test_unknown_behaviour_lists_the_known_ones():
    with pytest.raises(pydantic.ValidationError) as e:
        MarketParams.model_validate({"adversary": {"behaviour": "sneaky"}})
    msg = str(e.value)
    assert "sneaky" in msg and "strategic" in msg and "streak_then_cheat" in msg


def test_unknown_verifier_hardware_matcher_and_key_are_rejected():
    with pytest.raises(pydantic.ValidationError, match="unknown verifier 'magic'.*freivalds"):
        MarketParams.model_validate({"consumers": {"verifier": "magic"}})
    with pytest.raises(pydantic.ValidationError, match="unknown hardware class 'tpu'"):
        MarketParams.model_validate({"providers": {"hardware": {"tpu": 1.0}}})
    with pytest.raises(pydantic.ValidationError, match="kind"):
        MarketParams.model_validate({"matching": {"kind": "lottery"}})
    with pytest.raises(pydantic.ValidationError, match="audit_prob"):
        MarketParams.model_validate({"consumers": {"audit_prob": 0.1}})


def test_job_larger_than_any_gpu_is_rejected():
    with pytest.raises(pydantic.ValidationError, match="needs 40.0 GB"):
        MarketParams.model_validate({"providers": {"hardware": {"rtx4090": 1.0}}})


def test_experiment_config_with_bad_market_params_fails_before_running(tmp_path):
    from vcompute.experiment.config import load_config

    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        "# Reproduces: nothing.\n# Run: vcompute run experiments/bad.toml\n"
        '[experiment]\nname = "bad"\ntask = "market.run"\nseeds = 1\n'
        "[params]\njobs = 10\n"
        '[grid]\n"consumers.audit_p" = [0.1, 1.5]\n'
        "[smoke]\n\"experiment.seeds\" = 1\n")
    with pytest.raises(Exception, match="audit_p"):
        load_config(cfg)


def test_dotted_grid_keys_reach_nested_params(tmp_path):
    from vcompute.experiment.config import load_config

    cfg = tmp_path / "ok.toml"
    cfg.write_text(
        "# Reproduces: nothing.\n# Run: vcompute run experiments/ok.toml\n"
        '[experiment]\nname = "ok"\ntask = "market.run"\nseeds = 1\n'
        "[params]\njobs = 10\n"
        '[grid]\n"consumers.audit_p" = [0.1, 0.5]\n"adversary.strategy" = ["lazy", "strategic"]\n'
        "[smoke]\n\"experiment.seeds\" = 1\n")
    load_config(cfg)  # validates every grid point against MarketParams


def test_verifier_by_kind_is_validated():
    with pytest.raises(pydantic.ValidationError, match="unknown job kind 'video'"):
        MarketParams.model_validate({"consumers": {"verifier_by_kind": {"video": "pol"}}})
    with pytest.raises(pydantic.ValidationError, match="unknown verifier 'magic'"):
        MarketParams.model_validate({"consumers": {"verifier_by_kind": {"training": "magic"}}})
    p = MarketParams.model_validate({"consumers": {"verifier_by_kind": {"training": "pol", "matmul": "default"}}})
    assert p.consumers.verifier_by_kind["training"] == "pol"
