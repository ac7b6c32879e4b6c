"""Equality and screening for every honest tensor form, and hostile outputs (classes 3 and 4 of issue 12).

Owned with the replication and spot-check verifiers: every comparison path
(replication under bitwise and tolerance, spot-check known answers and
audits) accepts honest torch bf16, grad-requiring, non-contiguous, CUDA and
JAX arrays and mixed float widths; provider objects that lie are rejected
with a reason and never crash the verdict.
"""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.core.types import Claim
from vcompute.verify import VerifyContext
from vcompute.verify.replication.equality import Tolerance, host_array, screen_leaves
from vcompute.verify.replication import Replication
from vcompute.verify.replication.spotcheck import KnownAnswers, SpotCheck
from vcompute.workloads import honest_matmul, make_matmul_job

JOB = make_matmul_job(4, seed=1)
C = np.asarray(honest_matmul(JOB))


def _torch_forms(device):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(C.copy()).to(device)
    return {
        "torch_fp32": t,
        "torch_bf16": t.to(torch.bfloat16),
        "torch_fp16": t.to(torch.float16),
        "torch_requires_grad": t.clone().requires_grad_(True),
        "torch_grad_result": (t.clone().requires_grad_(True) * 1.0),
        "torch_noncontiguous": t.t().contiguous().t(),
        "torch_parameter": torch.nn.Parameter(t.clone()),
    }


def _forms():
    forms = {"numpy": C, "numpy_fortran": np.asfortranarray(C), "numpy_strided": np.repeat(C, 2, axis=1)[:, ::2],
             "numpy_float64": C.astype(np.float64)}
    try:
        forms.update(_torch_forms("cpu"))
    except pytest.skip.Exception:
        pass
    try:
        import jax.numpy as jnp

        forms.update(jax_fp32=jnp.asarray(C), jax_bf16=jnp.asarray(C).astype(jnp.bfloat16))
    except ImportError:
        pass
    return forms


FORMS = _forms()


def _verifiers(rtol=1e-2):
    """Every comparison path of replication and spot-checks."""
    return {
        "replication_bitwise": Replication(k=3, quorum="unanimity"),
        "replication_tolerance": Replication(k=3, quorum="unanimity", equality="tolerance", rtol=rtol),
        "replication_ulp": Replication(k=3, quorum="unanimity", equality=Tolerance(ulp=4.0)),
    }


def _check_all_paths(out, reference=None):
    """Verdicts of every path on an honest output ``out`` (``reference`` is the trusted answer)."""
    reference = out if reference is None else reference
    verdicts = {}
    for name, v in _verifiers().items():
        claims = [Claim(JOB.id, f"p{i}", output=out) for i in range(3)]
        verdicts[name] = v.verify(JOB, claims, VerifyContext(seed=0))
    pool = KnownAnswers(lambda r: JOB, lambda j: reference)
    pool.add(JOB, reference)
    sc = SpotCheck(q=0.5, p=0.0, known=pool, equality="tolerance", rtol=1e-2)
    verdicts["spot_known"] = sc.verify(JOB, [Claim(JOB.id, "p", output=out)], VerifyContext(seed=0))
    ctx = VerifyContext(seed=0, reexecute=lambda j, piece: reference)
    verdicts["spot_audit"] = SpotCheck(p=1.0, equality="tolerance", rtol=1e-2).verify(
        JOB, [Claim(JOB.id, "p", output=out)], ctx)
    return verdicts


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_honest_form_is_accepted_on_every_path(form):
    """Class 3: 0 false rejects; before, bf16 and requires-grad tensors were rejected by every tolerance path."""
    out = FORMS[form]
    for path, v in _check_all_paths(out).items():
        assert v.accepted, (form, path, v.reason)


@pytest.mark.parametrize("form", sorted(f for f in FORMS if f != "numpy"))
def test_honest_forms_agree_with_a_plain_float32_reference(form):
    """Mixed widths and backends an honest caller passes: the trusted answer is plain numpy float32."""
    for path in ("spot_known", "spot_audit"):
        v = _check_all_paths(FORMS[form], reference=C)[path]
        assert v.accepted, (form, path, v.reason)
    rep = Replication(k=2, quorum="unanimity", equality="tolerance", rtol=1e-2)
    v = rep.verify(JOB, [Claim(JOB.id, "a", output=C), Claim(JOB.id, "b", output=FORMS[form])], VerifyContext(seed=0))
    assert v.accepted, (form, v.reason)


def test_verifying_leaves_the_claims_untouched_and_gives_the_same_verdict_twice():
    out = FORMS.get("torch_requires_grad", C)
    before = host_array(out)
    first = _check_all_paths(out)
    second = _check_all_paths(out)
    assert {k: v.accepted for k, v in first.items()} == {k: v.accepted for k, v in second.items()}
    assert np.array_equal(host_array(out), before)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("torch"), reason="torch not installed")
def test_cuda_tensors_are_accepted_on_every_path():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    for form, out in _torch_forms("cuda").items():
        for path, v in _check_all_paths(out, reference=C).items():
            if path.startswith("replication"):
                v = _check_all_paths(out)[path]
            assert v.accepted, (form, path, v.reason)


class _EqualToEverything(np.ndarray):
    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool)

    def __array__(self, dtype=None, copy=None):
        return C.copy()


class _LyingShape(np.ndarray):
    @property
    def shape(self):
        return C.shape


def _hostile():
    bad = (C + 1).view(_EqualToEverything)
    obj = np.empty(C.shape, dtype=object)
    obj[:] = 1.0
    out = {
        "eq_array_subclass": bad,
        "shape_subclass": np.zeros((2, 2), np.float32).view(_LyingShape),
        "nan": np.where(np.eye(4, dtype=bool), np.nan, C).astype(np.float32),
        "inf": C * np.float32(np.inf),
        "wrong_shape": C[:, :-1],
        "object_array": obj,
        "complex": C.astype(np.complex64),
        "string_array": np.array([["x"] * 4] * 4),
        "bool_instead": C > 0,
        "int_instead": C.astype(np.int32),
        "list_of_floats": C.tolist(),
        "mapping_subclass": type("D", (dict,), {"__iter__": lambda self: iter(["boom"])})(x=C),
        "float_subclass_scalar": type("F", (np.float64,), {})(1.0),
        "hostile_dict_key": {type("K", (str,), {"__hash__": lambda self: 0, "__str__": lambda self: 1 / 0})("y"): C},
        "tuple_dict_key": {("a", 1): C},
    }
    try:
        import jax.numpy as jnp

        out["numpy_of_ml_dtypes_bf16"] = np.asarray(jnp.asarray(C).astype(jnp.bfloat16))
    except ImportError:
        pass
    try:
        import torch

        class Sub(torch.Tensor):
            pass

        out["torch_subclass"] = torch.from_numpy(C + 1).as_subclass(Sub)
        out["torch_sparse"] = torch.from_numpy(C).to_sparse()
        out["torch_nan_bf16"] = torch.full((4, 4), float("nan")).bfloat16()
        out["torch_meta"] = torch.empty((4, 4), device="meta")
        if hasattr(torch, "float8_e4m3fn"):  # refused by the documented dtype rule, not by an exception
            out["torch_float8"] = torch.from_numpy(C / 64).to(torch.float8_e4m3fn)
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("name", sorted(_hostile()))
def test_hostile_outputs_are_rejected_with_a_reason_never_accepted(name):
    """Hostile outputs: rejected with a reason on every path, never an exception, never an accept."""
    bad = _hostile()[name]
    for equality in ("bitwise", "tolerance"):
        kw = {"equality": equality, "rtol": 1e-2} if equality == "tolerance" else {}
        claims = [Claim(JOB.id, "h1", output=C), Claim(JOB.id, "x", output=bad), Claim(JOB.id, "h2", output=C)]
        v = Replication(k=3, **kw).verify(JOB, claims, VerifyContext(seed=0))
        assert v.accepted and v.details["agreeing"] == ["h1", "h2"] and "x" in v.details["disagreeing"], name
        # two hostile copies against one honest replica never win
        claims = [Claim(JOB.id, "h", output=C), Claim(JOB.id, "x", output=bad), Claim(JOB.id, "y", output=bad)]
        v = Replication(k=3, **kw).verify(JOB, claims, VerifyContext(seed=0))
        if v.accepted:
            assert v.details["canonical_provider"] == "h", (name, v.reason)
    for q in (0.5, 0.0):
        pool = KnownAnswers(lambda r: JOB, lambda j: C)
        pool.add(JOB, C)
        sc = SpotCheck(q=q, p=1.0, known=pool if q else None, equality="tolerance", rtol=1e-2)
        v = sc.verify(JOB, [Claim(JOB.id, "p", output=bad)], VerifyContext(seed=0, reexecute=lambda j, piece: C))
        assert not v.accepted and v.reason, name


def test_screen_runs_no_provider_code():
    calls = []

    class Spy(np.ndarray):
        def __getattribute__(self, item):
            calls.append(item)
            return super().__getattribute__(item)

    items, reason = screen_leaves({"y": np.zeros(2).view(Spy)})
    assert reason is not None and "subclass" in reason and calls == []


def test_caller_misuse_of_the_trusted_answer_raises_naming_it():
    """Class 4: a malformed known answer or re-execution result is the caller's bug, not the provider's."""
    for bad in ("oops", np.array(["a"]), np.array([np.nan]), None):
        pool = KnownAnswers(lambda r: JOB, lambda j: bad)
        pool.add(JOB, bad)
        with pytest.raises(ValueError, match="trusted answer from known"):
            SpotCheck(q=0.5, p=0.0, known=pool, equality="tolerance", rtol=1e-2).verify(
                JOB, [Claim(JOB.id, "p", output=C)], VerifyContext(seed=0))
    with pytest.raises(ValueError, match="ctx.reexecute"):
        SpotCheck(p=1.0).verify(JOB, [Claim(JOB.id, "p", output=C)], VerifyContext(seed=0, reexecute=lambda j, p: {}))


def test_a_claim_subclass_is_refused_as_the_callers_mistake():
    """A Claim subclass whose output property answers honestly once, then lies, is never read: exact Claims only."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Shifty(Claim):
        reads: list = dataclasses.field(default_factory=list)

        def __getattribute__(self, item):
            if item == "output":
                seen = object.__getattribute__(self, "reads")
                seen.append(1)
                return C if len(seen) == 1 else C + 1
            return object.__getattribute__(self, item)

    claims = [Shifty(JOB.id, "s"), Claim(JOB.id, "h", output=C + 1), Claim(JOB.id, "g", output=C + 1)]
    with pytest.raises(TypeError, match=r"claims\[0\] is a Shifty, not an exact Claim"):
        Replication(k=3, equality="tolerance", rtol=1e-6).verify(JOB, claims, VerifyContext(seed=0))


def test_bitwise_spot_check_with_a_trusted_answer_of_another_dtype_is_a_caller_error():
    pool = KnownAnswers(lambda r: JOB, lambda j: C.astype(np.float64))
    pool.add(JOB, C.astype(np.float64))
    with pytest.raises(ValueError, match="equality='tolerance'"):
        SpotCheck(q=0.5, p=0.0, known=pool).verify(JOB, [Claim(JOB.id, "p", output=C)], VerifyContext(seed=0))
    ok = SpotCheck(q=0.5, p=0.0, known=pool, equality="tolerance", rtol=1e-6)
    assert ok.verify(JOB, [Claim(JOB.id, "p", output=C)], VerifyContext(seed=0)).accepted
    pool.add(JOB, C)  # the exact dtype: bitwise decides, and a provider's float64 answer is its own fault
    v = SpotCheck(q=0.5, p=0.0, known=pool).verify(JOB, [Claim(JOB.id, "p", output=C.astype(np.float64))],
                                                   VerifyContext(seed=0))
    assert not v.accepted
