"""Sampled-glue layer checks (proofs/inference-glue.md): honest traces accepted, real cheating providers caught."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vcompute.core.types import Claim  # noqa: E402
from vcompute.verify.base import VerifyContext  # noqa: E402
from vcompute.verify.inference.glue import GLUE_RTOL, SampledGlue  # noqa: E402
from vcompute.verify.inference.glue_trace import trace_prefill  # noqa: E402
from vcompute.workloads.lm import LMConfig, TransformerLM, cast, generate, make_generate_job, prefill  # noqa: E402

CFG = LMConfig(vocab=300, d_model=32, n_layers=2, n_heads=4, d_ff=128, max_len=128)
T = 64


@pytest.fixture(scope="module")
def model():
    return TransformerLM(CFG, seed=0)


@pytest.fixture(scope="module")
def ids():
    return np.random.default_rng(0).integers(0, CFG.vocab, T)


def _rows_of(rows):
    def wrong(layer, x):
        y = x.clone()
        y[rows] = y[rows] * 1.01
        return y
    return wrong


def test_honest_trace_matches_the_model_and_is_accepted(model, ids):
    tr = trace_prefill(model, ids)
    assert np.array_equal(tr["logits"], prefill(model, ids).logits)  # the same ops as TransformerLM.run
    for seed in range(5):
        v = SampledGlue(rows=8).check(model, ids, tr, challenge_seed=seed)
        assert v.accepted, v.reason
        assert v.details["max_glue_error_ratio"] < 0.1  # honest error is far inside GLUE_RTOL
    assert SampledGlue(rows=None).check(model, ids, tr, challenge_seed=0).accepted


def _lazy_gelu(layer, x):
    # a cheaper GELU (sigmoid approximation) on every row of layer 1
    return x * torch.sigmoid(1.702 * x) if layer == 1 else torch.nn.functional.gelu(x, approximate="tanh")


def _short_window(layer, q, k, v, h):
    # attention that only sees the last 4 keys (a dropped KV cache) on every row >= 4 of layer 0
    t, d = q.shape
    q, k, v = (z.view(1, t, h, d // h).transpose(1, 2) for z in (q, k, v))
    i = torch.arange(t)
    mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - 4 if layer == 0 else True)
    att = (q @ k.transpose(-1, -2)) / (d // h) ** 0.5
    att = att.masked_fill(~mask, float("-inf")).softmax(-1)
    return (att @ v).transpose(1, 2).reshape(t, d)


def _skip_block(layer, t):
    if layer != 1:
        return t
    zeros = {k: torch.zeros_like(v) for k, v in t.items()}
    zeros.update(ln1=t["ln1"], mid=t["mid"] - t["attn_out"], ln2=t["ln2"])  # cheap parts kept; output = input
    zeros["out"] = zeros["mid"]
    return zeros


@pytest.mark.parametrize("glue,where", [
    ({"gelu": _lazy_gelu}, "layer 1 gelu"),
    ({"attention": _short_window}, "layer 0 attention"),
    ({"block": _skip_block}, "layer 1"),
    ({"layer_norm": lambda layer, which, x, mod: mod(x) * (1.02 if which == "ln_f" else 1.0)}, "final ln"),
])
def test_a_wrong_op_on_every_row_is_caught(model, ids, glue, where):
    v = SampledGlue(rows=4).check(model, ids, trace_prefill(model, ids, glue=glue), challenge_seed=0)
    assert not v.accepted and where in v.reason, v.reason


def test_a_wrong_layernorm_on_a_fraction_of_rows_escapes_at_most_as_often_as_the_bound(model, ids):
    # ln2 of layer 0 wrong on f = 8/64 rows; s = 4 sampled rows: escape <= (1 - f)^s = 0.586 per check
    bad_rows = np.arange(0, T, 8)
    def ln(layer, which, x, mod):
        y = mod(x)
        if (layer, which) == (0, "ln2"):
            y[bad_rows] = y[bad_rows] * 1.01
        return y
    tr = trace_prefill(model, ids, glue={"layer_norm": ln})
    n = 200
    caught = sum(not SampledGlue(rows=4).check(model, ids, tr, challenge_seed=s).accepted for s in range(n))
    bound = (1 - len(bad_rows) / T) ** 4
    escape = 1 - caught / n
    assert escape <= bound + 3 * np.sqrt(bound * (1 - bound) / n)  # within 3 standard errors of the bound
    assert caught > 0
    # every rejection names the lying op
    assert "layer 0 ln2" in SampledGlue(rows=None).check(model, ids, tr, challenge_seed=0).reason


def test_a_wrong_linear_output_is_caught_by_freivalds_on_any_row(model, ids):
    tr = trace_prefill(model, ids)
    tr["fc"] = tr["fc"].copy()
    tr["fc"][1, 37, 5] += 1e-3  # one entry of one row; gelu recomputed from it, so only Freivalds can see it
    tr["gelu"] = tr["gelu"].copy()
    x = tr["fc"][1, 37].astype(np.float64)
    tr["gelu"][1, 37] = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    v = SampledGlue(rows=1).check(model, ids, tr, challenge_seed=0)
    assert not v.accepted and "layer 1 c_fc: Freivalds" in v.reason, v.reason


def _wrong_fc(tr, cols=((5, 1e-3),)):
    """``tr`` with row 37 of layer 1's c_fc output moved at ``cols`` (gelu recomputed, so only Freivalds sees it)."""
    tr = {**tr, "fc": tr["fc"].copy(), "gelu": tr["gelu"].copy()}
    for col, delta in cols:
        tr["fc"][1, 37, col] += delta
    x = tr["fc"][1, 37].astype(np.float64)
    tr["gelu"][1, 37] = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    return tr


def test_check_many_gives_each_trace_its_own_verdict(model, ids):
    short = np.random.default_rng(5).integers(0, CFG.vocab, 48)
    honest = trace_prefill(model, ids)
    items = [(ids, honest), (short, trace_prefill(model, short)), (ids, _wrong_fc(honest)), (ids, None),
             (ids, trace_prefill(model, ids, glue={"gelu": _lazy_gelu}))]
    vs = SampledGlue(rows=4).check_many(model, items, challenge_seed=3)
    assert [v.accepted for v in vs] == [True, True, False, False, False]
    assert "layer 1 c_fc: Freivalds" in vs[2].reason and "NoneType" in vs[3].reason and "layer 1 gelu" in vs[4].reason
    assert vs[0].cost.flops > vs[1].cost.flops > 0  # the shared W R pass is counted once, in the first trace
    with pytest.raises(TypeError, match="items"):
        SampledGlue().check_many(model, (ids, honest), challenge_seed=0)
    with pytest.raises(TypeError, match="items"):
        SampledGlue().check_many(model, [], challenge_seed=0)


def _cancelling_mlp_out(model, tr, delta=1e-2):
    """Layer 1's mlp_proj output moved by (delta, -delta) in row 37, everything after it computed from the lie."""
    tr = {k: v.copy() for k, v in tr.items()}
    tr["mlp_out"][1, 37, 5] += delta
    tr["mlp_out"][1, 37, 6] -= delta
    tr["x"][2, 37] = tr["mid"][1, 37] + tr["mlp_out"][1, 37]
    with torch.no_grad():
        h = model.ln_f(torch.from_numpy(tr["x"][2, 37:38]))
        tr["hidden"][37] = h[0].numpy()
        tr["logits"][37] = (h @ model.wte.weight.T)[0].numpy()
    return tr


def test_shared_signs_keep_each_traces_per_layer_bound(model, ids):
    # the cancelling pair (d, -d) in one row escapes one round exactly when its two signs agree: 1/2 per round,
    # whether the signs are shared with another trace or not; the honest trace beside it is never rejected
    honest = trace_prefill(model, ids)
    items = [(ids, honest), (ids, _cancelling_mlp_out(model, honest))]
    ver = SampledGlue(rows=1, rounds=1)
    n = 120
    escapes = 0
    for seed in range(n):
        a, b = ver.check_many(model, items, challenge_seed=seed)
        assert a.accepted, a.reason
        escapes += b.accepted
        assert b.accepted or "layer 1 mlp_proj: Freivalds" in b.reason, b.reason
    assert abs(escapes / n - 0.5) < 3 * np.sqrt(0.25 / n)
    assert not any(SampledGlue(rows=1).check_many(model, items, challenge_seed=s)[1].accepted for s in range(10))


def test_a_trace_of_other_ids_or_another_model_is_rejected(model, ids):
    other = ids.copy()
    other[10] = (other[10] + 1) % CFG.vocab
    assert "embeddings" in SampledGlue().check(model, ids, trace_prefill(model, other), challenge_seed=0).reason
    v = SampledGlue().check(model, ids, trace_prefill(TransformerLM(CFG, seed=1), ids), challenge_seed=0)
    assert not v.accepted


@pytest.mark.parametrize("mutate,why", [
    (lambda tr: list(tr.values()), "not a dict"),
    (lambda tr: {k: v for k, v in tr.items() if k != "gelu"}, "keys"),
    (lambda tr: {**tr, "qkv": tr["qkv"].astype(np.float64)}, "float64"),
    (lambda tr: {**tr, "fc": tr["fc"][:, :-1]}, "expected float32"),
    (lambda tr: {**tr, "attn": tr["attn"].tolist()}, "not a numpy array"),
    (lambda tr: {**tr, "ln1": np.full_like(tr["ln1"], np.nan)}, "ln1"),
    (lambda tr: {**tr, "logits": np.full_like(tr["logits"], np.inf)}, "head"),
    (lambda tr: None, "NoneType"),
])
def test_malformed_traces_are_rejected_with_a_reason(model, ids, mutate, why):
    v = SampledGlue().check(model, ids, mutate(trace_prefill(model, ids)), challenge_seed=0)
    assert not v.accepted and why in v.reason, v.reason


def test_hostile_array_subclass_is_rejected(model, ids):
    class Liar(np.ndarray):
        def __eq__(self, other):
            return True
    tr = trace_prefill(model, ids)
    tr["qkv"] = tr["qkv"].view(Liar)
    assert "not a numpy array" in SampledGlue().check(model, ids, tr, challenge_seed=0).reason


def test_caller_misuse_raises(model, ids):
    tr = trace_prefill(model, ids)
    with pytest.raises(ValueError, match="rows"):
        SampledGlue(rows=0)
    with pytest.raises(TypeError, match="challenge_seed"):
        SampledGlue().check(model, ids, tr, challenge_seed=None)
    with pytest.raises(TypeError, match="float32"):
        SampledGlue().check(object(), ids, tr, challenge_seed=0)
    with pytest.raises(TypeError, match="float32"):
        SampledGlue().check(cast(model, "bfloat16"), ids, tr, challenge_seed=0)


def test_verifier_protocol_on_a_generate_job(model):
    prompt = list(np.random.default_rng(1).integers(0, CFG.vocab, 40))
    prompt = [int(p) for p in prompt]
    job = make_generate_job(model, prompt, max_new_tokens=8, temperature=0.8, top_p=0.9, seed=3)
    g = generate(model, prompt, max_new_tokens=8, temperature=0.8, top_p=0.9, seed=3)
    ids = np.concatenate([prompt, g.tokens[:-1]])
    honest = Claim(job_id=job.id, provider="p", output=g.tokens, evidence={"trace": trace_prefill(model, ids)})
    v = SampledGlue(rows=4).verify(job, [honest], VerifyContext(rng=np.random.default_rng(0)))
    assert v.accepted, v.reason
    # tokens drawn with another seed on an honest trace: the token check catches them
    g2 = generate(model, prompt, max_new_tokens=8, temperature=0.8, top_p=0.9, seed=4)
    assert not np.array_equal(g2.tokens, g.tokens)
    ids2 = np.concatenate([prompt, g2.tokens[:-1]])
    lie = Claim(job_id=job.id, provider="p", output=g2.tokens, evidence={"trace": trace_prefill(model, ids2)})
    v = SampledGlue(rows=4).verify(job, [lie], VerifyContext(rng=np.random.default_rng(0)))
    assert not v.accepted and "token" in v.reason
    bad = Claim(job_id=job.id, provider="p", output=g.tokens.astype(float), evidence={"trace": None})
    assert not SampledGlue().verify(job, [bad], VerifyContext(rng=np.random.default_rng(0))).accepted
    for evidence in ({"trace": None}, {"trace": [1, 2]}, {}):
        bad = Claim(job_id=job.id, provider="p", output=g.tokens, evidence=evidence)
        v = SampledGlue().verify(job, [bad], VerifyContext(rng=np.random.default_rng(0)))
        assert not v.accepted and "trace" in v.reason


def test_compiled_attention_rows_match_the_torch_path_and_propagate_nan():
    from vcompute.verify.freivalds import fused
    from vcompute.verify.inference import glue

    if not fused.available():
        pytest.skip("numba not installed")
    rng = np.random.default_rng(2)
    T_, d, h = 40, 48, 4
    qkv = (rng.standard_normal((T_, 3 * d)) * 3).astype(np.float32)
    for rows in (np.array([0]), np.array([0, 1, 39]), np.sort(rng.choice(T_, 9, replace=False)), np.arange(T_)):
        a, b = glue._attention_rows(qkv, rows, h), glue._attention_rows_torch(qkv, rows, h)
        assert np.max(np.abs(a - b)) < 1e-12
    bad = qkv.copy()
    bad[5, d + 3] = np.nan  # key 5: seen by rows >= 5 only
    out = glue._attention_rows(bad, np.array([4, 5, 30]), h)
    assert list(np.isnan(out).any(axis=1)) == [False, True, True]
    ln = torch.nn.LayerNorm(d)
    with torch.no_grad():
        ln.weight.normal_(), ln.bias.normal_()
    x = qkv[:, :d]
    ref = ln.double()(torch.from_numpy(x).double()).detach().numpy()
    ln.float()
    assert np.max(np.abs(glue._ln(np.ascontiguousarray(x), ln) - ref)) < 1e-12
    claimed = ref.astype(np.float32)
    claimed[3, 4] = np.nan
    claimed[9, 0] += np.float32(1.0)
    assert glue._bad_row(claimed, ref, 1e-4)[0] == 3  # the compiled comparison: NaN is a bad row, the first one
    assert glue._bad_row(claimed[4:], ref[4:], 1e-4)[0] == 5
    assert glue._bad_row(claimed[10:], ref[10:], 1e-4)[0] == -1
    bad = qkv.copy()
    bad[7, 2 * d] = np.inf  # value 7
    assert list(~np.isfinite(glue._attention_rows(bad, np.array([6, 7]), h)).all(axis=1)) == [False, True]


def _peek_ahead(layer, q, k, v, h):
    # non-causal on every row of layer 1: each row also attends to the next key
    t, d = q.shape
    q, k, v = (z.view(1, t, h, d // h).transpose(1, 2) for z in (q, k, v))
    i = torch.arange(t)
    mask = i[None, :] <= i[:, None] + (1 if layer == 1 else 0)
    att = ((q @ k.transpose(-1, -2)) / (d // h) ** 0.5).masked_fill(~mask, float("-inf")).softmax(-1)
    return (att @ v).transpose(1, 2).reshape(t, d)


@pytest.mark.parametrize("numba", [True, False], ids=["compiled", "numpy"])
def test_tampered_trace_bytes_and_a_peeking_attention_are_caught(model, ids, numba, monkeypatch):
    if not numba:
        monkeypatch.setenv("VCOMPUTE_NO_NUMBA", "1")
    v = SampledGlue(rows=4).check(model, ids, trace_prefill(model, ids, glue={"attention": _peek_ahead}),
                                  challenge_seed=0)
    assert not v.accepted and "layer 1 attention" in v.reason, v.reason
    honest = trace_prefill(model, ids)
    for key, where in (("mid", "layer 1 residual 1"), ("x", "layer 0 residual 2")):
        tr = {**honest, key: honest[key].copy()}
        i = 1  # mid[1] is layer 1's residual 1; x[1] is layer 0's output (its residual 2)
        row = tr[key][i, 50]
        tol = GLUE_RTOL * (abs(row[7]) + np.sqrt(np.mean(row.astype(np.float64) ** 2)))
        row[7] += np.float32(2 * tol)  # one entry of one row, twice the glue tolerance: all-row links see it
        v = SampledGlue(rows=1).check(model, ids, tr, challenge_seed=0)
        assert not v.accepted and where in v.reason, v.reason
        row[7] = honest[key][i, 50, 7] + np.float32(0.5 * tol)  # inside the tolerance: what may pass, by the proof
        assert SampledGlue(rows=1).check(model, ids, {**tr, key: tr[key]}, challenge_seed=0).accepted


@pytest.fixture(scope="module")
def wide():
    """One block at GPT-2 width (d = 768), where Freivalds' head tolerance is about 12x the near-tie band."""
    from vcompute.workloads.lm import config_named

    return TransformerLM(config_named("gpt2-small").replace(n_layers=1, max_len=64), seed=0)


def _attack_prompt(vocab):
    return [int(p) for p in np.random.default_rng(5).integers(0, vocab // 2, 40)]


def _logit_shift_attack(model, *, temperature, top_p, seed, gap):
    """A provider claiming a token whose true score is ``gap`` x tau below the sampler's pick (tau: Freivalds' head
    tolerance of the row), passed off as the pick by moving two traced logits 0.35 tau each: inside the tolerance.

    The consumer's model is given a token ``b`` (absent from the prompt) whose head row puts its score exactly
    there; every other tensor of the trace is honest. Returns (job, claim, tau, the provider's logits row).
    """
    import copy

    from vcompute.verify import Freivalds
    from vcompute.workloads.lm.sampling import gumbel

    m = copy.deepcopy(model)
    V = m.cfg.vocab
    prompt = _attack_prompt(V)
    L = len(prompt)
    a = int(generate(m, prompt, max_new_tokens=1, temperature=temperature, top_p=top_p, seed=seed).tokens[0])
    b = next(t for t in range(V - 1, 0, -1) if t not in prompt and t != a)
    t_ = temperature if temperature > 0 else 1.0
    g = gumbel(seed, [L], V)[0] if temperature > 0 else np.zeros(V)
    for _ in range(3):  # set W_b so that (z_b / t + g_b) = (z_a / t + g_a) - gap * tau / t, in float32 to ~1e-7
        tr = trace_prefill(m, prompt)
        h, z = tr["hidden"][L - 1].astype(np.float64), tr["logits"][L - 1].astype(np.float64)
        W = m.wte.weight.detach().numpy()
        tau = float(Freivalds(rounds=10).row_tolerances(tr["hidden"], np.ascontiguousarray(W.T), tr["logits"])[L - 1])
        want = z[a] + t_ * (g[a] - g[b]) - gap * tau
        with torch.no_grad():
            m.wte.weight[b] += torch.from_numpy((want - float(h @ W[b].astype(np.float64))) * h / (h @ h)).float()
    tr = trace_prefill(m, prompt)
    tr["logits"][L - 1, b] += np.float32(0.35 * tau)
    tr["logits"][L - 1, a] -= np.float32(0.35 * tau)
    job = make_generate_job(m, prompt, max_new_tokens=1, temperature=temperature, top_p=top_p, seed=seed)
    claim = Claim(job_id=job.id, provider="p", output=np.array([b]), evidence={"trace": tr})
    return job, claim, tau, m, tr


@pytest.mark.parametrize("sampling", [dict(temperature=0.0, top_p=1.0), dict(temperature=0.8, top_p=1.0),
                                      dict(temperature=0.8, top_p=0.95)], ids=["greedy", "sampled", "nucleus"])
def test_logits_moved_within_freivalds_tolerance_do_not_pass_a_token_or_hide_a_band_use(wide, sampling):
    """The token rule and the band count run on logits recomputed from the checked hidden states, not the trace's."""
    from vcompute.verify import Freivalds
    from vcompute.verify.inference.tokens import check_tokens
    from vcompute.workloads.lm.sampling import SamplingParams

    sp = SamplingParams(sampling["temperature"], sampling["top_p"], 3)
    for gap, why in ((0.5, "token 0 is not what"), (0.08, "near-tie band: 1 of 1 tokens")):
        # gap 0.5: about 3x the near-tie band below the pick, so not passable; gap 0.08: inside the band, a band use
        job, claim, tau, m, tr = _logit_shift_attack(wide, **sampling, seed=3, gap=gap)
        assert 2e-4 * 3 < 0.5 * tau  # the moved logits are well outside the band, inside the tolerance
        L = 40
        W = np.ascontiguousarray(m.wte.weight.detach().numpy().T)
        # the moved logits pass Freivalds on the head, and the rule on them passes the token with no band use
        assert all(Freivalds(rounds=10).check(tr["hidden"], W, tr["logits"], seed=s).accepted for s in range(20))
        tc = check_tokens(tr["logits"][L - 1:], claim.output, sp, first_position=L, atol=1e-4)
        assert tc.ok and tc.near_ties == 0
        v = SampledGlue(rows=4).verify(job, [claim], VerifyContext(rng=np.random.default_rng(0)))
        assert not v.accepted and v.reason.startswith(why), (gap, v.reason)
    # the honest claim on the same model passes, with no band use
    prompt = _attack_prompt(m.cfg.vocab)
    honest_tok = generate(m, prompt, max_new_tokens=1, **sampling, seed=3).tokens
    honest = Claim(job_id=job.id, provider="p", output=honest_tok, evidence={"trace": trace_prefill(m, prompt)})
    v = SampledGlue(rows=4).verify(job, [honest], VerifyContext(rng=np.random.default_rng(0)))
    assert v.accepted and v.details["band_uses"] == 0, v.reason


def test_a_final_layernorm_nudged_within_its_tolerance_does_not_pass_a_token(wide):
    """The logits are recomputed from the verifier's own final LayerNorm, not the trace's ``hidden``.

    The provider moves every entry of the last hidden row by 0.9 of the glue tolerance towards ``W_b - W_a``
    and computes the logits honestly from it (so the head check holds exactly): on the trace's ``hidden`` the
    token 0.5 tau below the pick would be the pick.
    """
    from vcompute.verify.inference.tokens import check_tokens
    from vcompute.workloads.lm.sampling import SamplingParams

    job, claim, tau, m, tr = _logit_shift_attack(wide, temperature=0.0, top_p=1.0, seed=3, gap=0.5)
    L, b = 40, int(claim.output[0])
    tr = trace_prefill(m, _attack_prompt(m.cfg.vocab))  # honest again: only the hidden row moves
    W = m.wte.weight.detach().numpy()
    a = int(tr["logits"][L - 1].argmax())
    h = tr["hidden"][L - 1].astype(np.float64)
    step = 0.9 * GLUE_RTOL * (np.abs(h) + np.sqrt(np.mean(h * h))) * np.sign(W[b] - W[a])
    tr["hidden"][L - 1] = (h + step).astype(np.float32)
    tr["logits"] = (torch.from_numpy(tr["hidden"]) @ m.wte.weight.detach().T).numpy()
    tc = check_tokens(tr["logits"][L - 1:], claim.output, SamplingParams(0.0, 1.0, 3), first_position=L, atol=1e-4)
    assert tc.ok and tc.near_ties == 0  # on the trace's own logits the token passes
    v = SampledGlue(rows=4).verify(job, [Claim(job_id=job.id, provider="p", output=claim.output,
                                               evidence={"trace": tr})], VerifyContext(rng=np.random.default_rng(0)))
    assert not v.accepted and v.reason.startswith("token 0 is not what"), v.reason


def test_head_tolerance_is_freivalds_row_tolerance_and_checked_logits_are_the_models(wide):
    from vcompute.verify import Freivalds
    from vcompute.verify.inference.glue import checked_logits, head_tolerance
    from vcompute.workloads.lm.sampling import SamplingParams

    ids = _attack_prompt(wide.cfg.vocab)
    tr = trace_prefill(wide, ids)
    W = wide.wte.weight.detach().numpy()
    fr = Freivalds(rounds=10)
    ref = fr.row_tolerances(tr["hidden"], np.ascontiguousarray(W.T), tr["logits"])
    w64 = W.astype(np.float64)
    mine = head_tolerance(tr["hidden"], tr["logits"], np.sqrt((w64 * w64).sum(axis=0)), fr)
    assert np.allclose(mine, ref, rtol=1e-12, atol=0)
    h = tr["hidden"][-8:].astype(np.float64)
    exact = h @ w64.T
    toks = tr["logits"][-8:].argmax(axis=1)
    for sp in (SamplingParams(0.0, 1.0, 3), SamplingParams(0.8, 1.0, 3), SamplingParams(0.8, 0.9, 3)):
        z, nucleus, k = checked_logits(h, W, tr["logits"][-8:], ref[-8:], toks, sp, 32, 1e-4)
        moved = z != tr["logits"][-8:].astype(np.float64)
        assert np.allclose(z[moved], exact[moved], rtol=1e-12, atol=1e-12)
        assert 8 <= k < 8 * W.shape[0], k  # the claimed tokens and those near the top, not every logit
        assert np.allclose(z[np.arange(8), toks], exact[np.arange(8), toks], rtol=1e-12, atol=1e-12)
        assert np.abs(z - exact).max() < 1e-5  # the rest are the honest float32 logits
        assert (nucleus is None) == (sp.top_p == 1.0)
