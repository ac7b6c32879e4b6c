"""Evidence cannot make a verifier work in proportion to what the provider *declares* (issue 12, review).

A verifier's allocations and loops are bounded by the job's own sizes, or,
where the job declares none, by the memory the provider really holds: a
view whose shape declares terabytes over a few bytes, one array referenced
many times, a container nested past the stack or referencing itself, an int
no dtype holds. Each is a rejection of *that* claim with a reason, never a
``MemoryError`` out of ``verify`` (which passes the guard as the verifier's
machine failing) and never a rejection that costs the honest replicas their
quorum. Sizes here are terabytes, so a verifier that tried to allocate them
fails at once instead of using the machine's memory.
"""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.types import Claim, Job
from vcompute.verify import Replication, SpotCheck, VerifyContext
from vcompute.verify.replication import screen_output
from vcompute.workloads.matmul import honest_matmul, make_matmul_job

GENERIC = Job("generic", {})  # declares no output size: the provider's memory is the only bound
MATMUL = make_matmul_job(8, seed=0)
HONEST = np.arange(64.0).reshape(8, 8)
TB = 10**6  # (TB, TB) float64 views declare 8 TB


def _torch():
    return pytest.importorskip("torch")


def _views():
    torch = _torch()
    one, buf = np.zeros(1), np.zeros(100)
    return {
        "numpy broadcast": np.broadcast_to(one, (TB, TB)),
        "torch expand": torch.zeros(1, dtype=torch.float64).expand(TB, TB),
        # small: reading past a buffer's end may crash the process, so a test must never make anything try
        "as_strided past the buffer": np.lib.stride_tricks.as_strided(np.zeros(4), shape=(8,), strides=(8,)),
        "as_strided overlapping": np.lib.stride_tricks.as_strided(np.zeros(2 * TB), shape=(TB, TB), strides=(8, 8)),
        "one array referenced 10**4 times": [np.zeros(TB)] * 10**4,
        "overlapping slices of one buffer": {"a": buf[:60], "b": buf[40:]},
    }


def _deep(n: int) -> list:
    root = cur = []
    for _ in range(n):
        nxt: list = []
        cur.append(nxt)
        cur = nxt
    cur.append(1.0)
    return root


def _cycle() -> list:
    x: list = [1.0]
    x.append(x)
    return x


def _hostile_structures():
    row = list(range(10**4))
    return {
        "nested 5000 deep": _deep(5000),
        "a list containing itself": _cycle(),
        "one list referenced 10**4 times": [row] * 10**4,
        "an int of 5000 digits": 10**5000,
        "an int past uint64": 2**70,
    }


VIEWS = ["numpy broadcast", "torch expand", "as_strided past the buffer", "as_strided overlapping",
         "one array referenced 10**4 times", "overlapping slices of one buffer"]
STRUCTURES = ["nested 5000 deep", "a list containing itself", "one list referenced 10**4 times",
              "an int of 5000 digits", "an int past uint64"]


def _evidence(name: str):
    return (_views() if name in VIEWS else _hostile_structures())[name]


@pytest.mark.parametrize("name", VIEWS + STRUCTURES)
@pytest.mark.parametrize("equality", ["bitwise", "tolerance"])
def test_one_replicas_hostile_output_is_blamed_and_costs_the_others_nothing(name, equality):
    """Before: MemoryError out of verify (views) or a rejection blaming nobody (structures); after: a vote lost."""
    claims = [Claim(GENERIC.id, p, output=o) for p, o in [("a", HONEST), ("b", HONEST.copy()), ("c", _evidence(name))]]
    v = Replication(k=3, equality=equality, rtol=1e-6 if equality == "tolerance" else None).verify(
        GENERIC, claims, VerifyContext(seed=0))
    assert v.accepted and v.blamed(3) == {2}, v.reason
    assert v.details["malformed"]["c"]


@pytest.mark.parametrize("name", VIEWS + STRUCTURES)
def test_a_spot_checked_hostile_output_is_rejected_with_a_reason(name):
    ctx = VerifyContext(seed=0, reexecute=lambda job, piece: HONEST)
    v = SpotCheck(p=1.0).verify(GENERIC, [Claim(GENERIC.id, "c", output=_evidence(name))], ctx)
    assert not v.accepted and v.blamed(1) == {0} and "malformed output" in v.reason


@pytest.mark.parametrize("name", ["numpy broadcast", "torch expand", "as_strided past the buffer"])
def test_a_job_that_declares_its_size_rejects_another_size_before_reading_a_value(name):
    reason = screen_output(Claim(MATMUL.id, "c", output=_evidence(name)), (8, 8))
    assert reason is not None and "expected (8, 8)" in reason


def test_a_view_declaring_terabytes_past_its_buffer_is_refused_unread():
    from vcompute.verify.screening import memory_span

    view = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(TB * TB,), strides=(8,))  # never read: it would crash
    assert "outside the 8 bytes" in memory_span(view)[1]
    assert "outside" in screen_output(Claim("j", "p", output=view))


def test_views_the_provider_really_holds_memory_for_are_honest_outputs():
    torch = _torch()
    jnp = pytest.importorskip("jax.numpy")
    x = np.arange(24.0)
    honest = {
        "transpose": np.ones((3, 4)).T, "negative stride": x[::-3], "disjoint slices": {"a": x[:12], "b": x[12:]},
        "frombuffer": np.frombuffer(bytes(64), np.float64), "torch numpy view": torch.ones(3).numpy(),
        "jax host view": np.asarray(jnp.ones(3)), "torch transpose": torch.ones(3, 4).T,
        "torch storage offset": torch.arange(10.0).as_strided((5,), (2,), 1),
        "literal tuples": [(2, 3), (2, 3)], "int64 range": [-(2**63), 2**64 - 1],
    }
    for name, out in honest.items():
        assert screen_output(Claim("j", "p", output=out)) is None, name


def test_an_honest_matmul_replica_still_agrees():
    claims = [Claim(MATMUL.id, p, output=honest_matmul(MATMUL)) for p in "abc"]
    assert Replication(k=3).verify(MATMUL, claims, VerifyContext(seed=0)).accepted


def test_allocators_running_out_are_the_verifiers_machine_failing():
    """PyTorch's CPU allocator raises a plain RuntimeError: before, a verifier's own OOM was a rejection."""
    from vcompute.verify.base import verifier_fault

    torch = _torch()
    with pytest.raises(RuntimeError) as caught:
        torch.empty(2**62, dtype=torch.uint8)
    assert verifier_fault(caught.value)
    assert verifier_fault(MemoryError()) and verifier_fault(RuntimeError("CUDA out of memory"))
    assert not verifier_fault(RuntimeError("shape mismatch")) and not verifier_fault(ValueError("out of memory"))

    class Loud(RuntimeError):
        def __str__(self):
            raise AssertionError("the message is read without the class's code")

    assert not verifier_fault(Loud("a hostile message"))


def test_whole_model_claims_declaring_terabytes_are_rejected_unconverted():
    """Before: a bfloat16 output was widened (and a numpy trace entry copied to JAX) at its declared size."""
    torch = _torch()
    jnp = pytest.importorskip("jax.numpy")
    from vcompute.verify.freivalds.model import TorchModelVerifier, verify_jax_model
    from vcompute.workloads.models import jax_mlp, jax_provider, torch_mlp, torch_provider

    m = torch_mlp((10, 16, 6), seed=0)
    x = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    out, trace = torch_provider(m, x)
    huge = torch.zeros(1, dtype=torch.bfloat16).expand(TB, TB)
    for claimed, tr in ((huge, trace), (out, {**trace, "2": [huge]})):
        v = TorchModelVerifier(m).verify((x,), claimed, tr, seed=0)
        assert not v.accepted and ("shape" in v.reason or "dtype" in v.reason), v.reason
    fn, p = jax_mlp((10, 6), seed=0)
    xj = jnp.asarray(np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32))
    jout, jtrace = jax_provider(fn, p, xj)
    v = verify_jax_model(fn, (p, xj), jout, [np.broadcast_to(np.float32(0), (TB, TB))], seed=0)
    assert not v.accepted and "declares" in v.reason, v.reason
    v = verify_jax_model(fn, (p, xj), np.broadcast_to(np.float32(0), (TB, TB)), jtrace, seed=0)
    assert not v.accepted and "shape" in v.reason, v.reason


def test_a_copied_commitment_without_its_output_earns_no_vote():
    """Before: two providers that copied an honest replica's public commitment (or made one up) were a quorum."""
    honest = honest_matmul(MATMUL)
    posted = Claim(MATMUL.id, "honest", output=honest, commitment=None)
    from vcompute.core.hashing import content_hash

    copied = [Claim(MATMUL.id, p, commitment=content_hash(honest)) for p in ("lazy1", "lazy2")]
    v = Replication(k=3).verify(MATMUL, [posted, *copied], VerifyContext(seed=0))
    assert not v.accepted and v.blamed(3) == {1, 2} and "missing output" in v.details["malformed"]["lazy1"]
    made_up = [Claim(MATMUL.id, p, commitment="ab" * 32) for p in ("s1", "s2", "s3")]
    assert not Replication(k=3).verify(MATMUL, made_up, VerifyContext(seed=0)).accepted


def test_a_malformed_job_is_the_callers_mistake_not_every_providers_rejection():
    """Before: 6 of 6 shape mistakes in the caller's own a, b, bias rejected (and slashed) the provider."""
    from vcompute.verify import Freivalds
    from vcompute.verify.base import Misuse

    b = np.ones((5, 2))
    mistakes = [(np.ones((4, 3)), b, None), (np.ones(3), b, None), (np.ones((4, 5)), b, np.ones(3)),
                (np.ones((2, 4, 5)), np.ones((3, 5, 2)), None), (np.ones((0, 5)), b, None),
                (np.ones((4, 5)), b, np.ones(2, np.int32))]
    for a, bb, bias in mistakes:
        with pytest.raises(Misuse):
            Freivalds().check(a, bb, np.ones((4, 2)), seed=0, bias=bias)
    job = Job("matmul", {}, {"a": np.ones((4, 3)), "b": b})
    with pytest.raises(ValueError, match="inner dimensions"):
        Freivalds().verify(job, [Claim(job.id, "p", output=np.ones((4, 2)))], VerifyContext(seed=0))
    assert not Freivalds().check(np.ones((4, 5)), b, np.ones((4, 3)), seed=0).accepted  # the claim's shape: rejected


def test_a_malformed_convolution_is_the_callers_mistake():
    """Before: 6 of 6 mistakes in the caller's own input, kernel, bias or parameters rejected the provider."""
    from vcompute.verify import Freivalds
    from vcompute.verify.base import Misuse

    x, w, y = np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3)), np.full((1, 3, 2, 2), 18.0)
    mistakes = [((np.ones((2, 4, 4)), w, y), {}), ((x, np.ones((3, 3, 3, 3)), y), {}), ((x, w, y), {"stride": 0}),
                ((x, w, y), {"bias": np.ones(2)}), ((x, w.astype(np.float32), y), {}),
                ((x, np.ones((3, 2, 5, 5)), y), {})]
    for args, kw in mistakes:
        with pytest.raises(Misuse):
            Freivalds().check_conv2d(*args, seed=0, **kw)
    assert Freivalds().check_conv2d(x, w, y, seed=0).accepted
    assert not Freivalds().check_conv2d(x, w, y[:, :2], seed=0).accepted  # the claim's shape: rejected


def test_a_provider_key_hashed_like_trace_is_never_compared():
    """Before: looking up evidence['trace'] ran the colliding key's __eq__, whose MemoryError crashed verify."""
    from vcompute.verify.freivalds.model.job import ModelVerifier
    from vcompute.workloads.kinds import get_kind

    class Colliding(str):
        armed = False

        def __hash__(self):
            return str.__hash__("trace")

        def __eq__(self, other):
            if Colliding.armed:
                raise MemoryError("raised by the provider's key")
            return str.__eq__(self, other)

    kind = get_kind("forward")
    job = kind.make_job("tiny", seed=0)
    honest = kind.execute(job, "honest", rng=np.random.default_rng(0), provider="p")
    hostile = Claim(job.id, "q", output=honest.output, evidence={Colliding("zz"): 1, **honest.evidence})
    Colliding.armed = True
    try:
        v = ModelVerifier().verify(job, [honest, hostile], VerifyContext(seed=0))
    finally:
        Colliding.armed = False
    assert v.accepted, v.reason  # the junk key is never read; the claim is judged on its plain-str "trace"
    no_trace = Claim(job.id, "q", output=honest.output, evidence={Colliding("zz"): honest.evidence["trace"]})
    v = ModelVerifier().verify(job, [no_trace], VerifyContext(seed=0))
    assert not v.accepted and "no trace" in v.reason
