"""Generation with a KV cache (provider side) and the one-pass prefill a verifier recomputes.

:func:`generate` runs a torch or JAX LM on a prompt, decodes with a KV cache
under the job's sampler (:mod:`~vcompute.workloads.lm.sampling`) and returns
the new tokens with their signed activation commitment
(:mod:`~vcompute.workloads.lm.proof`). :func:`generate_batch` does the same
for several prompts at once (left-padded, padding keys masked).
:func:`prefill` is the verifier's single pass over prompt + tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vcompute.workloads.lm.proof import binding_digest, build_proof
from vcompute.workloads.lm.sampling import SamplingParams, sample
from vcompute.workloads.lm.weights import model_hash, precision_of

__all__ = ["Generation", "Prefill", "generate", "generate_batch", "prefill", "prove", "default_key", "as_prompt",
           "hidden_bits"]


@dataclass(frozen=True)
class Generation:
    """What a provider returns for one prompt.

    Attributes:
        tokens: the new tokens, 1-D int64.
        proof: the signed activation commitment (bytes).
        hidden: bit patterns of the committed last hidden states ``[n, d]`` (for experiments).
        logits: float32 logits that produced each token ``[n, vocab]`` (for experiments).
        seconds: wall-clock seconds of the generation (batch total / batch size).
    """

    tokens: np.ndarray
    proof: bytes
    hidden: np.ndarray = field(repr=False, default=None)
    logits: np.ndarray = field(repr=False, default=None)
    seconds: float = 0.0


@dataclass(frozen=True)
class Prefill:
    """One forward pass over a whole sequence.

    Attributes:
        hidden: bit patterns of the last hidden states ``[T, d]`` (uint32 at float32, uint16 below).
        logits: float32 next-token logits ``[T, vocab]``.
    """

    hidden: np.ndarray
    logits: np.ndarray


def default_key():
    """The signing key of the provider named ``"provider"`` (experiments and tutorials; not secret)."""
    from vcompute.core.signing import key_from_name

    return key_from_name("provider")


def _is_torch(model: Any) -> bool:
    return type(model).__name__ == "TransformerLM"


def _is_jax(model: Any) -> bool:
    return type(model).__name__ == "JaxTransformerLM"


def hidden_bits(h: Any) -> np.ndarray:
    """Bit patterns of a hidden-state array (torch, JAX or numpy): uint32 for float32, uint16 for 16-bit."""
    if type(h).__module__.startswith("torch"):
        import torch

        h = h.detach().cpu().contiguous()
        if h.dtype == torch.float32:
            return h.view(torch.int32).numpy().view(np.uint32)
        return h.view(torch.int16).numpy().view(np.uint16)
    a = np.asarray(h)
    return a.view(np.uint32) if a.dtype.itemsize == 4 else a.view(np.uint16)


def _logits32(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        return x.detach().float().cpu().numpy()
    return np.asarray(x).astype(np.float32)


def as_prompt(prompt: Any, vocab: int, name: str = "prompt_ids") -> np.ndarray:
    """The caller's prompt as a 1-D int64 array of valid ids.

    Raises:
        TypeError: if it is not a sequence or array of ints.
        ValueError: if it is empty, not 1-D, or holds an id outside ``[0, vocab)``.
    """
    if type(prompt).__module__.startswith("torch"):
        prompt = prompt.detach().cpu().numpy()
    if isinstance(prompt, np.ndarray):
        if prompt.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers, got dtype {prompt.dtype}")
        a = np.array(prompt, dtype=np.int64).view(np.ndarray)
    elif isinstance(prompt, (list, tuple)):
        if not all(type(v) is int or type(v) in (np.int64, np.int32) for v in prompt):
            raise TypeError(f"{name} must be a list of ints (not bools, floats or int subclasses)")
        a = np.array([int(v) for v in prompt], dtype=np.int64)
    else:
        raise TypeError(f"{name} must be a 1-D int array or list of ints, got {type(prompt).__name__}")
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {a.shape}")
    if a.min() < 0 or a.max() >= vocab:
        raise ValueError(f"{name} holds ids outside [0, {vocab})")
    return a


def _check_model(model: Any) -> None:
    if not (_is_torch(model) or _is_jax(model)):
        raise TypeError(f"model must be a TransformerLM or JaxTransformerLM, got {type(model).__name__}")


def _check_new_tokens(n: Any, cfg, longest: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"max_new_tokens must be an int, got {type(n).__name__}")
    n = int(n)
    if n < 1 or longest + n > cfg.max_len:
        raise ValueError(f"max_new_tokens must be in 1..{cfg.max_len - longest} (max_len {cfg.max_len} "
                         f"minus the prompt's {longest} tokens), got {n}")
    return n


class _TorchDecoder:
    def __init__(self, model):
        import torch

        self.torch = torch
        self.model = model

    def start(self, ids, positions, key_mask, total):
        t = self.torch
        self.key_mask = t.from_numpy(key_mask)
        with t.no_grad():
            out = self.model.run(t.from_numpy(ids), positions=t.from_numpy(positions), key_mask=self.key_mask)
        self.past = out.past
        return out.hidden[:, -1], out.logits[:, -1]

    def step(self, tokens, positions):
        t = self.torch
        self.key_mask = t.cat([self.key_mask, t.ones(len(tokens), 1, dtype=t.bool)], dim=1)
        with t.no_grad():
            out = self.model.run(t.from_numpy(tokens[:, None]), positions=t.from_numpy(positions[:, None]),
                                 key_mask=self.key_mask, past=self.past)
        self.past = out.past
        return out.hidden[:, -1], out.logits[:, -1]


#: JAX shapes are rounded up to a multiple of this, so a handful of compilations serve every length.
JAX_BUCKET = 64


def _bucket(n: int) -> int:
    return -(-n // JAX_BUCKET) * JAX_BUCKET


class _JaxDecoder:
    def __init__(self, model):
        self.model = model

    def start(self, ids, positions, key_mask, total):
        b, L = ids.shape
        extra = _bucket(L) - L  # more left padding: masked, so the real tokens compute the same
        ids = np.pad(ids, ((0, 0), (extra, 0)))
        positions = np.pad(positions, ((0, 0), (extra, 0)))
        key_mask = np.pad(key_mask, ((0, 0), (extra, 0)))
        total = _bucket(total + extra)
        L += extra
        self.key_mask = np.zeros((b, total), bool)
        self.key_mask[:, :L] = key_mask
        self.key_mask[:, L:] = True  # future slots: the causal mask hides them until written
        self.slot = L
        h, lg, self.cache = self.model.forward(ids, positions, self.key_mask, self.model.empty_cache(b, total), 0)
        return h[:, -1], lg[:, -1]

    def step(self, tokens, positions):
        h, lg, self.cache = self.model.forward(tokens[:, None], positions[:, None], self.key_mask, self.cache,
                                               self.slot)
        self.slot += 1
        return h[:, -1], lg[:, -1]


def prove(hidden: np.ndarray, *, prompt: np.ndarray, tokens: np.ndarray, model_hash: str,
          sampling: SamplingParams, precision: str, key) -> bytes:
    """The signed proof over the committed hidden states of ``tokens``, bound to the job.

    Args:
        hidden: bit patterns ``[n_tokens, d]`` of the hidden states that produced each token.
        prompt: the job's prompt.
        tokens: the generated tokens.
        model_hash: the job's model commitment (:func:`~vcompute.workloads.lm.model_hash`).
        sampling: the job's sampling parameters.
        precision: the precision the proof claims.
        key: the provider's signing key.
    """
    binding = binding_digest(prompt=prompt, tokens=tokens, model_hash=model_hash, temperature=sampling.temperature,
                             top_p=sampling.top_p, seed=sampling.seed, precision=precision,
                             provider=key.public_bytes)
    return build_proof(hidden, precision=precision, binding=binding, key=key)


def generate_batch(model: Any, prompts: list, *, max_new_tokens: int, temperature: float = 0.0,
                   top_p: float = 1.0, seed: int | list[int] = 0, key=None) -> list[Generation]:
    """Generate for several prompts in one batch (left-padded; padding keys masked).

    Args:
        model: a :class:`TransformerLM` or :class:`JaxTransformerLM`.
        prompts: the prompts (each a 1-D int sequence).
        max_new_tokens: tokens to generate per prompt.
        temperature: 0 for greedy.
        top_p: nucleus mass.
        seed: one seed for all prompts, or one per prompt.
        key: the provider's signing key (default :func:`default_key`).

    Returns:
        One :class:`Generation` per prompt.

    Raises:
        TypeError, ValueError: for a malformed argument (named in the message).
    """
    _check_model(model)
    cfg = model.cfg
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise TypeError("prompts must be a non-empty list of prompts")
    ps = [as_prompt(p, cfg.vocab, f"prompts[{i}]") for i, p in enumerate(prompts)]
    seeds = list(seed) if isinstance(seed, (list, tuple)) else [seed] * len(ps)
    if len(seeds) != len(ps):
        raise ValueError(f"seed lists {len(seeds)} seeds for {len(ps)} prompts")
    sps = [SamplingParams(temperature, top_p, s) for s in seeds]
    longest = max(len(p) for p in ps)
    n = _check_new_tokens(max_new_tokens, cfg, longest)
    key = key or default_key()
    precision = precision_of(model)
    b = len(ps)
    lens = np.array([len(p) for p in ps])
    pads = longest - lens
    ids = np.zeros((b, longest), np.int64)
    for i, p in enumerate(ps):
        ids[i, pads[i]:] = p
    slots = np.arange(longest)
    key_mask = slots[None, :] >= pads[:, None]
    positions = np.maximum(slots[None, :] - pads[:, None], 0).astype(np.int64)
    dec = _TorchDecoder(model) if _is_torch(model) else _JaxDecoder(model)
    t0 = time.perf_counter()
    h, lg = dec.start(ids, positions, key_mask, longest + n)
    tokens = np.zeros((b, n), np.int64)
    hid, logs = [], []
    for i in range(n):
        hid.append(hidden_bits(h))
        lg32 = _logits32(lg)
        logs.append(lg32)
        tokens[:, i] = [sample(lg32[j], temperature=sps[j].temperature, top_p=sps[j].top_p, seed=sps[j].seed,
                               position=int(lens[j]) + i) for j in range(b)]
        if i + 1 < n:
            h, lg = dec.step(tokens[:, i].copy(), (lens + i).astype(np.int64))
    hid_a, log_a = np.stack(hid, axis=1), np.stack(logs, axis=1)
    mh = model_hash(model)
    out = []
    for j in range(b):
        proof = prove(hid_a[j], prompt=ps[j], tokens=tokens[j], model_hash=mh, sampling=sps[j],
                      precision=precision, key=key)
        out.append((tokens[j].copy(), proof, hid_a[j], log_a[j]))
    seconds = (time.perf_counter() - t0) / b
    return [Generation(t, p, hh, ll, seconds) for t, p, hh, ll in out]


def generate(model: Any, prompt_ids: Any, *, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
             seed: int = 0, key=None) -> Generation:
    """Generate ``max_new_tokens`` tokens after ``prompt_ids`` with a KV cache, and prove it.

    Args:
        model: a :class:`TransformerLM` (any precision, any depth) or :class:`JaxTransformerLM`.
        prompt_ids: 1-D int prompt.
        max_new_tokens: tokens to generate.
        temperature: 0 for greedy decoding.
        top_p: nucleus mass in (0, 1].
        seed: seeds the draw at every position (see :mod:`~vcompute.workloads.lm.sampling`).
        key: the provider's :class:`~vcompute.core.signing.SigningKey` (default :func:`default_key`).

    Returns:
        The :class:`Generation`.

    Raises:
        TypeError, ValueError: for a malformed argument (named in the message).

    Example:
        >>> from vcompute.workloads.lm import LMConfig, TransformerLM
        >>> m = TransformerLM(LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64), seed=0)
        >>> g = generate(m, [256, 72, 105], max_new_tokens=8, temperature=0.8, top_p=0.95, seed=7)
        >>> g.tokens.shape, len(g.proof)
        ((8,), 310)
    """
    return generate_batch(model, [prompt_ids], max_new_tokens=max_new_tokens, temperature=temperature,
                          top_p=top_p, seed=seed, key=key)[0]


def prefill(model: Any, ids: np.ndarray) -> Prefill:
    """The last hidden states and logits of every position of ``ids`` in one pass (no cache).

    Args:
        model: a :class:`TransformerLM` or :class:`JaxTransformerLM`.
        ids: 1-D int64 sequence (at most ``max_len`` tokens).
    """
    ids = np.asarray(ids, dtype=np.int64)[None, :]
    if _is_torch(model):
        import torch

        with torch.no_grad():
            out = model.run(torch.from_numpy(ids))
        return Prefill(hidden_bits(out.hidden[0]), _logits32(out.logits[0]))
    t = ids.shape[1]
    tb = _bucket(t)  # right padding: causal attention keeps it out of the real positions
    padded = np.pad(ids, ((0, 0), (0, tb - t)))
    pos = np.minimum(np.arange(tb), model.cfg.max_len - 1)[None, :]
    h, lg, _ = model.forward(padded, pos, np.ones((1, tb), bool), model.empty_cache(1, tb), 0)
    return Prefill(hidden_bits(h[0, :t]), _logits32(lg[0, :t]))
