"""Adaptive replication policies: rules, registry, and state that survives serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vcompute.core.registry import UnknownPluginError
from vcompute.trust.policies import (POLICIES, Blacklist, ConsecutiveValid, Credibility, ErrorRate,
                                      FixedReplication, ReplicationPolicy, create_policy, policy_from_state)
from vcompute.trust.correlated import coordinated_group_credibility
from vcompute.trust.voting import group_credibility, worker_credibility

FACTORIES = {
    "fixed": lambda: FixedReplication(k=3),
    "consecutive_valid": lambda: ConsecutiveValid(threshold=3, min_check=0.05),
    "error_rate": lambda: ErrorRate(limit=0.08),
    "credibility": lambda: Credibility(f=0.3, threshold=0.99),
    "blacklist": lambda: Blacklist(ConsecutiveValid(threshold=2), max_invalid=2, max_quota=8),
}

history = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["valid", "invalid"]),
                             st.sampled_from(["replication", "spotcheck"])), max_size=60)


@pytest.mark.parametrize("name", sorted(FACTORIES))
@given(events=history)
def test_state_survives_json_round_trip(name, events):
    pol = FACTORIES[name]()
    for pid, outcome, source in events:
        pol.record(pid, outcome, source=source)
    state = json.loads(json.dumps(pol.state_dict()))
    back = policy_from_state(state)
    assert back.state_dict() == pol.state_dict()
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    for pid in ("a", "b", "c", "new"):
        assert back.allowed(pid) == pol.allowed(pid)
        assert [back.replicas_for(pid, r2) for _ in range(20)] == [pol.replicas_for(pid, r1) for _ in range(20)]


def test_all_builtins_registered_and_follow_the_protocol():
    assert set(FACTORIES) <= set(POLICIES.names())
    for make in FACTORIES.values():
        assert isinstance(make(), ReplicationPolicy)
    with pytest.raises(UnknownPluginError, match="consecutive_valid"):
        create_policy("trust_me")
    with pytest.raises(ValueError, match="name"):
        policy_from_state({"params": {}})


def test_consecutive_valid_is_boinc_rule():
    p = ConsecutiveValid(threshold=10)
    rng = np.random.default_rng(0)
    assert all(p.replicas_for("h", rng) == 2 for _ in range(50))
    for _ in range(20):
        p.record("h", "valid")
    assert p.trust_probability("h") == pytest.approx(1 - 1 / 20)
    trusted = np.mean([p.replicas_for("h", rng) == 1 for _ in range(4000)])
    assert abs(trusted - 0.95) < 0.02
    p.record("h", "invalid")
    assert p.trust_probability("h") == 0.0


def test_min_check_floors_checking():
    p = ConsecutiveValid(threshold=1, min_check=0.1)
    for _ in range(1000):
        p.record("h", "valid")
    assert p.trust_probability("h") == pytest.approx(0.9)


def test_error_rate_rule():
    p = ErrorRate(limit=0.05, initial=0.1, decay=0.95, penalty=0.1)
    assert p.check_probability("h") == 1.0
    for _ in range(14):
        p.record("h", "valid")
    assert p.providers["h"]["error_rate"] == pytest.approx(0.1 * 0.95**14)
    assert p.check_probability("h") == pytest.approx(2 * 0.95**14)
    p.record("h", "invalid")
    assert p.check_probability("h") == 1.0


def test_credibility_counts_only_spot_checks_and_blacklists():
    p = Credibility(f=0.2, threshold=0.999, collusion="independent")
    for _ in range(5):
        p.record("w", "valid")  # votes do not raise credibility
    assert p.credibility("w") == pytest.approx(0.8)
    for _ in range(10):
        p.record("w", "valid", source="spotcheck")
    c = worker_credibility(0.2, 10)
    assert p.credibility("w") == pytest.approx(c)
    m = p.replicas_for("w", np.random.default_rng(0))
    assert group_credibility([[c] * m], 0) >= 0.999 > group_credibility([[c] * (m - 1)], 0)
    p.record("w", "invalid", source="spotcheck")
    assert not p.allowed("w") and p.credibility("w") == 0.0


def test_blacklist_bans_and_throttles():
    p = Blacklist(ConsecutiveValid(), max_invalid=2, max_quota=16)
    p.record("h", "invalid")
    assert p.allowed("h") and p.quota("h") == 8
    p.record("h", "valid")
    assert p.quota("h") == 16
    p.record("h", "invalid")
    assert not p.allowed("h") and p.quota("h") == 0
    assert p.inner.providers["h"]["cv"] == 0


@pytest.mark.parametrize("bad", [dict(k=0), dict(k=True)])
def test_bad_parameters(bad):
    with pytest.raises(ValueError):
        FixedReplication(**bad)
    with pytest.raises(ValueError):
        ConsecutiveValid().record("h", "maybe")


def test_credibility_defaults_to_the_coordinated_bound():
    """C9: by default agreeing results get no independence discount (coordinated colluders)."""
    rng = np.random.default_rng(0)
    more = 0
    for passed in (0, 1, 3, 10, 100):
        ind = Credibility(f=0.2, threshold=0.999, collusion="independent")
        coord = Credibility(f=0.2, threshold=0.999)
        for p in (ind, coord):
            for _ in range(passed):
                p.record("w", "valid", source="spotcheck")
        m_ind, m_coord = ind.replicas_for("w", rng), coord.replicas_for("w", rng)
        assert m_coord >= m_ind
        more += m_coord > m_ind
        assert coordinated_group_credibility([[passed] * m_coord], 0, f=0.2) >= 0.999
        if m_coord > 1:
            assert coordinated_group_credibility([[passed] * (m_coord - 1)], 0, f=0.2) < 0.999
    assert more >= 2 and Credibility().params["collusion"] == "coordinated"
    with pytest.raises(ValueError, match="collusion"):
        Credibility(collusion="maybe")


def test_a_banned_provider_cannot_come_back_under_a_lying_str_id():
    """Before: a ``str`` subclass equal to "mallory" but hashing differently got a fresh record,
    so a banned provider was allowed again (and a distrusted one trusted). After: provider ids
    become exact ``str`` copies; a non-str or empty id is a caller error."""
    import itertools

    from vcompute.trust.policies import Blacklist

    counter = itertools.count(1)

    class Lying(str):
        def __hash__(self):
            return next(counter)

        def __eq__(self, other):
            return False

    p = Blacklist(max_invalid=1)
    p.record("mallory", "invalid")
    assert not p.allowed("mallory")
    assert not p.allowed(Lying("mallory")) and p.quota(Lying("mallory")) == 0
    p.record(Lying("mallory"), "valid")
    assert list(p.providers) == ["mallory"] and all(type(k) is str for k in p.inner.providers)
    for bad, exc in ((7, TypeError), (None, TypeError), ("", ValueError)):
        with pytest.raises(exc, match="provider_id"):
            p.allowed(bad)
