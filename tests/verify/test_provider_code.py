"""A provider's array runs none of its own code while a verifier reads it (issue 12, adversarial review).

Torch tensors and JAX arrays take instance attributes, so an *exact*
``torch.Tensor`` can carry its own ``detach``, ``cpu`` or ``__array__``, and a
Python class can subclass ``jax.Array`` under a ``jax.*`` module name. Before
the fix, every verifier that read a claim through ``x.detach()`` checked the
values that method returned while the consumer received the tensor itself:
a wrong product, a wrong replica and a wrong model output were accepted.
After: values are read through the classes' own methods (``torch.Tensor.detach(x)``)
and only exact array types are evidence, so what is checked is what is delivered.
"""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.types import Claim, Job
from vcompute.verify import VerifyContext
from vcompute.verify.freivalds import Freivalds
from vcompute.verify.replication import Replication
from vcompute.verify.replication.spotcheck import SpotCheck

torch = pytest.importorskip("torch")


def _mask(t, honest):
    """``t`` (the delivered, wrong values) answering every read by a method with ``honest``."""
    honest = honest.detach().clone()
    for name in ("detach", "cpu", "contiguous", "clone", "numpy", "float", "double", "to", "resolve_conj",
                 "resolve_neg"):
        setattr(t, name, lambda *a, _h=honest, _n=name, **k: _h.numpy() if _n == "numpy" else _h)
    t.__array__ = lambda *a, _h=honest, **k: _h.numpy()
    return t


def _operands(n=32):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    return a, b, a @ b


@pytest.mark.parametrize("grad", [False, True])
def test_freivalds_checks_the_tensor_delivered_not_what_its_methods_return(grad):
    a, b, honest = _operands()
    lie = _mask(torch.zeros_like(honest).requires_grad_(grad), honest)
    v = Freivalds().check(a, b, lie, seed=1)
    assert not v.accepted and v.reason
    job = Job("matmul", {"m": 32, "k": 32, "n": 32}, inputs={"a": a, "b": b})
    v = Freivalds().verify(job, [Claim(job.id, "p", output=lie)], VerifyContext(seed=0))
    assert not v.accepted and v.reason
    assert Freivalds().check(a, b, honest, seed=1).accepted


def _torch_subclass():
    class Tensor(torch.Tensor):  # named like the real class, in a torch-looking module
        __module__ = "torch.fake"

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return super().__torch_function__(func, types, args, kwargs or {})

    return Tensor


def test_freivalds_refuses_array_subclasses_as_evidence():
    a, b, honest = _operands()

    class Lying(np.ndarray):
        pass

    for lie, ops in ((honest.clone().as_subclass(_torch_subclass()), (a, b)),
                     (honest.numpy().view(Lying), (a.numpy(), b.numpy()))):
        v = Freivalds().check(*ops, lie, seed=1)
        assert not v.accepted and "subclass" in v.reason, v.reason


def _replicas(job, lie):
    honest = job.inputs["a"] @ job.inputs["b"]
    return [Claim(job.id, "mallory", output=lie)] + [Claim(job.id, p, output=honest.clone()) for p in ("p1", "p2")]


@pytest.mark.parametrize("equality", ["bitwise", "tolerance"])
def test_replication_never_makes_a_masked_replica_canonical(equality):
    a, b, honest = _operands()
    job = Job("matmul", {"m": 32, "k": 32, "n": 32, "dtype": "float32"}, inputs={"a": a, "b": b})
    lie = _mask(torch.zeros_like(honest), honest)
    rep = Replication(k=3, equality=equality, rtol=1e-5 if equality == "tolerance" else None)
    v = rep.verify(job, _replicas(job, lie), VerifyContext(seed=0))
    assert v.accepted and v.details["canonical_provider"] == "p1", v.details
    assert "mallory" in v.details["disagreeing"]


def test_spot_check_compares_the_tensor_delivered():
    a, b, honest = _operands()
    job = Job("matmul", {"m": 32, "k": 32, "n": 32, "dtype": "float32"}, inputs={"a": a, "b": b})
    lie = _mask(torch.zeros_like(honest), honest)
    for equality in ("bitwise", "tolerance"):
        sc = SpotCheck(p=1.0, equality=equality, rtol=1e-5 if equality == "tolerance" else None)

        def ctx():
            return VerifyContext(seed=0, reexecute=lambda j, piece, fraction=1.0: honest.clone())

        assert sc.verify(job, [Claim(job.id, "p", output=honest.clone())], ctx()).accepted
        v = sc.verify(job, [Claim(job.id, "p", output=lie)], ctx())
        assert not v.accepted and v.reason


def test_model_verifier_checks_the_layer_outputs_and_final_output_delivered():
    from vcompute.verify.freivalds.model import TorchModelVerifier
    from vcompute.workloads.models import torch_mlp, torch_provider

    m = torch_mlp((10, 16, 6), seed=0)
    x = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    out, trace = torch_provider(m, x)
    mv = TorchModelVerifier(m)
    assert mv.verify((x,), out, trace, seed=0).accepted
    v = mv.verify((x,), _mask(torch.zeros_like(out), out), trace, seed=0)
    assert not v.accepted and v.reason
    v = mv.verify((x,), out.clone().as_subclass(_torch_subclass()), trace, seed=0)
    assert not v.accepted and "subclass" in v.reason, v.reason
    first = next(iter(trace))
    bad = {k: [t.clone() for t in ts] for k, ts in trace.items()}
    bad[first][0] = _mask(torch.zeros_like(trace[first][0]), trace[first][0])
    v = mv.verify((x,), out, bad, seed=0)
    assert not v.accepted and v.details["first_bad_layer"] == first, v.reason


def test_a_python_subclass_of_jax_array_is_not_a_jax_array():
    jax = pytest.importorskip("jax")
    from vcompute.verify.screening import exact_array_type, screen_leaves

    class Evil(jax.Array):
        __module__ = "jax.evil"

        def __array__(self, *a, **k):
            return np.ones(3, np.float32)

    e = Evil.__new__(Evil)
    assert exact_array_type(e) is None
    assert "subclass" in screen_leaves(e)[1]
    import jax.numpy as jnp

    assert exact_array_type(jnp.zeros(3)) == "jax"


def test_conv_check_refuses_a_claimed_output_whose_methods_lie():
    """Before: an ndarray subclass whose ``astype`` returned the honest convolution was accepted
    for an all-zero output. After: the claimed output must be an exact array."""
    from vcompute.verify.freivalds.conv import check_conv2d, conv2d

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    y = conv2d(x, w)

    class Lying(np.ndarray):
        def astype(self, *a, **k):
            return y.astype(*a, **k)

    assert check_conv2d(x, w, y, seed=1).accepted
    v = check_conv2d(x, w, np.zeros_like(y).view(Lying), seed=1)
    assert not v.accepted and "subclass" in v.reason, v.reason
    xt, wt, yt = (torch.from_numpy(t) for t in (x, w, y))
    v = check_conv2d(xt, wt, _mask(torch.zeros_like(yt), yt), seed=1)
    assert not v.accepted and v.reason


class _Boom:
    def __str__(self):
        raise RuntimeError("provider code ran")

    def __iter__(self):
        raise RuntimeError("provider code ran")


class _RaisingShape:
    @property
    def shape(self):
        raise RuntimeError("provider code ran")


def test_freivalds_verify_rejects_hostile_claim_meta_and_outputs_without_raising():
    """Before: ``meta={'shape': 5}``, a shape or dtype whose ``__iter__``/``__str__`` raised, or an
    output whose ``shape`` raised made ``Freivalds.verify`` raise (provider fraud as an exception).
    After: each is a rejected verdict with a reason; honest declared meta still passes."""
    a = np.ones((4, 4), np.float32)
    job = Job("matmul", {"m": 4, "k": 4, "n": 4}, inputs={"a": a, "b": a})
    for meta, out in [({"shape": 5}, a @ a), ({"shape": _Boom()}, a @ a), ({"dtype": _Boom()}, a @ a),
                      ({}, _RaisingShape()), ({"shape": [4, 5]}, a @ a), ({"dtype": "float64"}, a @ a)]:
        v = Freivalds().verify(job, [Claim(job.id, "p", output=out, meta=meta)], VerifyContext(seed=0))
        assert not v.accepted and v.reason, meta
    for meta in ({"shape": [4, 4], "dtype": "float32"}, {"shape": torch.Size([4, 4])}, {"shape": (np.int64(4),) * 2}):
        assert Freivalds().verify(job, [Claim(job.id, "p", output=a @ a, meta=meta)], VerifyContext(seed=0)).accepted


def test_homogeneous_reads_a_claims_hardware_class_without_running_its_keys():
    """Before: a meta key that is a str subclass hashing like ``"hardware_class"`` ran its
    ``__eq__`` in ``meta.get`` and its exception escaped ``Replication.verify``. After: only
    exact ``str`` keys are read; that claim has no class and is outvoted."""

    class Key(str):
        __hash__ = str.__hash__

        def __eq__(self, other):
            raise RuntimeError("provider code ran")

    job = Job("x", {})
    out = np.ones(3)
    claims = [Claim(job.id, p, output=out, meta={Key("hardware_class") if p == "b" else "hardware_class": "A"})
              for p in "abc"]
    v = Replication(k=3, equality="homogeneous").verify(job, claims, VerifyContext(seed=0))
    assert v.accepted and v.details["disagreeing"] == ["b"]


def test_bitwise_replication_tells_a_float32_answer_from_a_bfloat16_one():
    """Before: the content hash widened torch/JAX bfloat16 to float32 and labelled it float32, so a
    float32 answer to a bfloat16 job hashed like the honest ones, joined their group and, arriving
    first, became the canonical result. After: the hash names bfloat16 (equal across numpy, torch
    and JAX), and the float32 replica disagrees."""
    from vcompute.core.hashing import content_hash

    job = Job("x", {"output_dtype": "bfloat16"})
    h = torch.tensor([1.0, 2.0, 0.5], dtype=torch.bfloat16)
    claims = [Claim(job.id, "m", output=h.float()), Claim(job.id, "n", output=h.clone()),
              Claim(job.id, "p", output=h.clone())]
    v = Replication(k=3).verify(job, claims, VerifyContext(seed=0))
    assert v.accepted and v.details["canonical_provider"] == "n" and v.details["disagreeing"] == ["m"]
    assert content_hash(h) != content_hash(h.float())
    jnp = pytest.importorskip("jax.numpy")
    assert content_hash(jnp.asarray(h.float().numpy(), jnp.bfloat16)) == content_hash(h)


class _ClaimsToBeAList:
    @property
    def __class__(self):
        return list


def test_model_verifiers_reject_hostile_trace_keys_and_containers_without_raising():
    """Before: a trace key whose ``__hash__`` raised, and a trace entry whose ``__class__`` claimed
    ``list`` (so ``isinstance`` believed it and ``list.copy`` raised), raised out of
    ``TorchModelVerifier.verify``. After: keys are copied to exact ``str``, containers are
    recognised by their type, and the verdict is a rejection (or, for a key naming no layer, the
    honest trace still verifies)."""
    from vcompute.verify.freivalds.model import TorchModelVerifier, verify_jax_model
    from vcompute.workloads.models import torch_mlp, torch_provider

    class Key(str):
        calls = 0

        def __hash__(self):
            Key.calls += 1
            if Key.calls > 1:
                raise RuntimeError("provider code ran")
            return str.__hash__(self)

    m = torch_mlp((10, 16, 6), seed=0)
    x = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    out, trace = torch_provider(m, x)
    mv = TorchModelVerifier(m)
    bad = dict(trace)
    bad[Key("0")] = bad.pop("0")
    assert mv.verify((x,), out, bad, seed=0).accepted  # the same values under an exact copy of the name
    v = mv.verify((x,), out, {**trace, "0": _ClaimsToBeAList()}, seed=0)
    assert not v.accepted and v.reason
    v = mv.verify((x,), (_ClaimsToBeAList(),), trace, seed=0)
    assert not v.accepted and v.reason
    jnp = pytest.importorskip("jax.numpy")
    from vcompute.workloads.models import jax_mlp

    fn, p = jax_mlp((10, 6), seed=0)
    v = verify_jax_model(fn, (p, jnp.ones((2, 10), jnp.float32)), jnp.ones((2, 6)), _ClaimsToBeAList(), seed=0)
    assert not v.accepted and "list" in v.reason
