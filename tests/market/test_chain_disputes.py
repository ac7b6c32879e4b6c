"""The optimistic policy's disputes played on Dispute.vy in a real-mode market on an EVM ledger
(vcompute.market.chain_disputes; proofs/dispute.md, "Watchers in the market"): every provider commits its
trace, each dispute is played move by move on the contract, the market settles from the contract's outcome,
and the played games are compared with the modelled ones."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

pytest.importorskip("pyrevm")
pytest.importorskip("eth_abi")

from vcompute.market.config import MarketParams  # noqa: E402
from vcompute.market.optimistic import dispute_rounds  # noqa: E402
from vcompute.market.sim import Market  # noqa: E402

MIX = [{"name": "matmul", "kind": "matmul", "pflop": 30.0, "size": 16}]


def _params(mode="real", ledger="evm://", jobs=50, cheat="random_output", **opt):
    return MarketParams.model_validate({
        "mode": mode, "jobs": jobs, "providers": {"count": 8},
        "adversary": {"strategy": "lazy", "fraction": 0.4, "cheat_rate": 0.5, "cheat": cheat},
        "consumers": {"trust": "optimistic", "verifier": "none", "audit_p": 0.6, "mix": MIX},
        "optimistic": {"watchers": 2, "griefers": 1, "grief_p": 0.3, "trace_steps": 8, **opt},
        "settlement": {"ledger": ledger}})


@pytest.fixture(scope="module")
def played():
    m = Market(_params(), seed=1)
    return m, m.run()


def test_every_dispute_is_played_on_the_contract_and_agrees_with_the_model(played):
    m, out = played
    games = m.checking.optimistic.games
    assert games.commits == out["jobs_completed"]  # every optimistic result was committed on chain
    assert out["disputes_played"] == out["optimistic_disputes"] == len(games.games) > 0
    assert out["optimistic_disputes_won"] > 0 and out["optimistic_griefing"] > 0
    # outcome: the contract's winner is the honest party in every game, as the model says
    assert out["dispute_model_agree"] == 1.0 and out["optimistic_watchers_lost"] == 0
    assert all(g.winner == ("claimant" if g.griefed else "challenger") for g in games.games)
    # rounds: ceil(log2 8) = 3 in every game, the model's figure
    assert {g.rounds for g in games.games} == {dispute_rounds(8)} == {out["dispute_rounds"]}
    # gas: the float32 model within 15% of every played game
    assert all(abs(g.gas / g.modelled_gas - 1) < 0.15 for g in games.games)
    assert out["caught"] == out["optimistic_disputes_won"] and out["false_rejects"] == 0
    assert out["ledger_conserved"] == 1


def test_the_modelled_run_of_the_same_market_matches_the_played_one(played):
    """Same config in modelled mode (memory ledger): the same disputes won, the same rounds."""
    _, real = played
    modelled = Market(_params(mode="modelled", ledger="memory://"), seed=1).run()
    for k in ("optimistic_disputes_won", "optimistic_griefing", "caught", "wrong_accepted", "dispute_rounds"):
        assert modelled[k] == real[k], k
    assert "disputes_played" not in modelled


def test_the_market_follows_the_contract_when_a_watcher_loses(monkeypatch):
    """Watchers that stop moving lose their games on chain: the market pays the wrong result and takes the
    watcher's bond, as the contract decided, although the model says the watcher wins."""
    import vcompute.verify.dispute.float_players as fp

    real = fp.make_float_player
    monkeypatch.setattr(fp, "make_float_player", lambda s, *a, **k: real("absent" if s == "honest" else s, *a, **k))
    out = Market(_params(jobs=30, griefers=0), seed=2).run()
    assert out["disputes_played"] > 0 and out["optimistic_disputes_won"] == 0 and out["caught"] == 0
    assert out["optimistic_watchers_lost"] == out["disputes_played"] and out["dispute_model_agree"] == 0.0
    assert out["watcher_profit"] < 0 and out["ledger_conserved"] == 1


@pytest.mark.parametrize("cheat", ["skip_k", "low_precision"])
def test_each_cheat_class_loses_its_game(cheat):
    out = Market(_params(jobs=25, cheat=cheat, griefers=0), seed=3).run()
    assert out["disputes_played"] == out["optimistic_disputes_won"] == out["caught"] > 0
    assert out["dispute_model_agree"] == 1.0


@pytest.mark.parametrize("over, word", [
    ({"settlement": {"ledger": "memory://"}}, "evm://tester"),
    ({"consumers": {"trust": "optimistic", "mix": [{"name": "g", "kind": "generate", "pflop": 1.0}]}},
     "no dispute game decides 'generate'"),
    ({"consumers": {"trust": "optimistic", "mix": [{"name": "t", "kind": "train", "pflop": 1.0}]}},
     "kinds with one: forward, matmul"),
    ({"consumers": {"trust": "optimistic", "mix": [{"name": "f", "kind": "forward", "pflop": 1.0,
                                                    "size": "medium"}]}}, "widths <= 256"),
    ({"consumers": {"trust": "optimistic", "mix": [{"name": "m", "kind": "matmul", "pflop": 1.0, "size": 256}]}},
     "n <= 128"),
    ({"optimistic": {"trace_steps": 32}}, "trace_steps"),
])
def test_a_real_optimistic_market_that_cannot_play_its_disputes_is_refused(over, word):
    d = {"mode": "real", "settlement": {"ledger": "evm://"}, "consumers": {"trust": "optimistic", "mix": MIX}}
    d.update(over)
    with pytest.raises(ValidationError, match=word):
        MarketParams.model_validate(d)


# -- forward jobs: the ReLU MLP's disputes played operator by operator on OperatorGame.vy ----------------------

FWD = [{"name": "fwd", "kind": "forward", "pflop": 30.0, "size": "small"}]


def _fwd(jobs=40, cheat="random_output", **opt):
    p = _params(jobs=jobs, cheat=cheat, **opt).model_dump()
    p["consumers"]["mix"] = FWD
    return MarketParams.model_validate(p)


@pytest.fixture(scope="module")
def played_forward():
    m = Market(_fwd(), seed=1)
    return m, m.run()


def test_forward_disputes_are_played_on_the_operator_game_and_the_contract_settles_them(played_forward):
    """A cheating forward provider is slashed by OperatorGame.vy and an honest one is paid despite a griefer."""
    m, out = played_forward
    games = m.checking.optimistic.games
    ch = games.chain
    assert games.commits == out["jobs_completed"] and {g.kind for g in games.games} == {"forward"}
    assert out["disputes_played"] == out["disputes_played_forward"] == len(games.games) > 0
    # every watcher's game slashed the cheater on chain; every griefer's game left the honest claim standing
    assert out["optimistic_disputes_won"] > 0 and out["optimistic_griefing"] > 0
    assert out["honest_lost"] == out["cheater_won"] == 0 and out["dispute_model_agree"] == 1.0
    assert out["caught"] == out["optimistic_disputes_won"] and out["false_rejects"] == 0
    assert out["griefer_profit"] < 0 < out["watcher_profit"] and out["ledger_conserved"] == 1
    # the games are OperatorGame.vy's: their claims are recorded there (slashed or standing), none in Dispute.vy
    slashed = sum(g.winner == "challenger" for g in games.games)
    assert slashed == out["optimistic_disputes_won"]
    assert ch.view("move_timeout", on="game") == 3600
    # rounds: at most ceil(log2 5) = 3 over the 5 operators of a 64 -> 128 -> 10 ReLU MLP
    assert out["dispute_rounds"] == 3 and 1 <= out["dispute_rounds_played"] <= out["dispute_rounds_max"] <= 3
    # gas: the operator game's model within 15% of the games' mean and within 0.6-1.6 of every one (the element
    # check of a lin grows with its inner width, a relu's does not, and a game the challenger wins also pays for
    # the check of its own element)
    assert abs(out["dispute_gas_played"] / out["dispute_gas_modelled"] - 1) < 0.15
    assert all(0.6 < g.gas / g.modelled_gas < 1.6 for g in games.games)


@pytest.mark.parametrize("cheat", ["skip_k", "low_precision"])
def test_each_forward_cheat_class_loses_its_game(cheat):
    out = Market(_fwd(jobs=25, cheat=cheat, griefers=0), seed=3).run()
    assert out["disputes_played_forward"] == out["optimistic_disputes_won"] == out["caught"] > 0
    assert out["honest_lost"] == out["cheater_won"] == 0


def test_the_market_follows_the_operator_game_when_a_watcher_loses(monkeypatch):
    """Forward watchers that stop moving lose on OperatorGame.vy: the market pays the wrong result."""
    import vcompute.verify.dispute.op_players as op

    real = op.make_op_player
    monkeypatch.setattr(op, "make_op_player",
                        lambda s, *a, **k: real("absent" if s == "honest" and k.get("name", "")[:1] == "w" else s,
                                                *a, **k))
    out = Market(_fwd(jobs=30, griefers=0), seed=2).run()
    assert out["disputes_played"] > 0 and out["optimistic_disputes_won"] == 0 and out["caught"] == 0
    assert out["optimistic_watchers_lost"] == out["disputes_played"] == out["honest_lost"]
    assert out["cheater_won"] == out["disputes_played"] and out["ledger_conserved"] == 1


def test_a_mix_of_matmul_and_forward_plays_each_kind_on_its_own_contract():
    p = _params(jobs=40).model_dump()
    p["consumers"]["mix"] = MIX + FWD
    m = Market(MarketParams.model_validate(p), seed=4)
    out = m.run()
    assert out["disputes_played_matmul"] > 0 and out["disputes_played_forward"] > 0
    assert out["disputes_played"] == out["disputes_played_matmul"] + out["disputes_played_forward"]
    assert out["honest_lost"] == out["cheater_won"] == 0 and out["ledger_conserved"] == 1
    # matmul's games end in one FloatStep.vy element over trace_steps = 8 blocks, forward's over 5 operators
    assert out["dispute_rounds_played_matmul"] == dispute_rounds(8)
    assert out["dispute_rounds_played_forward"] <= 3
