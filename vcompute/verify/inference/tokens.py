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

Where the precision also calibrates ``mass_atol`` (the honest difference of
the mass ranked before a token, which the worst case ``e^{+-eps}`` overstates
by orders of magnitude once logits agree closely), nucleus membership is
also bounded by it: ``t`` must have ``mass_before(t) < top_p + mass_atol``, and
``j`` is certainly in the nucleus if ``mass_before(j) + mass_atol < top_p``.
At bf16 (``atol`` 0.05, ``T`` 0.8) the worst case alone admits any token into
a 0.95 nucleus, so a provider sampling with ``top_p = 1`` would pass.

Complete by construction for any provider within the bands; what it lets a
provider choose is measured per generation: ``ambiguous`` counts positions
where more than one token passes.

The band-use count. A token that passes only by the near-tie rule (it differs
from the verifier's own argmax / replayed draw) is a *band use*. An honest
provider makes one only where its logits and the verifier's straddle a
near-tie, at a calibrated per-token rate ``r``; a claim with more band uses
than ``Binomial(n, r)`` plausibly gives is rejected: :func:`band_limit` is the
smallest ``k`` with ``P[Binomial(n, r) > k] <= alpha`` (:func:`band_tail`), so
an honest provider at rate ``r`` is rejected by the count with probability at
most ``alpha`` per generation (``proofs/inference.md``, *The band-use count*).

The nucleus-edge count. A band use whose token lies past the verifier's
nucleus edge by more than a rank flip within the band explains (the tokens
scoring above it by more than ``eps`` already hold ``top_p`` of the mass) is a
*nucleus-edge use*: an honest provider ranks all of those tokens before it, so
it makes one only where the two sides' mass of one fixed set straddles
``top_p``, while a provider sampling from a wider nucleus makes one whenever it
draws just past the cut. Where the precision calibrates their honest rate,
:func:`band_count` also bounds them on their own (``proofs/inference.md``,
*The nucleus-edge count*).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from vcompute.verify.screening import memory_span
from vcompute.workloads.lm.sampling import SamplingParams, gumbel

__all__ = ["TokenCheck", "BandCount", "band_count", "check_tokens", "maybe_in_nucleus", "as_tokens", "job_arguments",
           "mass_before", "provider_tokens", "band_tail", "band_limit"]


@dataclass(frozen=True)
class TokenCheck:
    """The outcome of checking every token.

    Attributes:
        ok: whether every token passed.
        first_bad: index of the first failing token (-1 if none).
        near_ties: tokens that passed only by the near-tie rule (the verifier's own draw differs): the *band uses*.
        ambiguous: positions where more than one token would pass.
        edge_uses: the band uses whose token lies outside the verifier's own nucleus even granting every rank
            flip the logit band allows: the tokens whose scaled logit exceeds the token's by more than the band
            ``eps`` hold at least ``top_p`` of the verifier's mass (an honest provider ranks all of them before
            it, so it drew the token only if its own mass of that same set fell below ``top_p``). These
            *nucleus-edge* uses are what a provider drawing from a wider nucleus makes; they are counted on their
            own (:func:`band_count`). Always 0 for a greedy job or ``top_p = 1``.
        outside_uses: the band uses whose token lies outside the verifier's own nucleus at all (the mass ranked
            before it, computed as the sampler computes it, is at least ``top_p``), past the cut by a rank flip or
            more: the edge uses and the draws just past the cut that an honest provider's flip also makes.
            Reported, not counted: honest providers make them at a measured rate too high for a limit of 0 at
            32 tokens (``proofs/inference.md``, *The nucleus-edge count*).
    """

    ok: bool
    first_bad: int
    near_ties: int
    ambiguous: int
    edge_uses: int = 0
    outside_uses: int = 0


def _band_args(n, rate, name: str = "n") -> None:
    if type(n) is not int or n < 0:
        raise ValueError(f"{name} must be a non-negative int, got {n!r}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be a float in [0, 1), got {rate!r}")


def band_tail(n: int, rate: float, k: int) -> float:
    """``P[Binomial(n, rate) > k]``: the chance an honest provider makes more than ``k`` band uses in ``n`` tokens.

    Summed term by term from ``k + 1`` (no ``1 - cdf`` cancellation), so tails far below 1e-16 stay exact.

    Raises:
        ValueError: for ``n`` or ``k`` not a non-negative int, or ``rate`` outside ``[0, 1)``.

    Example:
        >>> f"{band_tail(32, 3e-5, 0):.3e}"  # 1 - (1 - r)^n
        '9.596e-04'
    """
    _band_args(n, rate)
    _band_args(k, rate, "k")
    if k >= n or rate == 0.0:
        return 0.0
    lr, lq = math.log(rate), math.log1p(-rate)
    total = 0.0
    for i in range(k + 1, n + 1):
        term = math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lr + (n - i) * lq)
        total += term
        if i > n * rate and term < total * 1e-17:  # past the mode the terms fall geometrically
            break
    return min(total, 1.0)


def band_limit(n: int, rate: float, alpha: float) -> int:
    """The most band uses an ``n``-token claim may make at honest rate ``rate`` and false-reject budget ``alpha``.

    ``0`` when ``n * rate <= alpha`` (the union bound: an honest provider whose
    per-token band-use probabilities average at most ``rate`` makes any band use
    with probability at most ``n * rate``, however its positions depend on each
    other); otherwise the smallest ``k >= 1`` with ``band_tail(n, rate, k) <= alpha``
    (for independent positions whose probabilities average at most ``rate``,
    Hoeffding's 1956 inequality bounds ``P[uses > k]`` by that binomial tail
    whenever ``k >= n * rate``).

    Args:
        n: tokens checked.
        rate: the calibrated honest band-use rate per token (an upper bound).
        alpha: the false-reject probability per generation the count may add, at that rate.

    Raises:
        ValueError: for ``n`` not a non-negative int, ``rate`` outside ``[0, 1)`` or ``alpha`` outside ``(0, 1)``.

    Example:
        >>> band_limit(32, 3e-5, 1e-3), band_limit(64, 3e-5, 1e-3), band_limit(1490, 3e-5, 1e-3)
        (0, 1, 1)
    """
    _band_args(n, rate)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be a float in (0, 1), got {alpha!r}")
    if n * rate <= alpha:
        return 0
    k = 1
    while k < n and (k < n * rate or band_tail(n, rate, k) > alpha):
        k += 1
    return k


@dataclass(frozen=True)
class BandCount:
    """The band-use count's decision on one claim (:func:`band_count`).

    Attributes:
        ok: whether the claim is within the count.
        band_limit: the most band uses it may make; None: no count (the tolerance sets no ``band_rate``).
        edge_limit: the most nucleus-edge uses it may make; None where they are not counted on their own.
        reason: why it is rejected ("" when ok).
    """

    ok: bool
    band_limit: int | None
    edge_limit: int | None
    reason: str = ""


def band_count(tc: TokenCheck, n: int, *, band_rate: float | None, band_alpha: float, edge_rate: float | None = None,
               edge_alpha: float = 5e-4, nucleus: bool = False, precision: str = "the job's precision") -> BandCount:
    """The band-use count of a claim of ``n`` checked tokens (``proofs/inference.md``, *The band-use count*).

    Every band use counts against ``band_limit(n, band_rate, band_alpha)``, as it always has. With an
    ``edge_rate`` and a nucleus (sampled, ``top_p < 1``), the *nucleus-edge* uses among them
    (:attr:`TokenCheck.edge_uses`: a token drawn from outside the verifier's own nucleus by more than a rank
    flip within the band explains, what a provider sampling with a wider nucleus makes) are also counted on
    their own, against ``band_limit(n, edge_rate, edge_alpha)``. An honest provider within both calibrated rates
    is rejected by the two counts with probability at most ``band_alpha + edge_alpha`` (the union bound); the
    second count only adds rejections, so no claim the first rejects passes.

    Args:
        tc: the token check of the claim.
        n: tokens checked.
        band_rate: the calibrated honest band-use rate per token (None: no count).
        band_alpha: the false-reject budget per generation of the band-use count.
        edge_rate: the calibrated honest nucleus-edge rate per token of a nucleus job (None: not counted apart).
        edge_alpha: the false-reject budget per generation of the nucleus-edge count.
        nucleus: whether the job samples from a nucleus (``temperature > 0`` and ``top_p < 1``).
        precision: the job's precision (named in the reason).

    Example:
        >>> one_edge = TokenCheck(True, -1, near_ties=1, ambiguous=1, edge_uses=1)
        >>> band_count(one_edge, 32, band_rate=2.4e-4, band_alpha=1e-3).ok  # one band use of 32 is allowed
        True
        >>> bc = band_count(one_edge, 32, band_rate=2.4e-4, band_alpha=1e-3, edge_rate=1.5e-5, nucleus=True)
        >>> bc.ok, bc.band_limit, bc.edge_limit  # but not from past the nucleus edge
        (False, 1, 0)
    """
    if band_rate is None:
        return BandCount(True, None, None)
    uses = tc.near_ties
    k = band_limit(n, band_rate, band_alpha)
    k_edge = None if edge_rate is None or not nucleus else band_limit(n, edge_rate, edge_alpha)
    if uses > k:
        return BandCount(False, k, k_edge, f"near-tie band: {uses} of {n} tokens pass only by the near-tie rule "
                         f"(allowed {k} at {precision}: honest rate <= {band_rate:g} per token, false-reject "
                         f"probability <= {band_alpha:g})")
    if k_edge is not None and tc.edge_uses > k_edge:
        return BandCount(False, k, k_edge, f"near-tie band: {tc.edge_uses} of {n} tokens lie outside the verifier's "
                         f"own nucleus beyond any rank flip within the band and pass only by the mass tolerance "
                         f"(nucleus-edge uses; allowed {k_edge} at {precision}: honest rate <= {edge_rate:g} per "
                         f"token, false-reject probability <= {edge_alpha:g})")
    return BandCount(True, k, k_edge)


def as_tokens(obj, vocab: int) -> np.ndarray | str:
    """A provider's tokens as 1-D int64 ids in ``[0, vocab)``, or the reason they are malformed (never raises)."""
    try:
        if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
            obj = obj.detach().cpu().numpy()
        if isinstance(obj, np.ndarray):
            obj = np.ndarray.view(obj, np.ndarray)  # the base class's view: no subclass method runs
            if obj.dtype.kind not in "iu":
                return f"tokens have dtype {obj.dtype}, not an integer dtype"
            if obj.ndim != 1:
                return f"tokens have shape {obj.shape}, not 1-D"
            # bound before copying: a broadcast view declares far more tokens than the provider sent
            _, problem = memory_span(obj)
            if problem is not None:
                return f"tokens {problem}"
            a = np.array(obj, dtype=np.int64, copy=True)
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


def mass_before(s: np.ndarray, p: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Per row, the probability mass ranked before ``tokens[i]`` (by score desc, ties by index, as the sampler).

    Args:
        s: scaled logits ``[n, vocab]``.
        p: their softmax ``[n, vocab]``.
        tokens: one token per row.
    """
    rows = np.arange(s.shape[0])
    st = s[rows, tokens][:, None]
    before = (s > st) | ((s == st) & (np.arange(s.shape[1])[None, :] < tokens[:, None]))
    return (p * before).sum(axis=1)


def _softmax(s: np.ndarray) -> np.ndarray:
    """Each row's softmax (``w / w.sum`` with ``w = exp(s - max)``), computed in place on one new array."""
    w = s - s.max(axis=1, keepdims=True)
    np.exp(w, out=w)
    w /= w.sum(axis=1, keepdims=True)
    return w


class _Sorted:
    """Each row's scaled logits sorted descending, to find the prefix where a monotone nucleus bound holds.

    Every nucleus bound of the rule ("mass of the tokens above ``s_j + delta`` is below a cut")
    is monotone in ``s_j``: it holds on a prefix of the descending order, equal scores together.
    So each bound is one cut per row, found by a vectorised binary search (``log2 V`` rounds of
    ``n`` look-ups), instead of a look-up for each of the ``n x V`` tokens.
    """

    def __init__(self, s: np.ndarray, p: np.ndarray, key: np.ndarray | None = None) -> None:
        """``key``: an array that orders every row as ``-s`` does (``-logits`` of float32 logits, ``s`` their
        float64 scaling: the same order, sorted faster), or None to sort ``-s``."""
        n, v = s.shape
        # quicksort is ~5x faster than a stable sort; it can only differ where a row has equal scores, and
        # those rows (rare: duplicate embeddings) are re-sorted stably so ties go by index, as the sampler's
        # flat_at[i, r]: the row-major index in s of row i's rank-r token (its token is flat_at - i * v, `order`)
        self.flat_at = flat_at = np.argsort(-s if key is None else key, axis=1)
        del key
        flat_at += (np.arange(n) * v)[:, None]
        s, p = np.ascontiguousarray(s), np.ascontiguousarray(p)
        self._s = s.ravel()
        ranked_s = self._s.take(flat_at)
        tied = np.flatnonzero((ranked_s[:, 1:] == ranked_s[:, :-1]).any(axis=1))
        if tied.size:
            flat_at[tied] = np.argsort(-s[tied], axis=1, kind="stable") + (tied * v)[:, None]
            ranked_s[tied] = self._s.take(flat_at[tied])
        self.p = p.ravel().take(flat_at)
        self.cm = np.empty((n, v + 1))  # cm[:, c]: the mass of the top c tokens
        self.cm[:, 0] = 0.0
        np.cumsum(self.p, axis=1, out=self.cm[:, 1:])
        # rows shifted apart (wider than any row's spread) so one flat ascending array serves every row
        # (computed over the sorted scores' own array: `at` reads them from s)
        self.off = 2.0 * (max(s.max(), -s.min()) + 1.0) + 1.0  # (the largest |s|, without an |s| array)
        self.flat = np.subtract((np.arange(n) * self.off)[:, None], ranked_s, out=ranked_s).ravel()
        self.n, self.v = n, v
        self._rows = np.arange(n)

    def at(self, rank: np.ndarray) -> np.ndarray:
        """Per row, the scaled logit of its token at ``rank`` (``[n]``)."""
        return self._s[self.flat_at[self._rows, rank]]

    @property
    def order(self) -> np.ndarray:
        """Each row's tokens by scaled logit descending (ties by index)."""
        return self.flat_at - (np.arange(self.n) * self.v)[:, None]

    def mass_above(self, x: np.ndarray, *, inclusive: bool) -> np.ndarray:
        """Per row, the mass of tokens with score ``> x`` (``>=`` if inclusive); ``x`` is ``[n]``."""
        rows = np.arange(self.n)
        q = np.clip(-x, -self.off / 2, self.off / 2) + rows * self.off
        count = np.searchsorted(self.flat, q, side="right" if inclusive else "left") - rows * self.v
        return self.cm[rows, np.clip(count, 0, self.v)]

    def cut(self, holds) -> np.ndarray:
        """Per row, how many of the top tokens satisfy ``holds(rank)`` (true on a prefix of ranks)."""
        lo, hi = np.zeros(self.n, np.int64), np.full(self.n, self.v, np.int64)  # the cut lies in [lo, hi]
        while (lo < hi).any():
            active = lo < hi
            mid = (lo + hi + 1) // 2
            h = holds(np.clip(mid - 1, 0, self.v - 1))
            lo = np.where(active & h, mid, lo)
            hi = np.where(active & ~h, mid - 1, hi)
        return lo


def maybe_in_nucleus(s: np.ndarray, top_p: float, eps: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the tokens that may be in the nucleus of scaled logits within ``eps / 2`` of ``s``.

    A token ``j`` may be (``e^{-eps} * mass{s_k > s_j + eps} < top_p``, the relaxed membership test of
    :func:`check_tokens`) on a prefix of each row's descending order.

    Args:
        s: scaled logits ``[n, vocab]`` (float64).
        top_p: the nucleus mass.
        eps: the band (a float or one per row).

    Returns:
        ``(order, count)``: each row's tokens by score descending and how many of the first ones may be in.
    """
    n = s.shape[0]
    rows = np.arange(n)
    st = _Sorted(s, _softmax(s))
    eps = np.broadcast_to(np.asarray(eps, dtype=np.float64), (n,))
    count = st.cut(lambda k: st.mass_above(st.at(k) + eps, inclusive=False) * np.exp(-eps) < top_p)
    return st.order, count


def check_tokens(logits: np.ndarray, tokens: np.ndarray, sampling: SamplingParams, *, first_position: int,
                 atol: float, mass_atol: float | None = None, nucleus_atol: float | np.ndarray | None = None
                 ) -> TokenCheck:
    """Check each token against the logits that the verifier recomputed for it.

    Args:
        logits: float32 ``[n, vocab]``: row ``i`` the logits that produced token ``i``.
        tokens: the ``n`` tokens.
        sampling: the job's sampling parameters.
        first_position: sequence position of the first generated token (the prompt length).
        atol: the calibrated bound on the per-entry logit difference between honest runs.
        mass_atol: the calibrated bound on the difference of the mass ranked before a token (None: only
            the worst case implied by ``atol``).
        nucleus_atol: the per-entry bound used where the rule reads the whole softmax (nucleus membership;
            a float, or one per row), when it is wider than ``atol`` because only some of ``logits`` are the
            verifier's own and the rest are known to within a tolerance (the sampled-glue check: the
            provider's logits within Freivalds' head tolerance). None: ``atol``. Scores are compared with
            ``atol`` alone, so every token a score comparison reads must be exact in ``logits``.
    """
    lz = np.asarray(logits)
    n, vocab = lz.shape
    rows = np.arange(n)
    if sampling.greedy:
        z = np.asarray(lz, dtype=np.float64)
        zmax = z.max(axis=1)
        passing = z >= (zmax - 2 * atol)[:, None]
        ok = passing[rows, tokens]
        near = int((ok & (tokens != z.argmax(axis=1))).sum())  # passing tokens that are not the verifier's own
        ambiguous = int((passing.sum(axis=1) > 1).sum())
        bad = np.flatnonzero(~ok)
        return TokenCheck(bool(ok.all()), int(bad[0]) if bad.size else -1, near, ambiguous)
    T, top_p = sampling.temperature, sampling.top_p
    eps = 2 * atol / T
    eps_m = eps if nucleus_atol is None else 2 * np.asarray(nucleus_atol, dtype=np.float64) / T  # mass bounds
    if lz.dtype.kind not in "biuf":  # (object, complex, ...: converted as np.asarray(logits, np.float64) does)
        lz = np.asarray(lz, dtype=np.float64)
    # float64(logits) / T without a float64 copy of the logits first; C order, so each row sums as the sampler's does
    s = np.true_divide(lz, T, dtype=np.float64, order="C")
    score = gumbel(sampling.seed, first_position + rows, vocab)
    score += s  # s + gumbel, in place
    if top_p < 1.0:
        p = _softmax(s)
        # float32 logits order every row as s = float64(logits) / T does (exact widening, then a monotone map: it
        # merges two float32 values only into equal scores, subnormal ones at a huge T, and rows with equal scores
        # are re-sorted stably from s): sort the narrower array, where every entry is finite
        fast = lz.dtype == np.float32 and T > 0 and np.isfinite(s).all()
        st = _Sorted(s, p, np.negative(lz) if fast else None)
        if mass_atol is None:
            del p  # (read again only by mass_before: one n x V array fewer alive from here)
        at = st.at

        # t may be in the provider's nucleus / j is certainly in it / j is in the verifier's own nucleus
        relaxed = st.cut(lambda k: st.mass_above(at(k) + eps_m, inclusive=False) * np.exp(-eps_m) < top_p)
        certain = st.cut(lambda k: (st.mass_above(at(k) - eps_m, inclusive=True) - st.p[rows, k]) * np.exp(eps_m)
                         < top_p)
        if mass_atol is not None:  # the mass ranked before rank k (ties by index, as the sampler ranks)
            relaxed = np.minimum(relaxed, (st.cm[:, :vocab] < top_p + mass_atol).sum(axis=1))
            certain = np.maximum(certain, (st.cm[:, :vocab] + mass_atol < top_p).sum(axis=1))
        ranked = score.ravel().take(st.flat_at)  # each row's scores in the order of its scaled logits
        in_prefix = np.arange(vocab)[None, :]
        # the best score over each row's certain prefix: the running maximum at its end (-inf for an empty one)
        buf = np.maximum.accumulate(ranked, axis=1)
        best = np.where(certain > 0, buf[rows, np.maximum(certain - 1, 0)], -np.inf)
        # the verifier's own draw, exactly as the sampler makes it (sampling.sample): the best score over the tokens
        # whose mass ranked before them (ties by index) is below top_p, that mass computed as the sampler does
        # (in place over st.p, which nothing reads after this: one n x V array fewer to allocate)
        before_ranked, st.p = np.subtract(st.cm[:, 1:], st.p, out=st.p), None
        own_nucleus = np.empty((n, vocab), dtype=bool)
        own_nucleus.ravel()[st.flat_at] = before_ranked < top_p
        del before_ranked
        buf.fill(-np.inf)  # (the running maximum's array, reused: np.where(own_nucleus, score, -inf))
        np.copyto(buf, score, where=own_nucleus)
        own = buf.argmax(axis=1)
        del buf
        s_t = s[rows, tokens]
        ok = (st.mass_above(s_t + eps_m, inclusive=False) * np.exp(-eps_m) < top_p) & (score[rows, tokens] >= best - eps)
        if mass_atol is not None:
            ok &= mass_before(s, p, tokens) < top_p + mass_atol
        # nucleus-edge uses: passing tokens outside the verifier's nucleus even granting every rank flip the logit
        # band allows (the tokens whose scaled logit exceeds t's by more than the band alone hold >= top_p); such a
        # token is outside the verifier's own nucleus too, up to a rounding of the cumulative mass at the cut, which
        # the last term takes out: an edge use is never the verifier's own draw, so each is a band use
        deep = st.mass_above(s_t + eps_m, inclusive=False) >= top_p
        outside = ok & ~own_nucleus[rows, tokens]
        edge = int((outside & deep).sum())
        n_outside = int(outside.sum())
        del own_nucleus
        # positions where more than one token passes the score test within the relaxed prefix, counted as
        # (np.where(in_prefix < relaxed, ranked, -inf) >= best - eps).sum(axis=1) > 1 without the float array:
        # outside the prefix that -inf passes only where best - eps is -inf itself
        floor = best - eps
        passing = ((ranked >= floor[:, None]) & (in_prefix < relaxed[:, None])).sum(axis=1)
        passing += np.where(floor == -np.inf, vocab - relaxed, 0)
        ambiguous = int((passing > 1).sum())
    else:
        best = score.max(axis=1)
        ok = score[rows, tokens] >= best - eps
        own = score.argmax(axis=1)
        ambiguous = int(((score >= (best - eps)[:, None]).sum(axis=1) > 1).sum())
        edge = n_outside = 0
    near = int((ok & (own != tokens)).sum())
    bad = np.flatnonzero(~ok)
    return TokenCheck(bool(ok.all()), int(bad[0]) if bad.size else -1, near, ambiguous, edge, n_outside)
