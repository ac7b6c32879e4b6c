"""Providers that cheat at a ``generate`` job, as real computations.

Each is ``(job, rng, *, key, **params) -> Generation``. Every adversary signs
with the job's own binding (prompt, model hash, sampling parameters) and the
strongest proof its shortcut allows: substitutes commit their own hidden
states; the sampling cheats (and the draft model) run the *true* model's
prefill on their tokens, so their commitments are honest and only the tokens
lie.

- model: ``other_model`` (same shape, other init), ``fewer_layers`` (the first
  ``n_layers`` blocks), ``weight_noise`` (``W + magnitude * std(W) * N(0, 1)``),
  ``quantised`` (weights rounded to int8 / bf16 / fp16, computed at the job's
  precision), ``low_precision`` (the whole model run in bf16 / fp16, committed
  as the job's precision).
- input: ``prompt_altered`` (one prompt token changed), ``prompt_truncated`` (the
  first part dropped), ``short_context`` (KV cache dropped: each token sees only
  the last ``window`` tokens).
- sampling: ``other_seed``, ``other_temperature``, ``other_top_p``,
  ``greedy_for_sampled``, ``draft_model`` (tokens from a 1-layer draft).
- evidence: ``other_prompt_replay`` (another prompt's tokens and commitments,
  re-signed), ``token_replaced`` (one token changed, re-signed),
  ``extended_short_run`` (an honest proof of the first part, extended with
  random tokens and copied commitments), ``malformed`` (truncated, empty or
  random proofs; out-of-vocabulary, negative, float, 2-D or wrong-length tokens).
"""

from __future__ import annotations

import copy

import numpy as np

from vcompute.workloads.lm.generation import Generation, generate, hidden_bits, prefill, prove
from vcompute.workloads.lm.job import model_of, prompt_of, sampling_of
from vcompute.workloads.lm.proof import bits_to_float
from vcompute.workloads.lm.sampling import SamplingParams, sample
from vcompute.workloads.lm.weights import cast, with_layers

__all__ = ["honest", "other_model", "fewer_layers", "weight_noise", "quantised", "low_precision",
           "prompt_altered", "prompt_truncated", "short_context", "other_seed", "other_temperature",
           "other_top_p", "greedy_for_sampled", "draft_model", "other_prompt_replay", "token_replaced",
           "extended_short_run", "malformed", "MALFORMED_KINDS"]

#: The malformed-evidence variants of :func:`malformed`.
MALFORMED_KINDS = ("truncated", "empty", "random_bytes", "out_of_vocab", "negative", "float", "wrong_length",
                   "proof_not_bytes", "tokens_2d", "header_flipped")


def _n(job) -> int:
    return int(job.spec["max_new_tokens"])


def _gen(model, job, key, *, prompt=None, sp: SamplingParams | None = None) -> Generation:
    sp = sp or sampling_of(job)
    return generate(model, prompt_of(job) if prompt is None else prompt, max_new_tokens=_n(job),
                    temperature=sp.temperature, top_p=sp.top_p, seed=sp.seed, key=key)


def _resign(job, key, hidden, tokens) -> Generation:
    """Tokens and committed hidden states signed under the job's binding (at the job's precision)."""
    proof = prove(hidden, prompt=prompt_of(job), tokens=tokens, model_hash=job.spec["model_hash"],
                  sampling=sampling_of(job), precision=job.spec["precision"], key=key)
    return Generation(np.asarray(tokens, np.int64), proof, hidden)


def _true_hidden(job, tokens) -> np.ndarray:
    """The true model's hidden states on ``tokens`` (one prefill: the cheap half of an honest run)."""
    p = prompt_of(job)
    return prefill(model_of(job), np.concatenate([p, tokens[:-1]])).hidden[len(p) - 1:]


def _substitute(job, key, model) -> Generation:
    g = _gen(model, job, key)
    return _resign(job, key, g.hidden, g.tokens)


def honest(job, rng, *, key) -> Generation:
    """The job as asked."""
    return _gen(model_of(job), job, key)


def other_model(job, rng, *, key, seed: int = 1) -> Generation:
    """Another model of the same shape (another random init)."""
    from vcompute.workloads.lm.torch_model import TransformerLM

    m = model_of(job)
    return _substitute(job, key, cast(TransformerLM(m.cfg, seed=seed), job.spec["precision"]))


def fewer_layers(job, rng, *, key, n_layers: int | None = None) -> Generation:
    """The first ``n_layers`` blocks only (default: one fewer)."""
    m = model_of(job)
    return _substitute(job, key, with_layers(m, n_layers if n_layers is not None else max(1, m.cfg.n_layers - 1)))


def _map_weights(job, fn):
    import torch

    m = copy.deepcopy(model_of(job))
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(fn(name, p.float()).to(p.dtype))
    return m


def weight_noise(job, rng, *, key, magnitude: float = 1e-2) -> Generation:
    """Every weight tensor perturbed by ``magnitude * std(W)`` Gaussian noise (a stale or tampered checkpoint)."""
    import torch

    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))

    def noisy(name, w):
        std = float(w.std()) if w.numel() > 1 else 1.0
        return w + magnitude * std * torch.randn(w.shape, generator=gen)

    return _substitute(job, key, _map_weights(job, noisy))


def quantised(job, rng, *, key, kind: str = "int8") -> Generation:
    """Weights rounded to ``kind`` (``int8`` per-tensor symmetric, ``bfloat16``, ``float16``), run at the job's precision."""
    import torch

    if kind not in ("int8", "bfloat16", "float16"):
        raise ValueError(f"quantised kind must be int8, bfloat16 or float16, got {kind!r}")

    def q(name, w):
        if kind == "int8":
            scale = w.abs().max().clamp_min(1e-12) / 127.0
            return (w / scale).round().clamp(-127, 127) * scale
        return w.to(getattr(torch, kind)).float()

    return _substitute(job, key, _map_weights(job, q))


def low_precision(job, rng, *, key, precision: str = "bfloat16") -> Generation:
    """The whole model computed in ``precision``; its activations committed as the job's precision."""
    m = cast(model_of(job), precision)
    g = _gen(m, job, key)
    vals = bits_to_float(g.hidden, precision)
    job_prec = job.spec["precision"]
    if job_prec == "float32":
        bits = vals.astype(np.float32).view(np.uint32)
    else:
        import torch

        bits = hidden_bits(torch.from_numpy(vals).to(getattr(torch, job_prec)))
    return _resign(job, key, bits, g.tokens)


def prompt_altered(job, rng, *, key) -> Generation:
    """One prompt token (not the first) replaced by another id."""
    p = prompt_of(job).copy()
    i = int(rng.integers(1, len(p))) if len(p) > 1 else 0
    p[i] = (p[i] + 1 + int(rng.integers(job.spec["config"]["vocab"] - 1))) % job.spec["config"]["vocab"]
    g = _gen(model_of(job), job, key, prompt=p)
    return _resign(job, key, g.hidden, g.tokens)


def prompt_truncated(job, rng, *, key, keep: float = 0.5) -> Generation:
    """Only the last ``keep`` fraction of the prompt is used."""
    p = prompt_of(job)
    g = _gen(model_of(job), job, key, prompt=p[len(p) - max(1, int(len(p) * keep)):])
    return _resign(job, key, g.hidden, g.tokens)


def short_context(job, rng, *, key, window: int = 8) -> Generation:
    """No KV cache beyond ``window`` tokens: each token attends to the last ``window`` tokens only."""
    import torch

    m, p, sp = model_of(job), prompt_of(job), sampling_of(job)
    seq = list(p)
    hid, toks = [], []
    for i in range(_n(job)):
        ctx = np.array(seq[-window:], dtype=np.int64)
        pos = np.arange(len(seq) - len(ctx), len(seq))
        with torch.no_grad():
            out = m.run(torch.from_numpy(ctx[None]), positions=torch.from_numpy(pos[None]))
        hid.append(hidden_bits(out.hidden[0, -1]))
        t = sample(out.logits[0, -1].float().numpy(), temperature=sp.temperature, top_p=sp.top_p, seed=sp.seed,
                   position=len(p) + i)
        toks.append(t)
        seq.append(t)
    return _resign(job, key, np.stack(hid), np.array(toks, np.int64))


def _resampled(job, key, sp: SamplingParams) -> Generation:
    g = _gen(model_of(job), job, key, sp=sp)
    return _resign(job, key, g.hidden, g.tokens)


def other_seed(job, rng, *, key, offset: int = 1) -> Generation:
    """Sampled with another seed (true model, honest commitments)."""
    sp = sampling_of(job)
    return _resampled(job, key, SamplingParams(sp.temperature or 1.0, sp.top_p, sp.seed + offset))


def other_temperature(job, rng, *, key, factor: float = 1.5) -> Generation:
    """Sampled at ``factor`` times the job's temperature (1.0 for a greedy job)."""
    sp = sampling_of(job)
    return _resampled(job, key, SamplingParams(sp.temperature * factor if sp.temperature else 1.0, sp.top_p, sp.seed))


def other_top_p(job, rng, *, key, top_p: float | None = None) -> Generation:
    """Sampled with another nucleus (default: 1.0, or 0.5 if the job's is 1.0)."""
    sp = sampling_of(job)
    alt = top_p if top_p is not None else (1.0 if sp.top_p < 1.0 else 0.5)
    return _resampled(job, key, SamplingParams(sp.temperature or 1.0, alt, sp.seed))


def greedy_for_sampled(job, rng, *, key) -> Generation:
    """Greedy tokens for a sampled job."""
    sp = sampling_of(job)
    return _resampled(job, key, SamplingParams(0.0, sp.top_p, sp.seed))


def draft_model(job, rng, *, key, n_layers: int = 1) -> Generation:
    """Tokens from a cheap draft (the first ``n_layers`` blocks), committed with the true model's prefill."""
    g = _gen(with_layers(model_of(job), n_layers), job, key)
    return _resign(job, key, _true_hidden(job, g.tokens), g.tokens)


def other_prompt_replay(job, rng, *, key) -> Generation:
    """An honest generation for another prompt (the job's, rolled by one), re-signed for this job."""
    g = _gen(model_of(job), job, key, prompt=np.roll(prompt_of(job), 1))
    return _resign(job, key, g.hidden, g.tokens)


def token_replaced(job, rng, *, key) -> Generation:
    """Honest, then one token replaced by another id; re-signed over the new tokens."""
    g = honest(job, rng, key=key)
    t = g.tokens.copy()
    i = int(rng.integers(len(t)))
    t[i] = (t[i] + 1 + int(rng.integers(job.spec["config"]["vocab"] - 1))) % job.spec["config"]["vocab"]
    return _resign(job, key, g.hidden, t)


def extended_short_run(job, rng, *, key, fraction: float = 0.5) -> Generation:
    """An honest run of the first ``fraction`` of the tokens, padded with random tokens and copied commitments."""
    n = _n(job)
    short = max(1, int(n * fraction))
    m, p, sp = model_of(job), prompt_of(job), sampling_of(job)
    g = generate(m, p, max_new_tokens=short, temperature=sp.temperature, top_p=sp.top_p, seed=sp.seed, key=key)
    extra = rng.integers(0, m.cfg.vocab, size=n - short)
    hidden = np.concatenate([g.hidden, g.hidden[np.arange(n - short) % short]])
    return _resign(job, key, hidden, np.concatenate([g.tokens, extra]).astype(np.int64))


def malformed(job, rng, *, key, kind: str = "truncated") -> Generation:
    """Honest work with malformed evidence of the given ``kind`` (:data:`MALFORMED_KINDS`)."""
    g = honest(job, rng, key=key)
    t, pr = g.tokens, g.proof
    vocab = job.spec["config"]["vocab"]
    if kind == "truncated":
        return Generation(t, pr[:len(pr) - 1 - int(rng.integers(len(pr) - 1))])
    if kind == "empty":
        return Generation(t, b"")
    if kind == "random_bytes":
        return Generation(t, rng.bytes(len(pr)))
    if kind == "header_flipped":
        return Generation(t, pr[:3] + bytes([pr[3] ^ 1]) + pr[4:])
    if kind == "proof_not_bytes":
        return Generation(t, list(pr))
    bad = t.copy()
    if kind == "out_of_vocab":
        bad[int(rng.integers(len(t)))] = vocab
    elif kind == "negative":
        bad[int(rng.integers(len(t)))] = -1
    elif kind == "float":
        bad = t.astype(np.float64)
    elif kind == "wrong_length":
        bad = t[:-1]
    elif kind == "tokens_2d":
        bad = t[None, :]
    else:
        raise ValueError(f"unknown malformed kind {kind!r}; known: {', '.join(MALFORMED_KINDS)}")
    return Generation(bad, pr)
