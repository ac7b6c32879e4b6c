"""The LM workload: torch and JAX agree, KV cache equals prefill, batching, the sampler, files, training."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vcompute.workloads.lm import (  # noqa: E402
    CONFIGS,
    LMConfig,
    TransformerLM,
    cast,
    decode,
    encode,
    generate,
    generate_batch,
    load,
    model_hash,
    prefill,
    sample,
    save,
    to_jax,
    to_torch,
    train_on_text,
    with_layers,
)
from vcompute.workloads.lm.proof import bits_to_float, evaluate, interpolate  # noqa: E402
from vcompute.workloads.lm.sampling import SamplingParams, uniforms  # noqa: E402

CFG = CONFIGS["tiny"]
PROMPT = encode("The keeper of the light")


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return TransformerLM(CFG, seed=0)


def test_config_validation():
    with pytest.raises(ValueError, match="n_heads"):
        LMConfig(d_model=30, n_heads=4)
    with pytest.raises(TypeError, match="vocab"):
        LMConfig(vocab=3.0)
    with pytest.raises(ValueError, match="positive"):
        LMConfig(n_layers=0)
    assert LMConfig.from_dict(CFG.to_dict()) == CFG


def test_tokenizer_round_trip():
    s = "naïve café: 1 + 1 = 2"
    assert decode(encode(s)) == s
    with pytest.raises(TypeError):
        encode(b"bytes")


def test_torch_and_jax_agree_kv_cache_matches_prefill(model):
    g = generate(model, PROMPT, max_new_tokens=24, temperature=0.8, top_p=0.95, seed=3)
    ids = np.concatenate([PROMPT, g.tokens[:-1]])
    pre = prefill(model, ids)
    h_pre = bits_to_float(pre.hidden[len(PROMPT) - 1:], "float32")
    h_gen = bits_to_float(g.hidden, "float32")
    assert np.abs(h_pre - h_gen).max() <= 1e-5 * np.abs(h_pre).max()
    pytest.importorskip("jax")
    j = to_jax(model)
    assert model_hash(j) == model_hash(model) == model_hash(to_torch(j))
    pj = prefill(j, ids)
    assert np.abs(pre.logits - pj.logits).max() < 1e-4
    assert np.abs(bits_to_float(pre.hidden, "float32") - bits_to_float(pj.hidden, "float32")).max() < 1e-4
    gj = generate(j, PROMPT, max_new_tokens=24, temperature=0.8, top_p=0.95, seed=3)
    assert (gj.tokens == g.tokens).all()
    assert np.abs(bits_to_float(gj.hidden, "float32") - h_gen).max() < 1e-4


def test_torch_and_jax_agree_at_bf16(model):
    # XLA keeps float32 across fused bf16 ops unless told to round; the JAX model rounds where torch does
    pytest.importorskip("jax")
    m16 = cast(model, "bfloat16")
    ids = np.concatenate([PROMPT, np.arange(60) % 256])
    a, b = prefill(m16, ids), prefill(to_jax(m16), ids)
    assert np.abs(a.logits - b.logits).max() < 0.01
    # 0 of the 5,376 hidden entries differ on a CPU with AVX-512 (torch's bf16 batched matmuls round as XLA's
    # do at these shapes); 2.66% on one without it (a CI machine; ONEDNN_MAX_CPU_ISA=AVX2 here gives the same),
    # where about 1e-4 of the q k^T and att v outputs round the other way and the flips spread through the
    # residual stream. The bound is hardware-independent and still fails the unfixed model (~40% differed)
    assert np.mean(a.hidden != b.hidden) < 0.05


def test_torch_and_jax_agree_at_fp16_subnormals_included(model):
    # reduce_precision flushes float16 subnormals to zero (torch keeps them): ~20% of hidden entries differed
    jax = pytest.importorskip("jax")
    from vcompute.workloads.lm.jax_model import _round

    x = np.array([1e-5, -3e-6, 6e-8, 2.9e-8, 6.1e-5, 1e-4, 0.3], np.float32)
    got = np.asarray(jax.jit(lambda v: _round(v, jax.numpy.float16, jax.numpy))(x))
    assert np.array_equal(got.view(np.uint16), x.astype(np.float16).view(np.uint16))
    # one block agrees on all but ~2% of hidden entries (was ~20%); what is left, and grows with depth on this
    # untrained model (the trained one of the calibration: 0.7% at two blocks), is not found yet
    from vcompute.workloads.lm.weights import with_layers

    m16 = with_layers(cast(model, "float16"), 1)
    ids = np.concatenate([PROMPT, np.arange(60) % 256])
    a, b = prefill(m16, ids), prefill(to_jax(m16), ids)
    assert np.mean(a.hidden != b.hidden) < 0.05
    assert np.abs(a.logits - b.logits).max() < 0.005


def test_model_hash_is_cached_only_while_the_bits_are_unchanged(model):
    from vcompute.workloads.lm.weights import _hash_weights

    m = cast(model, "float32")
    h0 = model_hash(m)
    assert model_hash(m) == h0 == _hash_weights(m)
    w = m.blocks[0].c_fc.weight
    orig = float(w.detach().numpy()[0, 0])
    w.detach().numpy()[0, 0] = orig + 1.0  # through numpy: torch's _version does not move
    assert model_hash(m) == _hash_weights(m) != h0
    w.detach().numpy()[0, 0] = orig
    assert model_hash(m) == h0
    with torch.no_grad():
        m.ln_f.bias[0] = -0.0  # equal by value to +0.0, not by bits
    assert model_hash(m) == _hash_weights(m) != h0
    with torch.no_grad():
        m.ln_f.bias[0] = 0.0
        m.wpe.weight.mul_(1.0)  # an in-place op that changes nothing keeps the hash
    assert model_hash(m) == h0
    m.blocks[1].mlp_proj.weight = torch.nn.Parameter(m.blocks[1].mlp_proj.weight.detach() * 2)
    assert model_hash(m) == _hash_weights(m) != h0


def test_batched_generation_matches_one_by_one(model):
    prompts = [PROMPT, PROMPT[:5], encode("abc")]
    batch = generate_batch(model, prompts, max_new_tokens=10, temperature=0.8, top_p=0.95, seed=[1, 2, 3])
    for p, s, g in zip(prompts, [1, 2, 3], batch):
        one = generate(model, p, max_new_tokens=10, temperature=0.8, top_p=0.95, seed=s)
        assert (one.tokens == g.tokens).all()
        assert np.abs(bits_to_float(one.hidden, "float32") - bits_to_float(g.hidden, "float32")).max() < 1e-5


def test_sampler_draws_softmax_over_the_nucleus():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    draws = np.array([sample(logits, temperature=1.0, top_p=1.0, seed=11, position=i) for i in range(4000)])
    freq = np.bincount(draws, minlength=4) / draws.size
    assert np.abs(freq - [0.5, 0.3, 0.15, 0.05]).max() < 0.03
    nucleus = np.array([sample(logits, temperature=1.0, top_p=0.7, seed=11, position=i) for i in range(2000)])
    assert set(nucleus.tolist()) == {0, 1}  # 0.5 < 0.7 <= 0.8: the two most probable
    assert abs((nucleus == 0).mean() - 0.5 / 0.8) < 0.04
    assert sample(logits, temperature=0.0, top_p=1.0, seed=0, position=0) == 0
    assert (uniforms(5, [3, 9], 6)[1] == uniforms(5, [9], 6)[0]).all()
    assert not (uniforms(5, [3], 6) == uniforms(6, [3], 6)).any()


def test_sampling_params_reject_misuse():
    with pytest.raises(ValueError):
        SamplingParams(-1.0, 1.0, 0)
    with pytest.raises(ValueError):
        SamplingParams(1.0, 0.0, 0)
    with pytest.raises(TypeError):
        SamplingParams(True, 1.0, 0)
    with pytest.raises(TypeError):
        SamplingParams(1.0, 1.0, 1.5)


def test_polynomial_interpolates_at_both_field_sizes():
    rng = np.random.default_rng(0)
    for p in (65521, 4294967291):
        xs = rng.choice(20000, size=60, replace=False)
        ys = rng.integers(0, p, size=60)
        c = interpolate(xs, ys, p)
        assert c.shape == (60,) and (evaluate(c, xs, p) == ys).all()


def test_safetensors_round_trip_and_fewer_layers(model, tmp_path):
    pytest.importorskip("safetensors")
    save(model, tmp_path / "m.safetensors")
    assert model_hash(load(tmp_path / "m.safetensors")) == model_hash(model)
    small = load(tmp_path / "m.safetensors", n_layers=1)
    assert small.cfg.n_layers == 1 and len(small.blocks) == 1
    assert model_hash(small) == model_hash(with_layers(model, 1))
    bf = cast(model, "bfloat16")
    save(bf, tmp_path / "bf.safetensors")
    assert load(tmp_path / "bf.safetensors").dtype == torch.bfloat16


def test_bf16_generation_commits_bf16(model):
    g = generate(cast(model, "bfloat16"), PROMPT, max_new_tokens=40, temperature=0.8, seed=1)
    assert g.hidden.dtype == np.uint16 and len(g.proof) == 70 + 2 * 240


def test_generate_rejects_caller_misuse(model):
    with pytest.raises(TypeError):
        generate(model, PROMPT.astype(np.float32), max_new_tokens=4)
    with pytest.raises(TypeError):
        generate(model, [1, True], max_new_tokens=4)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, PROMPT, max_new_tokens=CFG.max_len)
    with pytest.raises(ValueError):
        generate(model, [CFG.vocab], max_new_tokens=4)
    with pytest.raises(TypeError):
        generate("model", PROMPT, max_new_tokens=4)


def test_short_training_lowers_the_loss():
    m = TransformerLM(LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64), seed=0)
    losses = train_on_text(m, steps=10, seq_len=16, batch=4, lr=2e-2)
    assert losses[-1] < losses[0] - 0.5


def test_learning_rate_schedule_warms_up_then_decays_to_a_tenth():
    from vcompute.workloads.lm.train import lr_at

    lrs = [lr_at(s, 600, 1e-3, 100) for s in range(600)]
    assert lrs[0] == pytest.approx(1e-5) and lrs[99] == pytest.approx(1e-3)
    assert all(a <= b for a, b in zip(lrs[:100], lrs[1:100]))  # warmup rises
    assert all(a >= b for a, b in zip(lrs[99:], lrs[100:]))  # then decays
    assert lrs[-1] == pytest.approx(1e-4)
    m = TransformerLM(LMConfig(vocab=300, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=32), seed=0)
    with pytest.raises(ValueError, match="warmup"):
        train_on_text(m, steps=2, seq_len=8, batch=2, warmup=-1)
    with pytest.raises(ValueError, match="schedule"):
        train_on_text(m, steps=2, seq_len=8, batch=2, schedule="linear")


def test_the_schedule_sets_each_steps_learning_rate(monkeypatch):
    # the optimiser sees lr_at(...) at every step under the recipe, and lr itself under "constant"
    from vcompute.workloads.lm.train import lr_at

    seen = []
    step = torch.optim.AdamW.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    m = TransformerLM(LMConfig(vocab=300, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=32), seed=0)
    train_on_text(m, steps=12, seq_len=8, batch=2, lr=1e-3)
    assert seen == [lr_at(i, 12, 1e-3, 2) for i in range(12)]
    seen.clear()
    train_on_text(m, steps=3, seq_len=8, batch=2, lr=1e-3, schedule="constant")
    assert seen == [1e-3] * 3


def _unigram_entropy(ids: np.ndarray) -> float:
    p = np.bincount(ids)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


@pytest.mark.slow
def test_the_experiments_tiny_lm_is_not_degenerate():
    # the model every inference experiment uses (tiny, default train_steps, seed 0): its loss on the shipped text
    # must lie well below the text's unigram entropy (the plateau of a model that ignores its context), and its
    # greedy continuation must not be one repeated character (the plateau's output was all spaces)
    from vcompute.experiment.tasks.inference import CalibrationParams, _base_model
    from vcompute.workloads.lm.train import shipped_text

    m = _base_model("tiny", CalibrationParams().train_steps)
    ids = encode(shipped_text())
    h = _unigram_entropy(ids[1:])
    data = torch.from_numpy(ids)
    with torch.no_grad():
        loss = np.mean([float(torch.nn.functional.cross_entropy(m(data[s:s + 128][None])[0], data[s + 1:s + 129]))
                        for s in range(0, len(ids) - 129, 64)])
    assert h == pytest.approx(2.97, abs=0.01)
    assert loss < h - 0.8, f"loss {loss:.3f} nats is near the unigram entropy {h:.3f}: the LM ignores its context"
    for text in ("The keeper", "the lamp", "At night"):
        out = generate(m, encode(text), max_new_tokens=48).tokens
        assert len(set(int(t) for t in out)) >= 5, f"greedy continuation of {text!r} is degenerate: {decode(out)!r}"


def test_committed_entries_are_the_first_of_each_rows_stable_descending_sort():
    """``select_entries`` (a partition, not a sort) is its definition: row t's first ``k // c + (t < k % c)``
    entries of a stable sort by magnitude descending, NaN as +inf, ties to the lower index; returned sorted."""
    from vcompute.workloads.lm.proof import select_entries

    rng = np.random.default_rng(5)
    for trial in range(400):
        c, d, k = int(rng.integers(1, 40)), int(rng.choice([1, 3, 8, 64, 256])), int(rng.choice([1, 32, 120, 9000]))
        v = rng.normal(size=(c, d)).astype(np.float32)
        if trial % 3 == 1:
            v = rng.integers(-2, 3, size=(c, d)).astype(np.float32)  # ties everywhere, -0.0 and 0.0 alike
        if trial % 3 == 2:
            v[rng.random((c, d)) < 0.2] = np.nan
            v[rng.random((c, d)) < 0.1] = -np.inf
        mag = np.abs(v)
        mag[np.isnan(mag)] = np.inf
        want = []
        for t in range(c):
            m = min(d, k // c + (t < k % c))
            want += [t * d + j for j in np.argsort(-mag[t], kind="stable")[:m]]
        got = select_entries(v, k)
        assert got.dtype == np.int64 and got.tolist() == sorted(want)
