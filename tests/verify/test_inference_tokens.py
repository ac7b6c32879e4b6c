"""The token check's vectorised rule equals its definition, token by token (proofs/inference.md, near-tie rule)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcompute.verify.inference.tokens import check_tokens
from vcompute.workloads.lm.sampling import SamplingParams, gumbel, nucleus_mass_before, sample


def _reference(z, tokens, sp, first, atol, mass_atol):
    """The rule as stated, one token at a time (O(n V^2)):
    ``(ok, first_bad, ambiguous, band uses, edge uses, outside uses)``."""
    n, v = z.shape
    ok, amb, near, edge, outside = [], 0, 0, 0, 0
    for i in range(n):
        own = sample(z[i], temperature=sp.temperature, top_p=sp.top_p, seed=sp.seed, position=first + i)
        t = tokens[i]
        if sp.greedy:
            passing = z[i] >= z[i].max() - 2 * atol
            before = np.zeros(v)
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
        ok.append(bool(passing[t]))
        amb += int(passing.sum() > 1)
        near += bool(passing[t]) and own != t  # a band use: not the verifier's own draw
        if not sp.greedy and sp.top_p < 1.0:  # outside its nucleus beyond any rank flip within the band
            edge += bool(passing[t]) and own != t and p[s > s[t] + eps].sum() >= sp.top_p
            outside += bool(passing[t]) and nucleus_mass_before(s)[t] >= sp.top_p  # the sampler's own mass
    bad = [i for i, o in enumerate(ok) if not o]
    return all(ok), (bad[0] if bad else -1), amb, near, edge, outside


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 12), v=st.integers(2, 80),
       temperature=st.sampled_from([0.0, 0.3, 0.8, 1.5]), top_p=st.sampled_from([0.5, 0.9, 0.95, 1.0]),
       atol=st.sampled_from([1e-4, 0.05, 0.25]), mass_atol=st.sampled_from([None, 0.0, 0.01, 0.1]),
       scale=st.sampled_from([0.1, 1.0, 5.0]), tied=st.booleans(), f32=st.booleans())
def test_vectorised_token_rule_equals_its_definition(seed, n, v, temperature, top_p, atol, mass_atol, scale, tied,
                                                     f32):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, v)) * scale
    if tied:  # exactly equal logits (duplicate embedding rows): ties go by index, as the sampler ranks
        z[:, rng.integers(v, size=v // 2)] = z[:, rng.integers(v, size=v // 2)]
    if f32:  # float32 logits, as the verifier's prefill gives them: the rule sorts them, not their float64 scaling
        z32 = z.astype(np.float32)
        z = z32.astype(np.float64)
    sp = SamplingParams(temperature, top_p, seed % 1000)
    honest = np.array([sample(z[i], temperature=temperature, top_p=top_p, seed=sp.seed, position=3 + i)
                       for i in range(n)])
    mixed = honest.copy()
    mixed[rng.integers(n, size=n // 2 + 1)] = rng.integers(v, size=n // 2 + 1)
    for toks in (honest, mixed):
        got = check_tokens(z32 if f32 else z, toks, sp, first_position=3, atol=atol, mass_atol=mass_atol)
        assert (got.ok, got.first_bad, got.ambiguous, got.near_ties, got.edge_uses, got.outside_uses) == _reference(
            z, toks, sp, 3, atol, mass_atol)
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


def _edge_rows(n_rows: int, seed: int = 11):
    """Rows whose nucleus (top-p 0.95) is token 0 alone, and the positions where token 1 (just outside it, within
    a mass tolerance of 0.018) out-scores it by the replayed draw: a draw from a wider nucleus the rule admits."""
    p = np.array([0.951, 0.04, 0.009])
    positions = np.arange(20_000)
    g = gumbel(seed, positions, 3)
    hits = positions[g[:, 1] - g[:, 0] >= np.log(p[0] / p[1])][:n_rows]
    assert hits.size == n_rows
    return np.log(p), hits


def test_a_draw_from_just_outside_the_verifiers_nucleus_is_a_nucleus_edge_use():
    z, hits = _edge_rows(3)
    sp = SamplingParams(1.0, 0.95, 11)
    for pos in hits.tolist():
        tc = check_tokens(z[None, :], np.array([1]), sp, first_position=int(pos), atol=0.1, mass_atol=0.018)
        assert tc.ok and tc.near_ties == 1 and tc.edge_uses == 1, tc
        own = check_tokens(z[None, :], np.array([0]), sp, first_position=int(pos), atol=0.1, mass_atol=0.018)
        assert own.ok and own.near_ties == 0 and own.edge_uses == 0  # the verifier's own draw is no band use
        # without the mass tolerance the worst case of atol alone decides (admitting it too); with a top-p of 1
        # there is no nucleus edge, and a greedy job has none either
        assert check_tokens(z[None, :], np.array([1]), SamplingParams(1.0, 1.0, 11), first_position=int(pos),
                            atol=0.1).edge_uses == 0
        assert check_tokens(z[None, :], np.array([1]), SamplingParams(0.0, 1.0, 11), first_position=int(pos),
                            atol=2.0).edge_uses == 0


def test_band_count_also_counts_nucleus_edge_uses_on_their_own():
    from vcompute.verify.inference.tokens import TokenCheck, band_count, band_limit
    from vcompute.verify.inference.tolerance import Tolerance

    kw = dict(band_rate=2.4e-4, band_alpha=1e-3, precision="bfloat16")
    one_edge = TokenCheck(True, -1, near_ties=1, ambiguous=1, edge_uses=1)
    one_score = TokenCheck(True, -1, near_ties=1, ambiguous=1, edge_uses=0)
    # the band-use count alone (no edge_rate, or no nucleus): one use of 32 is within k = 1
    for tc in (one_edge, one_score):
        for edge_rate, nucleus in ((None, True), (1.5e-5, False)):
            bc = band_count(tc, 32, edge_rate=edge_rate, nucleus=nucleus, **kw)
            assert bc.ok and bc.band_limit == band_limit(32, 2.4e-4, 1e-3) == 1 and bc.edge_limit is None
    # with the edge count: an edge use of 32 is over k_edge = band_limit(32, 1.5e-5, 5e-4) = 0, a score use is not
    bc = band_count(one_edge, 32, edge_rate=1.5e-5, nucleus=True, **kw)
    assert not bc.ok and (bc.band_limit, bc.edge_limit) == (1, 0)
    assert bc.reason.startswith("near-tie band:") and "outside the verifier's own nucleus" in bc.reason
    assert band_count(one_score, 32, edge_rate=1.5e-5, nucleus=True, **kw).ok
    # it only adds rejections: over the band-use limit is rejected whatever the edge count says
    for n in (3, 32, 64, 160, 448):
        k, k_e = band_limit(n, 2.4e-4, 1e-3), band_limit(n, 1.5e-5, 5e-4)
        for uses in range(k + 3):
            for edge in range(uses + 1):
                tc = TokenCheck(True, -1, near_ties=uses, ambiguous=uses, edge_uses=edge)
                got = band_count(tc, n, edge_rate=1.5e-5, nucleus=True, **kw)
                assert got.ok == (uses <= k and edge <= k_e)
                assert got.ok <= band_count(tc, n, **kw).ok
    none = band_count(one_edge, 32, band_rate=None, band_alpha=1e-3, edge_rate=1.5e-5, nucleus=True)
    assert none.ok and none.band_limit is None and none.edge_limit is None
    for bad in (0.0, 1.0, True, "0.1"):
        with pytest.raises(ValueError, match="edge_alpha"):
            Tolerance(rtol=0.0, max_misses=0, logit_atol=0.0, edge_alpha=bad)
    for name in ("edge_rate", "band_rate"):
        for bad in (1.0, -1e-9, float("nan"), True):
            with pytest.raises(ValueError, match=name):
                Tolerance(rtol=0.0, max_misses=0, logit_atol=0.0, **{name: bad})
        with pytest.raises(TypeError, match=name):
            Tolerance(rtol=0.0, max_misses=0, logit_atol=0.0, **{name: "1e-5"})


def test_float32_logits_give_the_verdicts_of_their_float64_values_at_full_vocabulary_size():
    """The rule sorts float32 logits in their own dtype (faster); each verdict is the float64 path's, ties included."""
    rng = np.random.default_rng(4)
    for trial in range(12):
        n, v = 64, 512
        z32 = (rng.normal(size=(n, v)) * [0.5, 2.0, 8.0][trial % 3]).astype(np.float32)
        if trial % 2:
            z32 = np.round(z32 * 4) / 4  # many exactly equal logits per row
        sp = SamplingParams([0.3, 0.8, 1.3][trial % 3], [0.9, 0.95][trial % 2], trial)
        z = z32.astype(np.float64)
        toks = np.array([sample(z[i], temperature=sp.temperature, top_p=sp.top_p, seed=sp.seed, position=9 + i)
                         for i in range(n)])
        toks[rng.integers(n, size=8)] = rng.integers(v, size=8)
        for mass_atol in (None, 0.05):
            a = check_tokens(z32, toks, sp, first_position=9, atol=0.02, mass_atol=mass_atol)
            b = check_tokens(z, toks, sp, first_position=9, atol=0.02, mass_atol=mass_atol)
            assert a == b


def test_uniforms_are_splitmix64_of_the_seed_the_position_and_the_token():
    """The replayed draws are a fixed function (a provider's claims from any version still replay): pure-Python
    SplitMix64 of ``key ^ splitmix(position << 20 + token)`` with ``key = splitmix(seed)``, top 53 bits."""
    from vcompute.workloads.lm.sampling import uniforms

    mask = 2**64 - 1

    def mix(x):
        x = (x + 0x9E3779B97F4A7C15) & mask
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    for seed in (0, 7, 2**63 - 1):
        got = uniforms(seed, [0, 5, 4095], 9)
        for r, pos in enumerate((0, 5, 4095)):
            for j in range(9):
                want = ((mix(mix(seed) ^ mix((pos << 20) + j)) >> 11) + 0.5) * 2.0**-53
                assert got[r, j] == want
    assert (-np.log(-np.log(uniforms(3, [2], 5)))).tolist() == gumbel(3, [2], 5).tolist()


def test_the_samplers_own_draw_is_never_a_band_use_where_logits_tie():
    """Rows with exactly equal logits: the verifier's own draw is the sampler's (its nucleus by the mass ranked
    before each token, ties by index), so honest tokens use the band nowhere. Before, the own draw was taken over
    the tokens whose mass *strictly above* was below top_p, which charged this honest claim one band use."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 12)) * 0.1
    z[:, rng.integers(12, size=6)] = z[:, rng.integers(12, size=6)]
    sp = SamplingParams(0.3, 0.95, 0)
    honest = np.array([sample(z[i], temperature=0.3, top_p=0.95, seed=0, position=3 + i) for i in range(5)])
    got = check_tokens(z, honest, sp, first_position=3, atol=1e-4)
    assert got.ok and got.near_ties == 0 and got.edge_uses == 0


def test_own_draw_and_edge_uses_hold_for_any_memory_layout_and_at_a_rounding_of_the_cut():
    """Found in review: Fortran-ordered logits summed each row's softmax in another order than the sampler (an honest
    draw was charged a band use), and at a top_p equal to a cumulative mass up to rounding the verifier's own draw
    was counted a nucleus-edge use. An edge use is now also outside the own nucleus itself, so a subset of the
    band uses by construction."""
    z = np.random.default_rng(0).normal(0, 1, (2, 64)).astype(np.float32)
    sp = SamplingParams(1.0, 0.1837727084920322, 11)
    honest = np.array([sample(z[j], temperature=1.0, top_p=sp.top_p, seed=11, position=j) for j in range(2)])
    for logits in (z, np.asfortranarray(z), z[:, ::-1][:, ::-1]):
        tc = check_tokens(logits, honest, sp, first_position=0, atol=1e-4)
        assert tc.ok and tc.near_ties == 0 and tc.edge_uses == 0
    z = np.array([[3.96861, 5.00541, 3.0272791, 1.9017812, -0.1107373, 1.0199585]], np.float32)
    sp = SamplingParams(1.0, 0.640047446471112, 2)  # the top token's mass, to the last bits
    own = sample(z[0], temperature=1.0, top_p=sp.top_p, seed=2, position=0)
    tc = check_tokens(z, np.array([own]), sp, first_position=0, atol=1e-6)
    assert tc.ok and (tc.near_ties, tc.edge_uses) == (0, 0)
