"""The cloud tier, routing consumers and the all-in cost per correct result (vcompute.market.hybrid)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vcompute.market.cloud import CLOUD_PRICES, CloudConfig, cloud_price_usd
from vcompute.market.costs import COMPONENTS
from vcompute.market.hybrid import HybridParams, compare_policies
from vcompute.market.sim import Market, run_market

ROOT = Path(__file__).resolve().parents[2]
BASE = {"jobs": 400, "providers": {"count": 12}, "consumers": {"count": 2, "verifier": "freivalds", "audit_p": 0.5,
                                                                "stake_usd": 0.5},
        "adversary": {"behaviour": "lazy", "fraction": 0.3, "cheat": "random_output"}, "kind": "matmul"}


def _params(**upd) -> HybridParams:
    raw = {**BASE, **upd}
    return HybridParams.model_validate(raw)


def _run(p: HybridParams, routing: str, seed: int = 0) -> dict:
    return Market(p.routed(routing), seed).run()


def test_plain_market_has_no_hybrid_hooks_or_metrics():
    plain = {k: v for k, v in BASE.items() if k != "kind"}
    out = run_market(plain, seed=0)
    assert "cost_all_in" not in out and "cloud_share" not in out


def test_decentralized_routing_leaves_the_market_bit_for_bit_unchanged():
    """The hooks draw nothing from the market's generator: every market metric is the plain run's."""
    plain = {k: v for k, v in BASE.items() if k != "kind"}
    base = run_market(plain, seed=3)
    routed = Market(_params(kind="all").routed("decentralized"), 3).run()
    assert {k: routed[k] for k in base} == base
    assert routed["cloud_share"] == 0.0


def test_cloud_only_costs_the_list_price_per_job():
    p = _params(cloud={"availability": 1.0})
    out = _run(p, "cloud")
    price = cloud_price_usd(p.cloud, p.consumers.mix[0].pflop)  # the default mix's matmul entry
    assert out["cloud_share"] == 1.0 and out["results_correct"] == 400 and out["ledger_conserved"] == 1
    assert out["cost_all_in"] == pytest.approx(price, rel=1e-3)
    assert out["cost_fraud"] == out["cost_verification"] == out["cost_misses"] == 0.0


def test_cloud_outages_are_misses_valued_at_the_cloud_price():
    out = _run(_params(cloud={"availability": 0.8}), "cloud")
    assert 0 < out["cloud_outages"] < 400
    assert out["cost_misses"] > 0
    assert out["cost_all_in"] == pytest.approx(sum(out[f"cost_{c}"] for c in COMPONENTS))


def test_components_sum_to_the_all_in_cost_and_fraud_is_counted():
    out = _run(_params(), "decentralized")
    assert out["cost_all_in"] == pytest.approx(sum(out[f"cost_{c}"] for c in COMPONENTS))
    assert out["wrong_accepted"] > 0 and out["cost_fraud"] > 0 and out["cost_verification"] > 0
    assert out["cost_capital"] > 0 and out["cost_gas"] > 0  # settled on an L2 by default
    # The run's settlement also opened and funded every account: more than the jobs' own.
    assert 0 < out["cost_gas"] * out["results_correct"] < out["settlement_gas_usd"]


def test_settlement_gas_is_the_ledgers_operations_at_their_table_gas():
    """cost_gas = the jobs' ledger operations (the ledger's own counts) x table gas x gwei x ETH/USD."""
    from vcompute.ledger.gas import gas_table

    p = _params(settlement={"gas": {"chain": "l1", "gwei": 10.0, "eth_usd": 2000.0}})
    mk = Market(p.routed("hybrid"), 0)
    at_start = mk.settle.ledger.op_counts()
    counts = {}
    close = mk.settle.close
    mk.settle.close = lambda: (counts.update(mk.settle.ledger.op_counts()), close())
    out = mk.run()
    table = gas_table("VLedger")
    # arbiter, treasury, 12 providers (funded, staked), 2 consumers (funded), 3 auditors, the cloud
    assert at_start == {"open_account": 20, "mint": 14, "stake_deposit": 12}
    counts_on_chain = {**counts, "open_account": counts["open_account"] - 1,  # the cloud's account, bills
                       "transfer": counts["transfer"] - mk.hybrid.cloud.correct}
    run_gas = sum(n * table[k] for k, n in counts_on_chain.items())
    assert out["settlement_gas"] == run_gas and out["settlement_ops"] == sum(counts_on_chain.values())
    assert out["settlement_gas_usd"] == pytest.approx(run_gas * 10e-9 * 2000.0)
    jobs = {k: n - at_start.get(k, 0) for k, n in counts.items()}
    jobs["transfer"] -= mk.hybrid.cloud.correct  # the cloud's bills are off-chain
    assert mk.hybrid.cloud.correct > 0 and jobs["escrow_open"] > 0 and jobs["stake_slash"] > 0
    assert out["job_settlement_ops"] == sum(jobs.values())
    dec_gas = sum(n * table[k] for k, n in jobs.items())
    assert out["cost_gas"] == pytest.approx(dec_gas * 10e-9 * 2000.0 / out["results_correct"])


def test_l1_settlement_costs_the_gas_price_ratio_more_than_l2():
    l1 = _run(_params(settlement={"gas": {"chain": "l1"}}), "decentralized")
    l2 = _run(_params(settlement={"gas": {"chain": "l2"}}), "decentralized")
    free = _run(_params(settlement={"gas": {"gwei": 0.0}}), "decentralized")
    assert free["cost_gas"] == 0.0 and l2["settlement_gas"] == l1["settlement_gas"] > 0
    assert l1["cost_gas"] / l2["cost_gas"] == pytest.approx(3.0 / 0.01)  # the presets' gwei
    assert l1["cost_all_in"] == pytest.approx(free["cost_all_in"] + l1["cost_gas"])
    assert l1["cost_gas"] > l1["cost_compute"] > l2["cost_gas"]  # L1 settlement outweighs the compute


def test_a_flat_gas_price_per_operation_overrides_the_table():
    out = _run(_params(costs={"gas_usd_per_op": 1e-4}), "decentralized")
    free = _run(_params(settlement={"gas": {"gwei": 0.0}}), "decentralized")
    assert out["cost_gas"] == pytest.approx(out["job_settlement_ops"] * 1e-4 / out["results_correct"])
    assert out["cost_all_in"] == pytest.approx(free["cost_all_in"] + out["cost_gas"])


def test_gas_config_misuse_names_the_key():
    with pytest.raises(ValidationError, match="chain"):
        _params(settlement={"gas": {"chain": "l3"}})
    with pytest.raises(ValidationError, match="gwei"):
        _params(settlement={"gas": {"gwei": -1}})


def test_break_even_is_the_same_at_any_decentralized_price_level():
    """cpc_dec(s) = s A + B exactly: scaling every market price moves only the proportional part."""
    m, spread, s = 0.3, 0.2, 1.7
    lo = _run(_params(providers={"count": 12, "markup": m, "markup_spread": spread}), "decentralized")
    hi = _run(_params(providers={"count": 12, "markup": s * (1 + m) - 1, "markup_spread": s * spread}),
              "decentralized")
    assert hi["jobs_correct"] == lo["jobs_correct"]
    assert hi["price_discount"] < lo["price_discount"]
    # equal up to the ledger's integer price units (1e-4 USD per job)
    assert hi["break_even_discount"] == pytest.approx(lo["break_even_discount"], abs=1e-3)
    prop = ("compute", "replicas", "fraud")
    for c in COMPONENTS:
        want = s * lo[f"cost_{c}"] if c in prop else lo[f"cost_{c}"]
        assert hi[f"cost_{c}"] == pytest.approx(want, rel=1e-3, abs=1e-9), c


def test_hybrid_leaves_a_pool_of_cheaters_for_the_cloud():
    p = _params(jobs=1500, adversary={"behaviour": "lazy", "fraction": 0.8, "cheat": "random_output"})
    out = compare_policies(p, 0)
    assert out["cpc_decentralized"] > 2 * out["cpc_cloud"]
    assert out["share_cloud_hybrid"] > 0.8
    assert out["hybrid_margin"] <= 0.05


def test_hybrid_stays_on_an_honest_cheap_market():
    out = compare_policies(_params(jobs=1000, adversary={"behaviour": "honest", "fraction": 0.0}), 0)
    assert out["share_cloud_hybrid"] < 0.05 and out["hybrid_margin"] <= 0.0 + 1e-9


def test_without_audits_the_router_cannot_see_fraud():
    """It reads no hidden truth: with no audits, even a market of cheaters looks honest to it."""
    p = _params(jobs=600, consumers={"count": 2, "verifier": "freivalds", "audit_p": 0.0},
                adversary={"behaviour": "lazy", "fraction": 1.0, "cheat": "random_output"})
    out = _run(p, "hybrid")
    assert out["wrong_accepted"] > 500 and out["cloud_share"] == 0.0


def test_deadline_at_risk_falls_back_to_the_cloud():
    p = _params(jobs=800, providers={"count": 2}, consumers={"count": 2, "load": 3.0, "deadline_h": 0.5},
                adversary={"behaviour": "honest", "fraction": 0.0})
    dec, hyb = _run(p, "decentralized"), _run(p, "hybrid")
    assert dec["jobs_expired"] > 0
    assert hyb["fallback_share"] > 0 and hyb["jobs_expired"] < dec["jobs_expired"]
    assert hyb["cost_misses"] < dec["cost_misses"]


def test_per_consumer_policies_mix_in_one_market():
    out = _run(_params(routing=["cloud", "decentralized"]).model_copy(update={"compare": False}),
               ["cloud", "decentralized"])
    assert 0.3 < out["cloud_share"] < 0.7


@pytest.mark.parametrize("bad, word", [
    ({"routing": "nope"}, "nope"),
    ({"routing_params": {"fallback_at": 2.0}}, "fallback_at"),
    ({"routing_params": {"explore_log": -1}}, "explore_log"),
    ({"cloud": {"hardware": "tpu"}}, "tpu"),
    ({"costs": {"verifier_hardware": "abacus"}}, "abacus"),
    ({"kind": "training", "consumers": {"mix": [{"name": "m", "pflop": 1.0}]}}, "kind"),
])
def test_config_errors_name_the_field(bad, word):
    with pytest.raises((ValidationError, ValueError), match=word):
        _params(**bad)


def test_price_table_is_overridable_and_documented():
    assert {"h100", "a100", "l4", "t4", "rtx4090"} <= set(CLOUD_PRICES)
    assert all(p.reserved < p.on_demand for p in CLOUD_PRICES.values())
    c = CloudConfig(hardware="h100", pricing="reserved", prices={"h100": {"on_demand": 3.0, "reserved": 2.0}})
    assert c.hourly() == 2.0
    assert "2025" in (ROOT / "vcompute/market/cloud.py").read_text()


def test_smoke_grid_meets_the_two_percent_target():
    """The target of issue 19 on the audit cells of the smoke size of experiments/hybrid-breakeven.toml.

    The optimistic cells are simulated too but held to it only at 10^5 jobs: a router learns of a
    dispute one challenge window late, a large share of a 3 000-job run (proofs/market.md, condition
    (v); tests/market/test_hybrid_optimistic.py).
    """
    from vcompute.experiment.config import expand_runs, load_config
    from vcompute.experiment.tasks.market import MarketHybrid

    cfg = load_config(ROOT / "experiments/hybrid-breakeven.toml", smoke=True)
    margins, kinds, trusts = [], set(), set()
    for params, seed in [(r.params, r.seed) for r in expand_runs(cfg)]:
        out = MarketHybrid().run(HybridParams.model_validate(params), seed)
        if out["applicable"]:
            trusts.add(params["consumers"]["trust"])
            if params["consumers"]["trust"] == "audit":
                margins.append(out["hybrid_margin"])
                kinds.add(params["kind"])
    assert kinds == {"matmul", "generate", "train"} and trusts == {"audit", "optimistic"}
    assert margins and max(margins) <= 0.02, margins


def test_seeded_hybrid_runs_are_reproducible():
    p = _params(jobs=300)
    a, b = _run(p, "hybrid", seed=5), _run(p, "hybrid", seed=5)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)  # nan == nan
    assert _run(p, "hybrid", seed=6) != a


def test_unknown_router_parameter_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="bogus"):
        _params(routing_params={"bogus": 1})


MIX = [{"name": "m", "kind": "matmul", "pflop": 30.0}, {"name": "g", "kind": "generate", "pflop": 20.0},
       {"name": "t", "kind": "train", "pflop": 300.0, "memory_gb": 40}]


@pytest.mark.parametrize("kind, verifier", [("generate", "generate"), ("train", "pol"), ("training", "pol")])
def test_every_registered_kind_runs_with_its_calibrated_scheme(kind, verifier):
    """kind takes any registered kind (or an alias) and keeps only its mix entries."""
    from vcompute.experiment.tasks.market import MarketHybrid

    p = _params(jobs=150, kind=kind, consumers={**BASE["consumers"], "verifier": verifier, "mix": MIX})
    assert [j.kind for j in p.routed("hybrid").consumers.mix] == [{"training": "train"}.get(kind, kind)]
    out = MarketHybrid().run(p, 0)
    assert out["applicable"] == 1 and out["results_correct"] > 0
    assert out["cpc_cloud"] > 0 and out["cpc_decentralized"] > 0


@pytest.mark.parametrize("kind, verifier, by_kind, ok", [
    ("train", "freivalds", {}, False),          # a product check cannot check a training run
    ("matmul", "pol", {}, False),
    ("generate", "model", {}, False),
    ("train", "freivalds", {"training": "pol"}, True),   # the per-kind override is the scheme that checks it
    ("all", "freivalds", {"train": "pol", "generate": "generate"}, True),
    ("all", "freivalds", {"train": "pol"}, False),  # generate is still checked by freivalds
    ("matmul", "none", {}, True),
])
def test_a_scheme_that_cannot_check_the_kind_is_not_simulated(kind, verifier, by_kind, ok):
    from vcompute.experiment.tasks.market import MarketHybrid

    p = _params(jobs=50, kind=kind, consumers={**BASE["consumers"], "verifier": verifier, "mix": MIX,
                                               "verifier_by_kind": by_kind})
    assert p.applicable() is ok
    if not ok:
        out = MarketHybrid().run(p, 0)
        assert out["applicable"] == 0 and out["hybrid_margin"] != out["hybrid_margin"]


@pytest.mark.parametrize("kind, word", [("nope", "nope"), ("generate", "generate")])
def test_a_kind_unknown_or_missing_from_the_mix_is_a_config_error(kind, word):
    with pytest.raises((ValidationError, ValueError), match=word):
        _params(kind=kind)  # the default mix has no generate entry


def test_a_kind_name_that_lies_in_eq_selects_only_its_own_jobs():
    """A str subclass equal to everything becomes an exact str at the boundary: it cannot pull in other kinds."""
    class Liar(str):
        def __eq__(self, other):
            return True

        __hash__ = str.__hash__

    p = _params(kind=Liar("matmul"), consumers={**BASE["consumers"], "mix": MIX})
    assert type(p.kind) is str
    assert [j.kind for j in p.routed("hybrid").consumers.mix] == ["matmul"]
    assert p.applicable()
