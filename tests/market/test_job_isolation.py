"""Real mode never lets a provider's code write what the verifier trusts (the job it checks against).

In one process a behaviour receives the job object itself; a provider that has read vcompute can
rewrite the job's inputs (or a module cached on it) and then compute "honestly" on what it wrote.
"""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.market.fidelity import RealWork
from vcompute.verify import VERIFIERS
from vcompute.workloads.kinds.behaviours import BEHAVIOURS

pytest.importorskip("torch")


def _matmul_poison(job, rng):
    from vcompute.workloads.matmul import honest_matmul

    job.inputs["a"][:] = 0.0  # c = 0 @ b = 0 then checks against a = 0
    return honest_matmul(job)


def _forward_poison(job, rng):
    import torch

    from vcompute.workloads.kinds.forward import input_of, module_of
    from vcompute.workloads.models import torch_provider

    m = module_of(job)
    with torch.no_grad():
        m[0].weight.mul_(0.5)  # once, a module cached on the job: the one the verifier then checked against
    return torch_provider(m, input_of(job))


def _forward_poison_inputs(job, rng):
    from vcompute.workloads.kinds.forward import honest

    w = job.inputs["weights"]["0.weight"]
    w.setflags(write=True)  # the array owns its memory: read-only is a flag its holder may clear
    w[:] = 0.0
    return honest(job, rng)


@pytest.fixture
def poisoners():
    names = {"matmul/poison": _matmul_poison, "forward/poison": _forward_poison,
             "forward/poison_inputs": _forward_poison_inputs}
    for n, f in names.items():
        BEHAVIOURS.register(n, f, replace=True)
    yield
    for n in names:
        BEHAVIOURS._entries.pop(n, None)


@pytest.mark.parametrize("kind,scheme,cheat", [("matmul", "freivalds", "poison"), ("forward", "model", "poison"),
                                               ("forward", "model", "poison_inputs")])
def test_a_provider_that_rewrites_the_job_it_was_given_is_blamed(poisoners, kind, scheme, cheat):
    w = RealWork(VERIFIERS.create(scheme), kind=kind, size="tiny", seed=0)
    out = w.run(job_key=3, n=16, cheats=[cheat], audit=True)
    assert out.accepted is False and out.blame == frozenset({0}), out.reason
    # the next honest provider of the same job key is unaffected
    assert w.run(job_key=3, n=16, cheats=[None], audit=True).accepted is True


def test_an_honest_replica_is_not_blamed_for_a_poisoning_co_provider(poisoners):
    w = RealWork(VERIFIERS.create("replication", k=3), kind="matmul", size="tiny", seed=0)
    out = w.run(job_key=5, n=16, cheats=[None, "poison", None], audit=True)
    assert out.blame == frozenset({1}), out.reason


def _generate_poison(job, rng, **params):
    """Generates honestly, then writes into its job's weights (once views of the model every job shared)."""
    gen = BEHAVIOURS.of("generate", "honest")(job, rng, **params)
    for a in job.inputs["weights"].values():
        if not a.flags.writeable and a.flags.owndata:
            a.setflags(write=True)  # read-only is a flag its holder may clear
        a *= 0.5
    return gen


def test_a_generate_provider_writing_into_its_jobs_weights_changes_no_other_job():
    BEHAVIOURS.register("generate/poison", _generate_poison, replace=True)
    try:
        w = RealWork(VERIFIERS.create("generate"), kind="generate", size="tiny", seed=0)
        w.run(job_key=1, n=16, cheats=["poison"], audit=True)  # its own claim may stand or fall; no crash
        for key in (1, 2):
            out = w.run(job_key=key, n=16, cheats=[None], audit=True)
            assert out.accepted is True and not out.blame, out.reason
    finally:
        BEHAVIOURS._entries.pop("generate/poison", None)
