"""torch whole-model verification: values not views, honest forms accepted, caller misuse raises (issue 12, classes 1-4)."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.verify.freivalds.model import TorchModelVerifier
from vcompute.workloads.models import torch_provider


def _x(*shape, seed=0):
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _inplace_models():
    import torch
    from torch import nn

    class PlusEq(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(12, 12), nn.Linear(12, 5)

        def forward(self, x):
            h = self.a(x)
            h += x            # writes into the layer's output
            h.relu_()
            return self.b(h)

    class ScalesItsInput(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(12, 12), nn.Linear(12, 5)

        def forward(self, x):
            x.mul_(2.0)       # writes into the caller's input
            return self.b(torch.relu(self.a(x)))

    torch.manual_seed(0)
    relu = nn.Sequential(nn.Linear(12, 16), nn.ReLU(inplace=True), nn.Linear(16, 5), nn.ReLU(inplace=True)).eval()
    return {"relu_inplace": relu, "plus_eq": PlusEq().eval(), "input_inplace": ScalesItsInput().eval()}


def _snapshot(*objs):
    import torch

    flat = []
    for o in objs:
        if isinstance(o, dict):
            flat += [t for v in o.values() for t in v]
        elif isinstance(o, (tuple, list)):
            flat += list(o)
        else:
            flat.append(o)
    return [(t, t.clone()) for t in flat if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("name", ["relu_inplace", "plus_eq", "input_inplace"])
def test_in_place_models_traced_as_values_and_verified_twice_alike(name):
    import torch

    m = _inplace_models()[name]
    x = _x(7, 12)
    out, trace = torch_provider(m, x.clone())  # the provider's own copy of the input
    first = list(trace)[0]
    with torch.no_grad():
        xin = x * 2.0 if name == "input_inplace" else x
        assert torch.equal(trace[first][0], m.get_submodule(first)(xin))  # the pre-activation value, not a view
    snap = _snapshot((x,), out, trace)
    mv = TorchModelVerifier(m)
    v1, v2 = mv.verify((x,), out, trace, seed=0), mv.verify((x,), out, trace, seed=0)
    assert v1.accepted and v2.accepted, (v1.reason, v2.reason)
    assert v1.details["layers_checked"] == v2.details["layers_checked"] == 2
    assert all(torch.equal(t, c) for t, c in snap)  # inputs, claimed output and trace bit-identical
    out, trace = torch_provider(m, x.clone(), behaviour="swap_weights", layer=first, rng=np.random.default_rng(1))
    v = mv.verify((x,), out, trace, seed=1)
    assert not v.accepted and v.details["first_bad_layer"] == first


def test_output_aliasing_the_trace_cannot_pass_a_wrong_answer():
    """An in-place op after the last layer used to write the right answer into a claimed output that aliased it."""
    import torch
    from torch import nn

    class Tail(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(12, 4)

        def forward(self, x):
            y = self.a(x)
            y.mul_(2.0)
            return y

    torch.manual_seed(0)
    m, x = Tail().eval(), _x(5, 12)
    with torch.no_grad():
        y = m.a(x)
    v = TorchModelVerifier(m).verify((x,), y, {"a": [y]}, seed=0)  # the output is the pre-glue product
    assert not v.accepted and "differs" in v.reason, v.reason
    out, trace = torch_provider(m, x)
    assert TorchModelVerifier(m).verify((x,), out, trace, seed=0).accepted


def test_linear_subclass_with_its_own_forward_is_glue_not_a_checked_layer():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Scaled(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2.0

    torch.manual_seed(0)
    m = nn.Sequential(Scaled(12, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = _x(6, 12)
    mv = TorchModelVerifier(m)
    assert list(mv.layers) == ["2"]
    out, trace = torch_provider(m, x)
    v = mv.verify((x,), out, trace, seed=0)
    assert v.accepted and v.details["recomputed"] == ["linear#0"], v.reason
    with torch.no_grad():  # the lazy provider skips the subclass's *2: its layer input then differs from the replay's
        h = F.relu(F.linear(x, m[0].weight, m[0].bias))
        y = m[2](h)
    v = mv.verify((x,), y, {"2": [y]}, seed=0)
    assert not v.accepted and v.details["first_bad_layer"] == "2", v.reason
    with pytest.raises(ValueError, match="no nn.Linear"):
        TorchModelVerifier(nn.Sequential(Scaled(4, 4)))


def test_functional_products_recomputed_and_named_or_refused():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(12, 12)
            self.w = nn.Parameter(torch.randn(12, 12) / 4)

        def forward(self, x):
            h = self.lin(x)
            for _ in range(2):        # an in-graph loop reusing a module
                h = torch.tanh(self.lin(h))
            h = F.linear(h, self.w) + h @ self.w
            return self.lin(h)

    torch.manual_seed(0)
    m, x = Mixed().eval(), _x(5, 12)
    out, trace = torch_provider(m, x)
    assert len(trace["lin"]) == 4
    v = TorchModelVerifier(m).verify((x,), out, trace, seed=0)
    assert v.accepted and v.details["layers_checked"] == 4, v.reason
    assert v.details["recomputed"] == ["linear#0", "matmul#1"]
    bad = {"lin": [*trace["lin"][:2], trace["lin"][2] * 1.01, trace["lin"][3]]}  # the third call of the loop
    v = TorchModelVerifier(m).verify((x,), out, bad, seed=0)
    assert not v.accepted and v.details["first_bad_layer"] == "lin#2", v.reason
    with pytest.raises(ValueError, match="outside an nn.Linear"):
        TorchModelVerifier(m, functional="refuse").verify((x,), out, trace, seed=0)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_models_accepted_and_cheats_caught(dtype):
    import torch
    from torch import nn

    torch.manual_seed(0)
    amp = getattr(torch, dtype)
    m = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8), nn.Softmax(-1)).eval()
    x = _x(9, 16)
    with torch.autocast("cpu", dtype=amp):
        out, trace = torch_provider(m, x)
        assert trace["0"][0].dtype == amp
        v = TorchModelVerifier(m).verify((x,), out, trace, seed=0)  # the ambient autocast is the job's
    assert v.accepted and v.details["autocast"] == str(amp), v.reason
    v = TorchModelVerifier(m, autocast=amp).verify((x,), out, trace, seed=0)  # or stated explicitly
    assert v.accepted, v.reason
    assert not TorchModelVerifier(m).verify((x,), out, trace, seed=0).accepted  # an fp32 job: half outputs are wrong
    wide = {k: [t.float() for t in v] for k, v in trace.items()}  # fp32 layer outputs for an autocast job
    v = TorchModelVerifier(m, autocast=amp).verify((x,), out, wide, seed=0)
    assert not v.accepted and "dtype" in v.reason, v.reason
    with torch.autocast("cpu", dtype=amp):
        out, trace = torch_provider(m, x, behaviour="swap_weights", layer="2", magnitude=0.2)
    v = TorchModelVerifier(m, autocast=amp).verify((x,), out, trace, seed=1)
    assert not v.accepted and v.details["first_bad_layer"] == "2", v.reason
    with pytest.raises(ValueError, match="autocast"):
        TorchModelVerifier(m, autocast=torch.float64)


CONV_FORMS = [dict(padding="same"), dict(padding="valid"), dict(padding="same", dilation=2),
              dict(padding=1, padding_mode="reflect"), dict(padding=(1, 2), padding_mode="replicate"),
              dict(padding=2, padding_mode="circular"), dict(groups=2, padding=1), dict(groups=4, stride=2),
              dict(dilation=2, stride=2), dict(padding=(1, 2), stride=(2, 1)),
              dict(padding="same", padding_mode="reflect", groups=2)]


@pytest.mark.parametrize("i", range(len(CONV_FORMS)))
def test_conv_padding_modes_groups_stride_dilation(i):
    import torch
    from torch import nn

    torch.manual_seed(i)
    kw = CONV_FORMS[i]
    m = nn.Sequential(nn.Conv2d(4, 8, (3, 2) if i % 2 else 3, **kw), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = _x(2, 4, 9, 10, seed=i)
    out, trace = torch_provider(m, x)
    mv = TorchModelVerifier(m)
    v = mv.verify((x,), out, trace, seed=0)
    assert v.accepted and v.details["layers_checked"] == 2, (kw, v.reason)
    out, trace = torch_provider(m, x, behaviour="swap_weights", layer="0", magnitude=0.05,
                                rng=np.random.default_rng(i))
    v = mv.verify((x,), out, trace, seed=0)
    assert not v.accepted and v.details["first_bad_layer"] == "0", (kw, v.reason)
    x3 = x[0]  # unbatched (C, H, W) input
    out, trace = torch_provider(m, x3)
    assert mv.verify((x3,), out, trace, seed=0).accepted


def test_requires_grad_bf16_and_non_contiguous_accepted():
    import torch
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 4)).eval()
    x = _x(8, 16)
    cases = {
        "requires_grad input": (m, x.clone().requires_grad_()),
        "non-contiguous input": (m, _x(16, 8).T),
        "strided input": (m, _x(16, 16)[::2]),
        "bf16 model": (nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 4)).eval().to(torch.bfloat16),
                       x.to(torch.bfloat16)),
    }
    for name, (mod, xx) in cases.items():
        out, trace = torch_provider(mod, xx)
        v = TorchModelVerifier(mod).verify((xx,), out, trace, seed=0)
        assert v.accepted, (name, v.reason)
    with torch.enable_grad():  # a trace and output that require grad, and transposed trace entries
        out = m(x)
    _, trace = torch_provider(m, x)
    trace = {k: [t.clone().requires_grad_().T.contiguous().T for t in v] for k, v in trace.items()}
    assert out.requires_grad
    assert TorchModelVerifier(m).verify((x,), out, trace, seed=0).accepted


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_cuda_model_accepted_and_cheat_caught():  # pragma: no cover - needs a GPU
    import torch
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 8)).eval().cuda()
    x = _x(32, 64).cuda()
    out, trace = torch_provider(m, x)
    assert TorchModelVerifier(m).verify((x,), out, trace, seed=0).accepted
    with torch.autocast("cuda", dtype=torch.float16):
        out, trace = torch_provider(m, x)
        assert TorchModelVerifier(m).verify((x,), out, trace, seed=0).accepted
    out, trace = torch_provider(m, x, behaviour="low_precision", layer="0")
    assert not TorchModelVerifier(m).verify((x,), out, trace, seed=0).accepted


def test_caller_misuse_raises_and_provider_evidence_rejects():
    import torch
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 3)).eval()
    x = _x(4, 6)
    out, trace = torch_provider(m, x)
    mv = TorchModelVerifier(m)
    with pytest.raises(TypeError, match="inputs must be a tuple"):
        mv.verify(x, out, trace, seed=0)
    with pytest.raises(TypeError, match="seed"):
        mv.verify((x,), out, trace, seed="0")
    with pytest.raises(TypeError, match="nn.Module"):
        TorchModelVerifier(lambda t: t)
    with pytest.raises(ValueError, match="functional"):
        TorchModelVerifier(m, functional="skip")
    with pytest.raises(ValueError, match="int8 weight|weight"):
        q = nn.Linear(6, 3)
        q.weight = nn.Parameter(torch.zeros(3, 6, dtype=torch.int8), requires_grad=False)
        TorchModelVerifier(nn.Sequential(q))
    evidence = [
        {"0": "junk"}, {"0": [nn.Parameter(trace["0"][0])]}, {"0": [trace["0"][0].numpy()]}, {"0": [None]},
        {"0": [trace["0"][0][None]]}, {"0": [trace["0"][0].double()]}, "junk",
    ]
    for tr in evidence:  # every malformed trace is a rejection with a reason, never an exception
        v = mv.verify((x,), out, tr, seed=0)
        assert not v.accepted and v.reason, tr
