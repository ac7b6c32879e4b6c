"""Hypothesis property tests of Freivalds against the claims in proofs/freivalds.md.

Completeness (claim C1): honest float products of any shape, scale mix and bias
are accepted. Soundness (claim S2): a claim with an entry off from the exact
product by more than its row tolerance passes one round with probability at
most 1/2; each example runs 40 independent one-round checks of the tight case
(+d, -d in one row) and fails spuriously with probability < 1e-6 (binomial
tail), so the whole test (<= 25 examples) has confidence > 1 - 2.5e-5.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcompute.verify import Freivalds

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def products(draw):
    m, k, n = (draw(st.integers(1, 48)) for _ in range(3))
    seed = draw(st.integers(0, 2**32 - 1))
    mean = draw(st.sampled_from([0.0, 0.5, 1.0, -4.0]))
    spread = draw(st.floats(0.0, 3.0))  # decades of magnitude mixed across rows / columns
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(seed)
    a = (mean + rng.standard_normal((m, k))) * 10.0 ** rng.uniform(-spread, spread, size=(m, 1))
    b = (mean + rng.standard_normal((k, n))) * 10.0 ** rng.uniform(-spread, spread, size=(1, n))
    return a.astype(dtype), b.astype(dtype), seed


@SETTINGS
@given(products(), st.integers(1, 8))
def test_completeness_honest_products_always_accepted(p, rounds):
    a, b, seed = p
    v = Freivalds(rounds=rounds).check(a, b, a @ b, seed=seed)
    assert v.accepted, v.reason
    assert v.details["max_error_ratio"] < 0.5  # and with a wide margin: the model is conservative


@SETTINGS
@given(products(), st.floats(1.3, 50.0), st.data())
def test_soundness_entry_above_tolerance_caught_half_the_time_per_round(p, factor, data):
    a, b, seed = p
    c = a @ b
    n = c.shape[1]
    fr = Freivalds(rounds=1)
    tol = fr.row_tolerances(a, b, c)
    i = data.draw(st.integers(0, c.shape[0] - 1))
    j1 = data.draw(st.integers(0, n - 1))
    bad = c.astype(np.float64)
    delta = factor * tol[i] * (1 + 1e-6)
    bad[i, j1] += delta
    if n > 1:  # the tight case: a cancelling partner in the same row
        j2 = data.draw(st.integers(0, n - 1).filter(lambda j: j != j1))
        bad[i, j2] -= delta
    bad = bad.astype(c.dtype)
    if np.array_equal(bad, c):  # the perturbation vanished in rounding: nothing to detect
        return
    trials = 40
    caught = sum(not fr.check(a, b, bad, seed=seed + t).accepted for t in range(trials))
    # P(Binomial(40, 1/2) < 8) < 1e-6
    assert caught >= 8, (caught, trials)
