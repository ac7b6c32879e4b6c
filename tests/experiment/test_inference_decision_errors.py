"""The calibration's decision-relevant errors: what the token rule's logit and mass bounds must cover."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.experiment.tasks.inference import _decision_errors, _mass_all
from vcompute.verify.inference.tokens import mass_before

SAMPLED = {"temperature": 0.8, "top_p": 0.95}
GREEDY = {"temperature": 0.0, "top_p": 1.0}


@pytest.fixture()
def logits():
    return np.random.default_rng(0).normal(0, 3, size=(6, 50))


def test_mass_all_is_the_samplers_mass_before_for_every_token(logits):
    m = _mass_all(logits, 0.8)
    s = logits / 0.8
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    for t in range(logits.shape[1]):
        np.testing.assert_allclose(m[:, t], mass_before(s, p, np.full(len(s), t)), atol=1e-12)


def test_equal_logits_need_nothing(logits):
    assert _decision_errors(logits, logits.copy(), SAMPLED) == (0.0, 0.0)


def test_a_tail_logits_error_is_not_a_decided_one(logits):
    ver = logits.copy()
    tail = np.argmin(logits, axis=1)
    ver[np.arange(len(ver)), tail] -= 0.5  # far outside every nucleus: the rule reads it only through the mass
    assert np.abs(ver - logits).max() == pytest.approx(0.5)
    logit, _ = _decision_errors(logits, ver, GREEDY)
    assert logit == 0.0


def test_an_error_on_the_argmax_is_reported(logits):
    ver = logits.copy()
    ver[np.arange(len(ver)), np.argmax(logits, axis=1)] += 0.03
    assert _decision_errors(logits, ver, GREEDY) == (pytest.approx(0.03), 0.0)


def test_a_token_crossing_the_nucleus_cut_needs_mass(logits):
    # raise the token just outside the provider's 0.95 nucleus on the verifier's side: the provider could not draw
    # it, the verifier's mass before it falls below the cut, so mass_atol must cover the gap
    mp = _mass_all(logits, SAMPLED["temperature"])
    row = 0
    outside = np.flatnonzero(mp[row] >= SAMPLED["top_p"])
    j = outside[np.argmin(mp[row, outside])]
    ver = logits.copy()
    ver[row, j] += 2.0
    _, need = _decision_errors(logits, ver, SAMPLED)
    mv = _mass_all(ver, SAMPLED["temperature"])
    assert mv[row, j] < SAMPLED["top_p"]
    assert need >= SAMPLED["top_p"] - mv[row, j] > 0


def test_gap_mass_is_the_chance_of_an_honest_draw_the_mass_bound_excludes():
    from vcompute.experiment.tasks.inference import _gap_mass

    sp = {"temperature": 1.0, "top_p": 0.9}
    # provider: probabilities 0.5, 0.3, 0.15, 0.05 -> its nucleus is tokens 0-2 (mass before token 2: 0.8 < 0.9)
    prov = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    assert _gap_mass(prov, prov.copy(), sp, 0.01) == 0.0
    # verifier: token 2's mass before is 0.95 >= 0.9 + 0.01, so the provider's draw of it (0.15 / 0.95) is excluded
    ver = np.log(np.array([[0.6, 0.35, 0.04, 0.01]]))
    assert _gap_mass(prov, ver, sp, 0.01) == pytest.approx(0.15 / 0.95)
    assert _gap_mass(prov, ver, sp, 0.06) == 0.0  # a mass bound of 0.06 covers it
    assert _gap_mass(prov, ver, GREEDY, 0.01) == 0.0 and _gap_mass(prov, ver, sp, None) == 0.0
    # the other direction: token 2 is outside the provider's nucleus (mass before 0.91) but the verifier counts it
    # certainly in (0.8 + 0.05 < 0.9); it decides the draw at most with the chance it wins against the nucleus
    prov2 = np.log(np.array([[0.6, 0.31, 0.05, 0.04]]))
    ver2 = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    assert _gap_mass(prov2, ver2, sp, 0.05) == pytest.approx(0.05 / (0.91 + 0.05))
    assert _gap_mass(prov2, ver2, sp, 0.11) == 0.0
