"""Whose failure is it? The caller's own code raising inside a check is raised; the provider's evidence is rejected.

A marketplace slashes on rejections, so an exception from the consumer's own
model (a module the model verifier replays, the job's LM in the generation
verifier) or from the caller's trusted backend (``ctx.reexecute``) must never
become a rejection of the provider. When the caller's code runs on values the
provider supplied (the model verifier's replay continues from accepted layer
outputs), the verifier runs the caller's code once more on its own inputs alone
to tell the two apart: if that fails too the failure is the caller's (raised,
:class:`~vcompute.verify.base.Misuse`, a ``ValueError``), else the provider's
values provoked it (a rejection with a reason).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from vcompute.verify import VerifyContext  # noqa: E402
from vcompute.verify.base import Misuse  # noqa: E402
from vcompute.verify.freivalds.model import TorchModelVerifier  # noqa: E402
from vcompute.verify.freivalds.model.job import ModelVerifier  # noqa: E402
from vcompute.workloads.kinds import get_kind  # noqa: E402
from vcompute.workloads.models import torch_provider  # noqa: E402

FORWARD = get_kind("forward")


class Broken(nn.Module):
    """The consumer's glue with a bug of its own: raises whatever it is given."""

    def forward(self, h):
        raise RuntimeError("the consumer's model is broken")


class Tripwire(nn.Module):
    """Glue that raises unless it sees exactly the values the honest forward pass computes."""

    def __init__(self, honest: torch.Tensor) -> None:
        super().__init__()
        self.honest = honest

    def forward(self, h):
        if not torch.equal(h, self.honest):
            raise ValueError("glue saw values the honest pass never computes")
        return torch.relu(h)


def _mlp(glue_of=None):
    torch.manual_seed(0)
    first, last = nn.Linear(6, 5), nn.Linear(5, 3)
    x = torch.randn(4, 6)
    with torch.no_grad():
        honest_h = first(x)
    glue = glue_of(honest_h) if glue_of else nn.ReLU()
    return nn.Sequential(first, glue, last).eval(), x, honest_h


def test_the_callers_module_raising_during_the_replay_is_raised_not_a_rejection():
    m, x, h = _mlp()
    out, trace = torch_provider(m, x)
    broken = nn.Sequential(m[0], Broken(), m[2]).eval()
    with pytest.raises(Misuse, match="the consumer's model is broken") as e:
        TorchModelVerifier(broken).verify((x,), out, trace, seed=0)
    assert isinstance(e.value, ValueError) and isinstance(e.value.__cause__, RuntimeError)


def test_a_module_failing_only_on_the_claimed_values_rejects_the_provider():
    m, x, h = _mlp(Tripwire)
    out, trace = torch_provider(m, x)
    assert TorchModelVerifier(m).verify((x,), out, trace, seed=0).accepted
    nudged = trace["0"][0].clone()
    nudged[0, 0] = torch.nextafter(nudged[0, 0], torch.tensor(1e9))  # one ulp: within Freivalds' tolerance
    v = TorchModelVerifier(m).verify((x,), out, {**trace, "0": [nudged]}, seed=0)
    assert not v.accepted and "on the claimed values" in v.reason and "glue saw values" in v.reason, v.reason


def test_the_model_scheme_raises_for_the_callers_module_and_blames_for_the_providers_values(monkeypatch):
    """Before: ModelVerifier's guard turned the consumer's module raising into a rejection blaming the provider."""
    import vcompute.workloads.kinds.forward as forward

    job = FORWARD.make_job("tiny", seed=0)
    claim = FORWARD.execute(job, "honest", rng=np.random.default_rng(0), provider="p")
    honest_module = forward.module_of

    def broken_module(j):
        good = honest_module(j)
        return nn.Sequential(good[0], Broken(), *list(good)[2:]).eval()

    monkeypatch.setattr(forward, "module_of", broken_module)
    with pytest.raises(Misuse, match="the consumer's model is broken"):
        ModelVerifier().verify(job, [claim], VerifyContext(seed=0))
    monkeypatch.setattr(forward, "module_of", honest_module)
    assert ModelVerifier().verify(job, [claim], VerifyContext(seed=0)).accepted


@pytest.mark.parametrize("backend_error", [RuntimeError("the trusted cluster is down"), KeyError("piece")])
def test_a_failing_trusted_backend_raises_misuse_from_the_context(backend_error):
    """Every scheme's re-execution goes through ctx.reexecute: its failure is the caller's, whichever scheme calls."""
    from vcompute.core.types import Job

    def broken(job, piece):
        raise backend_error

    ctx = VerifyContext(seed=0, reexecute=broken)
    with pytest.raises(Misuse, match="re-execution backend") as e:
        ctx.reexecute(Job("x"), None)
    assert e.value.__cause__ is backend_error


def test_the_generation_verifiers_model_failing_on_validated_tokens_is_the_callers(monkeypatch):
    """Tokens are screened (vocabulary, count, context length) before the prefill: a prefill failure is the job's model."""
    import vcompute.workloads.lm.generation as generation
    from vcompute.verify.inference import GenerationVerifier

    kind = get_kind("generate")
    job = kind.make_job(None, seed=0)
    claim = kind.execute(job, "honest", rng=np.random.default_rng(0), provider="p")
    assert GenerationVerifier().verify(job, [claim], VerifyContext(seed=0)).accepted

    def broken(*a, **k):
        raise RuntimeError("the job's model is broken")

    monkeypatch.setattr(generation, "prefill", broken)
    with pytest.raises(Misuse, match="the job's model is broken"):
        GenerationVerifier().verify(job, [claim], VerifyContext(seed=0))
    bad = dataclasses.replace(claim, output=np.full_like(np.asarray(claim.output), 10**6))  # outside the vocabulary
    v = GenerationVerifier().verify(job, [bad], VerifyContext(seed=0))
    assert not v.accepted  # the provider's malformed tokens: rejected before the model runs
