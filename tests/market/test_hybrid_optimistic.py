"""The optimistic trust policy as a cell of the break-even grid (vcompute.market.hybrid, issue 19).

Which kinds it applies to, that its watchers' compute, its disputes' gas and its time to finality are
in the all-in cost, and what the router sees of its disputes.
"""

from __future__ import annotations

import pytest

from vcompute.market.hybrid import DISPUTE_DECIDES, HybridParams, compare_policies
from vcompute.market.sim import Market

MIX = [{"name": "m", "kind": "matmul", "pflop": 30.0}, {"name": "f", "kind": "forward", "pflop": 60.0},
       {"name": "g", "kind": "generate", "pflop": 20.0}, {"name": "t", "kind": "train", "pflop": 300.0,
                                                          "memory_gb": 40}]
BASE = {"jobs": 600, "providers": {"count": 12},
        "consumers": {"count": 2, "verifier": "replication", "audit_p": 0.5, "stake_usd": 0.5, "mix": MIX,
                      "trust": "optimistic"},
        "adversary": {"strategy": "lazy", "fraction": 0.3, "cheat": "random_output"}, "kind": "matmul"}


def _params(**upd) -> HybridParams:
    raw = {**BASE, **upd}
    raw["consumers"] = {**BASE["consumers"], **upd.get("consumers", {})}
    return HybridParams.model_validate(raw)


def _run(p: HybridParams, routing: str, seed: int = 0) -> tuple[dict, Market]:
    mk = Market(p.routed(routing), seed)
    return mk.run(), mk


@pytest.mark.parametrize("kind, verifier, ok", [
    ("matmul", "replication", True),  # re-executing watchers
    ("matmul", "freivalds", True),
    ("matmul", "spotcheck", True),
    ("matmul", "none", True),  # "none": watchers re-execute too
    ("matmul", "pol", False),  # PoL cannot check a product, as under audits
    ("forward", "replication", True),  # a ReLU MLP: the operator game decides it (C12)
    ("forward", "model", True),  # the watchers' first look: whole-model Freivalds
    ("forward", "freivalds", False),  # not one of forward's verifiers
    ("generate", "generate", False),  # the game decides the prefill, not the sampled tokens
    ("train", "pol", False),  # a torch PoL step is nonlinear (proofs/dispute.md, Not covered)
])
def test_the_optimistic_policy_applies_only_to_kinds_the_dispute_game_decides(kind, verifier, ok):
    p = _params(kind=kind, consumers={"verifier": verifier})
    assert p.applicable() is ok
    assert (kind in DISPUTE_DECIDES) or not ok
    # the same cell under audits is decided by the kind's verifiers alone (replication is one of
    # forward's; "none" checks anything)
    audit = _params(kind=kind, consumers={"verifier": verifier, "trust": "audit"})
    assert audit.applicable() is (verifier == "none" or verifier in {
        "matmul": ("freivalds", "spotcheck", "replication"), "forward": ("model", "replication"),
        "generate": ("generate",), "train": ("pol",)}[kind])


def test_a_cell_that_does_not_apply_is_not_simulated():
    from vcompute.experiment.tasks.market import MarketHybrid

    out = MarketHybrid().run(_params(kind="generate", consumers={"verifier": "generate"}), seed=0)
    assert out["applicable"] == 0 and out["hybrid_margin"] != out["hybrid_margin"]


def test_watchers_compute_and_dispute_gas_are_in_the_all_in_cost():
    """Nobody bills the consumer for watching: the breakdown adds the watchers' compute and the games' gas."""
    out, mk = _run(_params(settlement={"gas": {"chain": "l2"}}), "decentralized")
    n = out["results_correct"]
    assert out["optimistic_disputes_won"] > 0 and out["watch_compute_usd"] > 0 and out["dispute_gas_usd"] > 0
    assert mk.m.verify_compute_usd == 0.0  # no audit ran: all checking compute is the watchers'
    assert out["cost_verification"] * n == pytest.approx(out["watch_compute_usd"], rel=1e-9)
    free, _ = _run(_params(settlement={"gas": {"gwei": 0.0}}), "decentralized")
    assert free["dispute_gas_usd"] == 0.0 and free["cost_gas"] == 0.0
    # at the L2 price the games' gas comes on top of the jobs' settlement operations
    settle = out["cost_gas"] * n - out["dispute_gas_usd"]
    assert settle > 0
    assert free["cost_verification"] * free["results_correct"] == pytest.approx(free["watch_compute_usd"], rel=1e-9)


def test_a_result_final_after_the_finality_deadline_is_a_miss():
    """A challenge window longer than the deadline makes every market result late: paid for, yet a miss."""
    on_time, _ = _run(_params(costs={"finality_deadline_h": 4.0}), "decentralized")
    late, _ = _run(_params(costs={"finality_deadline_h": 0.5}), "decentralized")  # window: 1 h
    never, _ = _run(_params(), "decentralized")
    assert never["late_share"] == 0.0 and on_time["late_share"] < 0.05
    assert late["late_share"] > 0.5 and late["results_correct"] == 0  # none final within 30 min
    assert late["cost_misses"] > on_time["cost_misses"] or late["cost_all_in"] != late["cost_all_in"]
    # an audited market settles within minutes: the same deadline costs it nothing
    audit, _ = _run(_params(costs={"finality_deadline_h": 0.5}, consumers={"trust": "audit"}), "decentralized")
    assert audit["late_share"] < 0.05 and audit["results_correct"] > 0


def test_the_router_leaves_an_optimistic_market_of_late_results_for_the_cloud():
    p = _params(jobs=1500, adversary={**BASE["adversary"], "fraction": 0.0}, costs={"finality_deadline_h": 0.5})
    out = compare_policies(p, seed=0)
    assert out["cpc_decentralized"] != out["cpc_decentralized"]  # no market result is on time: nan
    assert out["share_cloud_hybrid"] > 0.8 and out["cpc_hybrid"] < 1.2 * out["cpc_cloud"]


def test_an_honest_optimistic_market_keeps_the_router():
    out = compare_policies(_params(jobs=1500, adversary={**BASE["adversary"], "fraction": 0.0}), seed=0)
    assert out["share_cloud_hybrid"] == 0.0 and out["hybrid_margin"] <= 0.02


def test_a_dispute_is_evidence_when_its_window_closes_and_is_counted_once():
    """The router counts a disputed result when its window closes (public on chain), hours before the
    game ends; once the game has ended its counts are exactly those of a settlement seen only then."""
    out, mk = _run(_params(jobs=1500), "hybrid")
    hooks = mk.hybrid
    assert out["optimistic_disputes_won"] > 0 and not hooks.disputed and not hooks.open
    for view in hooks.views.values():
        s = view.seen["matmul"]
        # every market job resolved once: settled with a result or without, or expired
        assert s.claims == s.audited == s.resolved - s.failed
        assert 0 < s.caught <= s.noresult
    # the provisional count is replaced, not added to: a disputed-then-settled job counts as one
    view = next(iter(hooks.views.values()))
    job = type("J", (), {"jtype": mk.p.consumers.mix[0], "key": -1})()
    before = {k: getattr(view.seen["matmul"], k) for k in ("resolved", "noresult", "audited", "claims", "caught")}
    view.disputed(job)
    mid = {k: getattr(view.seen["matmul"], k) for k in before}
    assert all(mid[k] == before[k] + 1 for k in before)
    view.settled(job, True, [False], paid_usd=0.0, verify_usd=0.0, result=False, disputed=True)
    assert {k: getattr(view.seen["matmul"], k) for k in before} == mid


def test_a_thin_flow_meets_a_worse_market_of_lazy_cheaters():
    """Condition (vi) of proofs/market.md: the share of the market's results that cheat depends on the flow.

    A lazy cheater answers at once and so is idle first: it wins most jobs of a thin flow, while a full
    flow locks its funds in stakes under dispute. What the router sees is that thin market, not the
    decentralized-only policy's.
    """
    p = _params(jobs=3000)
    full, _ = _run(p, "decentralized")
    thin, _ = _run(p, "hybrid")
    assert full["dec_share"] == 1.0 and thin["dec_share"] < 0.2
    assert thin["cheat_rate"] > full["cheat_rate"] + 0.15, (thin["cheat_rate"], full["cheat_rate"])


def test_dispute_decides_the_built_in_kinds_that_declare_a_dispute_game():
    """DISPUTE_DECIDES is what the kinds' own hooks say, not a second list to keep in step."""
    from vcompute.market.hybrid import dispute_decides
    from vcompute.workloads.kinds import get_kind

    builtin = ("matmul", "forward", "generate", "train")
    assert DISPUTE_DECIDES == {k for k in builtin if get_kind(k).dispute} == {"matmul", "forward"}
    assert [dispute_decides(k) for k in builtin] == [True, True, False, False]


def test_a_forward_cell_is_charged_the_operator_games_rounds_and_gas():
    """Modelled mode: a forward dispute takes ceil(log2 5) = 3 rounds over the ReLU MLP's 5 operators, at the
    operator game's measured gas, not the matmul layer game's ceil(log2 trace_steps) rounds and 2.35M gas."""
    from vcompute.market.optimistic import dispute_gas
    from vcompute.verify.dispute.market import dispute_for

    out, mk = _run(_params(kind="forward", settlement={"gas": {"chain": "l2"}}), "decentralized")
    opt = mk.checking.optimistic
    game = opt._games["f"]
    fwd = dispute_for("forward")
    assert out["optimistic_disputes_won"] > 0 and out["dispute_rounds"] == game.rounds == 3
    assert game.gas_usd == pytest.approx(fwd.modelled_gas("small", 32) * opt.usd_per_gas)
    assert fwd.modelled_gas("small", 32) < dispute_gas(32) / 2
    assert out["dispute_gas_usd"] == pytest.approx(out["optimistic_disputes"] * game.gas_usd, rel=1e-9)
