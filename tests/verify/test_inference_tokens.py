"""The token check's vectorised rule equals its definition, token by token (proofs/inference.md, near-tie rule)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vcompute.verify.inference.tokens import check_tokens
from vcompute.workloads.lm.sampling import SamplingParams, gumbel, sample


def _reference(z, tokens, sp, first, atol, mass_atol):
    """The rule as stated, one token at a time (O(n V^2))."""
    n, v = z.shape
    ok, amb = [], 0
    for i in range(n):
        if sp.greedy:
            passing = z[i] >= z[i].max() - 2 * atol
        else:
            eps = 2 * atol / sp.temperature
            s = z[i] / sp.temperature
            p = np.exp(s - s.max())
            p /= p.sum()
            score = s + gumbel(sp.seed, [first + i], v)[0]
            before = np.array([p[(s > s[j]) | ((s == s[j]) & (np.arange(v) < j))].sum() for j in range(v)])
            relaxed = np.array([p[s > s[j] + eps].sum() * np.exp(-eps) < sp.top_p for j in range(v)])
            certain = np.array([(p[s >= s[j] - eps].sum() - p[j]) * np.exp(eps) < sp.top_p for j in range(v)])
            if mass_atol is not None:
                relaxed &= before < sp.top_p + mass_atol
                certain |= before + mass_atol < sp.top_p
            if sp.top_p == 1.0:
                relaxed = certain = np.ones(v, bool)
            best = score[certain].max() if certain.any() else -np.inf
            passing = relaxed & (score >= best - eps)
        ok.append(bool(passing[tokens[i]]))
        amb += int(passing.sum() > 1)
    bad = [i for i, o in enumerate(ok) if not o]
    return all(ok), (bad[0] if bad else -1), amb


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 12), v=st.integers(2, 80),
       temperature=st.sampled_from([0.0, 0.3, 0.8, 1.5]), top_p=st.sampled_from([0.5, 0.9, 0.95, 1.0]),
       atol=st.sampled_from([1e-4, 0.05, 0.25]), mass_atol=st.sampled_from([None, 0.0, 0.01, 0.1]),
       scale=st.sampled_from([0.1, 1.0, 5.0]), tied=st.booleans())
def test_vectorised_token_rule_equals_its_definition(seed, n, v, temperature, top_p, atol, mass_atol, scale, tied):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, v)) * scale
    if tied:  # exactly equal logits (duplicate embedding rows): ties go by index, as the sampler ranks
        z[:, rng.integers(v, size=v // 2)] = z[:, rng.integers(v, size=v // 2)]
    sp = SamplingParams(temperature, top_p, seed % 1000)
    honest = np.array([sample(z[i], temperature=temperature, top_p=top_p, seed=sp.seed, position=3 + i)
                       for i in range(n)])
    mixed = honest.copy()
    mixed[rng.integers(n, size=n // 2 + 1)] = rng.integers(v, size=n // 2 + 1)
    for toks in (honest, mixed):
        got = check_tokens(z, toks, sp, first_position=3, atol=atol, mass_atol=mass_atol)
        assert (got.ok, got.first_bad, got.ambiguous) == _reference(z, toks, sp, 3, atol, mass_atol)
    assert check_tokens(z, honest, sp, first_position=3, atol=atol, mass_atol=mass_atol).ok  # complete


def test_band_tail_is_the_binomial_tail_and_band_limit_its_first_k_below_alpha():
    import math

    import pytest

    from vcompute.verify.inference.tokens import band_limit, band_tail

    for n, r in [(32, 3e-5), (64, 1e-3), (300, 0.02), (5, 0.5)]:
        pmf = [math.comb(n, i) * r**i * (1 - r) ** (n - i) for i in range(n + 1)]
        for k in range(min(n, 6)):
            assert band_tail(n, r, k) == pytest.approx(sum(pmf[k + 1:]), rel=1e-9, abs=1e-300)
        for alpha in (1e-9, 1e-6, 1e-3, 0.1):
            k = band_limit(n, r, alpha)
            if n * r <= alpha:  # the union bound fits: no band use allowed
                assert k == 0
            else:  # the first k >= max(1, n r) whose binomial tail fits (Hoeffding's condition)
                first = max(1, math.ceil(n * r))
                assert k >= first and band_tail(n, r, k) <= alpha
                assert k == first or band_tail(n, r, k - 1) > alpha
    # the shipped bound: a 32-token claim may use the band on no token, a 34-token one on one
    assert band_limit(32, 3e-5, 1e-3) == 0 and band_limit(34, 3e-5, 1e-3) == 1
    assert band_tail(10, 0.0, 0) == 0.0 and band_tail(3, 0.1, 3) == 0.0
    for bad in [dict(n=-1, rate=0.1, alpha=0.1), dict(n=3, rate=1.0, alpha=0.1), dict(n=3, rate=0.1, alpha=0.0),
                dict(n=3.0, rate=0.1, alpha=0.1), dict(n=3, rate=True, alpha=0.1)]:
        with pytest.raises(ValueError):
            band_limit(**bad)
