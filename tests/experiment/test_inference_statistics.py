"""The escape statistics of ``inference.statistics``: the bound and the not-applicable screen."""

from __future__ import annotations

import math

import pytest

from vcompute.experiment.tasks.inference_statistics import escape_bound, not_applicable


def test_escape_bound_is_the_one_sided_clopper_pearson_bound():
    assert escape_bound(0, 3000) == pytest.approx(1 - 0.05 ** (1 / 3000)) and escape_bound(0, 3000) < 1e-3
    assert escape_bound(0, 2900) > 1e-3  # 3,000 escape-free jobs are what shows 99.9%
    # P(X <= 1 | n=10, p) = 0.05 at p = 0.3942 (tables of the binomial upper limit)
    assert escape_bound(1, 10) == pytest.approx(0.3942, abs=1e-4)
    p = escape_bound(3, 100)
    cdf = sum(math.comb(100, i) * p**i * (1 - p) ** (100 - i) for i in range(4))
    assert cdf == pytest.approx(0.05, abs=1e-9)
    assert escape_bound(5, 5) == 1.0 and math.isnan(escape_bound(0, 0))


def test_not_applicable_names_honest_work_and_exact_roundings():
    pytest.importorskip("torch")
    from vcompute.workloads.lm import LMConfig, TransformerLM, cast

    m = TransformerLM(LMConfig(vocab=300, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=16), seed=0)
    b16 = cast(m, "bfloat16")
    assert "honest computation" in not_applicable("low_precision", {"precision": "bfloat16"}, "bfloat16", "greedy", b16)
    assert "greedy" in not_applicable("greedy_for_sampled", {}, "float32", "greedy", m)
    assert not_applicable("greedy_for_sampled", {}, "float32", "sampled", m) == ""
    assert "0 of" in not_applicable("quantised", {"kind": "bfloat16"}, "bfloat16", "sampled", b16)
    assert not_applicable("quantised", {"kind": "bfloat16"}, "float32", "sampled", m) == ""  # fp32 weights move
    assert not_applicable("quantised", {"kind": "int8"}, "bfloat16", "sampled", b16) == ""


def test_statistics_report_band_uses_of_honest_claims():
    pytest.importorskip("torch")
    from vcompute.experiment.tasks.inference_statistics import InferenceStatistics, StatisticsParams

    p = StatisticsParams(adversary="honest", train_steps=0, trials=4, n_new=8, batch=2)
    m = InferenceStatistics().run(p, seed=0)
    assert m["escapes"] == 4 and m["by_band"] == 0.0
    assert m["band_uses"] == 0 and m["band_use_rate"] == 0.0 and m["band_hist"] == "0:4"


def test_statistics_split_off_rejections_by_the_bit_exactness_count():
    pytest.importorskip("torch")
    from vcompute.experiment.tasks.inference_statistics import InferenceStatistics, StatisticsParams
    from vcompute.verify.inference.tolerance import tolerance_for

    def run(adversary):
        p = StatisticsParams(adversary=adversary, train_steps=0, trials=4, n_new=8, batch=2, precisions=("bfloat16",))
        return InferenceStatistics().run(p, seed=0)

    honest = run("honest")
    assert honest["by_inexact"] == 0.0 and honest["min_inexact"] == 0  # torch against torch: bit for bit
    # a float16 model on a bf16 job: every entry within rtol; rejected only where too many are not bit-identical,
    # and since the allowance moved to 56 (an honest JAX chunk reached 49) it escapes on some jobs, with the
    # honest tokens and a worst chunk inside the allowance (proofs/inference.md, *Tolerances*)
    lp = run("low_precision:float16")
    assert lp["by_inexact"] == lp["by_activations"] >= 0.5
    assert lp["escapes"] == lp["escapes_same_tokens"] == round(lp["n"] * (1 - lp["by_inexact"]))
    assert lp["min_inexact"] <= tolerance_for("bfloat16").max_inexact
    # 3e-2 weight noise: rejected by entries beyond rtol, which is not the count
    wn = run("weight_noise:3e-2")
    assert wn["by_activations"] == 1.0 and wn["by_inexact"] == 0.0
