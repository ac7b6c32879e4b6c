"""Token checks: every generated token is what the job's sampler draws from the recomputed logits.

The near-tie rule. The verifier's logits differ from the provider's by at
most ``atol`` per entry (calibrated, :mod:`vcompute.verify.inference.tolerance`). Then scaled logits
``s = z / T`` differ by at most ``eps / 2`` with ``eps = 2 atol / T``, every
probability by a factor within ``e^{+-eps}``, and a token is accepted iff it
*could* be the provider's draw under some logits within that band:

- greedy: ``z_t >= max(z) - 2 atol``;
- sampled (Gumbel-max over the nucleus, :mod:`vcompute.workloads.lm.sampling`):
  ``t`` may be in the provider's nucleus (``e^{-eps} * mass{s_j > s_t + eps} < top_p``)
  and its score ``s_t + g_t`` is within ``eps`` of the best score over the
  tokens certainly in the nucleus (``e^{eps} * mass{j != t: s_j >= s_t - eps} < top_p``).

Complete by construction for any provider within the band; what it lets a
provider choose is measured per generation: ``ambiguous`` counts positions
where more than one token passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcompute.workloads.lm.sampling import SamplingParams, gumbel

__all__ = ["TokenCheck", "check_tokens", "as_tokens", "job_arguments", "provider_tokens"]


@dataclass(frozen=True)
class TokenCheck:
    """The outcome of checking every token.

    Attributes:
        ok: whether every token passed.
        first_bad: index of the first failing token (-1 if none).
        near_ties: tokens that passed only by the near-tie rule (the verifier's own draw differs).
        ambiguous: positions where more than one token would pass.
    """

    ok: bool
    first_bad: int
    near_ties: int
    ambiguous: int


def as_tokens(obj, vocab: int) -> np.ndarray | str:
    """A provider's tokens as 1-D int64 ids in ``[0, vocab)``, or the reason they are malformed (never raises)."""
    try:
        if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
            obj = obj.detach().cpu().numpy()
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind not in "iu":
                return f"tokens have dtype {obj.dtype}, not an integer dtype"
            a = np.array(obj, dtype=np.int64, copy=True).view(np.ndarray)
        elif isinstance(obj, (list, tuple)):
            if not all(type(v) is int for v in obj):
                return "tokens are not all plain ints"
            if any(not -2**63 <= v < 2**63 for v in obj):
                return "a token does not fit in int64"
            a = np.array(obj, dtype=np.int64)
        else:
            return f"tokens are a {type(obj).__name__}, not an int array"
        if a.ndim != 1:
            return f"tokens have shape {a.shape}, not 1-D"
        if a.size == 0:
            return "no tokens were returned"
        if a.min() < 0 or a.max() >= vocab:
            return f"a token id is outside the vocabulary [0, {vocab})"
        return a
    except Exception as e:  # a hostile object: its failure is the provider's
        return f"tokens could not be read ({type(e).__name__})"


def job_arguments(model, prompt_ids, temperature, top_p, seed, max_new_tokens):
    """The caller's side of a check, validated: ``(config, prompt, SamplingParams)``.

    Raises:
        TypeError, ValueError: naming the malformed argument.
    """
    from vcompute.workloads.lm.generation import as_prompt

    if type(model).__name__ not in ("TransformerLM", "JaxTransformerLM"):
        raise TypeError(f"model must be a TransformerLM or JaxTransformerLM, got {type(model).__name__}")
    if max_new_tokens is not None and (type(max_new_tokens) is not int or max_new_tokens < 1):
        raise ValueError(f"max_new_tokens must be a positive int or None, got {max_new_tokens!r}")
    return model.cfg, as_prompt(prompt_ids, model.cfg.vocab), SamplingParams(temperature, top_p, seed)


def provider_tokens(tokens, cfg, prompt_len: int, max_new_tokens: int | None) -> np.ndarray | str:
    """The provider's tokens read exactly and checked against the job's length, or the reason not."""
    toks = as_tokens(tokens, cfg.vocab)
    if isinstance(toks, str):
        return toks
    n = int(toks.shape[0])
    if max_new_tokens is not None and n != max_new_tokens:
        return f"{n} tokens returned; the job asked for {max_new_tokens}"
    if prompt_len + n > cfg.max_len:
        return f"prompt + tokens = {prompt_len + n} exceed the model's max_len {cfg.max_len}"
    return toks


class _Ranked:
    """All rows' scaled logits in one sorted flat array, to read "mass above s + delta" for every token.

    Each row is shifted by its own offset (wider than any row's spread, so rows
    never interleave and equal scores stay equal); one argsort then serves
    every threshold, and thresholds ``s + delta`` arrive already sorted.
    """

    def __init__(self, s: np.ndarray, p: np.ndarray, max_delta: float) -> None:
        n, v = s.shape
        off = 2.0 * (np.abs(s).max() + abs(max_delta)) + 1.0
        self.base = np.arange(n, dtype=np.float64)[:, None] * off
        keys = (s + self.base).ravel()
        self.order = np.argsort(keys)  # equal keys are counted by value, so any order among them will do
        self.sorted = keys[self.order]
        self.cm = np.concatenate([[0.0], np.cumsum(p.ravel()[self.order])])
        self.row_end = np.repeat(self.cm[(np.arange(n) + 1) * v], v)
        self.shape = (n, v)

    def mass_above(self, delta: float, *, inclusive: bool) -> np.ndarray:
        """Mass of tokens with score ``> s_i + delta`` (``>=`` if inclusive), for every token ``i``."""
        idx = np.searchsorted(self.sorted, self.sorted + delta, side="left" if inclusive else "right")
        out = np.empty(self.sorted.shape[0])
        out[self.order] = self.row_end - self.cm[idx]  # row_end is constant per row, so order-free
        return out.reshape(self.shape)


def check_tokens(logits: np.ndarray, tokens: np.ndarray, sampling: SamplingParams, *, first_position: int,
                 atol: float) -> TokenCheck:
    """Check each token against the logits that the verifier recomputed for it.

    Args:
        logits: float32 ``[n, vocab]``: row ``i`` the logits that produced token ``i``.
        tokens: the ``n`` tokens.
        sampling: the job's sampling parameters.
        first_position: sequence position of the first generated token (the prompt length).
        atol: the calibrated bound on the per-entry logit difference between honest runs.
    """
    z = np.asarray(logits, dtype=np.float64)
    n, vocab = z.shape
    rows = np.arange(n)
    if sampling.greedy:
        zmax = z.max(axis=1)
        passing = z >= (zmax - 2 * atol)[:, None]
        ok = passing[rows, tokens]
        near = int((tokens != z.argmax(axis=1)).sum())
        ambiguous = int((passing.sum(axis=1) > 1).sum())
        bad = np.flatnonzero(~ok)
        return TokenCheck(bool(ok.all()), int(bad[0]) if bad.size else -1, near, ambiguous)
    T, top_p = sampling.temperature, sampling.top_p
    eps = 2 * atol / T
    s = z / T
    score = s + gumbel(sampling.seed, first_position + rows, vocab)
    if top_p < 1.0:
        w = np.exp(s - s.max(axis=1, keepdims=True))
        p = w / w.sum(axis=1, keepdims=True)
        ranked = _Ranked(s, p, eps)
        relaxed = ranked.mass_above(eps, inclusive=False) * np.exp(-eps) < top_p
        certain = (ranked.mass_above(-eps, inclusive=True) - p) * np.exp(eps) < top_p
        own_nucleus = ranked.mass_above(0.0, inclusive=False) < top_p
    else:
        relaxed = certain = own_nucleus = np.ones((n, vocab), bool)
    best = np.where(certain, score, -np.inf).max(axis=1)
    passing = relaxed & (score >= (best - eps)[:, None])
    ok = passing[rows, tokens]
    own = np.where(own_nucleus, score, -np.inf).argmax(axis=1)
    near = int((ok & (own != tokens)).sum())
    ambiguous = int((passing.sum(axis=1) > 1).sum())
    bad = np.flatnonzero(~ok)
    return TokenCheck(bool(ok.all()), int(bad[0]) if bad.size else -1, near, ambiguous)
