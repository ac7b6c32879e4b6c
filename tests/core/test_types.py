"""The vocabulary types: immutability, identity, serialisation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from vcompute.core import Claim, Cost, Job, Verdict, canonical_json, content_hash
from vcompute.core.arrays import from_numpy


def test_cost_adds_and_rejects_negative():
    c = Cost(flops=1, seconds=2) + Cost(flops=3, evidence_bytes=4)
    assert c == Cost(flops=4, seconds=2, evidence_bytes=4)
    with pytest.raises(ValueError, match="non-negative"):
        Cost(flops=-1)
    with pytest.raises(ValueError):
        Cost(seconds=float("nan"))


def test_job_id_depends_on_spec_and_input_content():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    j1 = Job("matmul", {"m": 2}, {"a": a})
    j2 = Job("matmul", {"m": 2}, {"a": a.copy()})
    j3 = Job("matmul", {"m": 2}, {"a": a + 1})
    j4 = Job("matmul", {"m": 3}, {"a": a})
    assert j1.id == j2.id
    assert len({j1.id, j3.id, j4.id}) == 3
    assert json.loads(canonical_json(j1.to_dict()))["inputs"]["a"] == content_hash(a)


def test_job_is_frozen_and_spec_must_serialise():
    job = Job("matmul", {"m": 2})
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.kind = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        job.spec["m"] = 3  # type: ignore[index]
    with pytest.raises(TypeError, match="JSON"):
        Job("matmul", {"f": object()})
    with pytest.raises(ValueError):
        Job("")


def test_content_hash_is_backend_neutral(backend):
    a = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    assert content_hash(from_numpy(a, backend)) == content_hash(a)
    assert content_hash(a) != content_hash(a.astype(np.float64))
    assert content_hash(a) != content_hash(a.reshape(4, 3))


def test_verdict_and_claim_serialise():
    v = Verdict.reject("bad", scheme="x", cost=Cost(flops=2), details={"row": 1})
    d = v.to_dict()
    assert d["accepted"] is False and d["cost"]["flops"] == 2.0 and d["details"] == {"row": 1}
    assert not v and Verdict.accept()
    c = Claim(job_id="j", provider="p", output=np.ones(2))
    assert c.signing_payload() == Claim(job_id="j", provider="p", output=np.ones(2)).signing_payload()
    assert c.signing_payload() != Claim(job_id="j", provider="q", output=np.ones(2)).signing_payload()
