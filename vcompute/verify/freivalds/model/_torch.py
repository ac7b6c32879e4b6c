"""Whole-model verification of a torch module: each ``nn.Linear``/``nn.Conv2d`` call checked with Freivalds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vcompute.core.arrays import dtype_name
from vcompute.core.types import Verdict
from vcompute.verify.base import Misuse, _message, _type_name, caller_code, verifier_fault
from vcompute.verify.freivalds import Freivalds
from vcompute.verify.freivalds.model._output import (final_output_problem, layer_reject, layer_verifier, one_of, plain_list,
                                           record, rng_of, summarise, torch_values_readable)
from vcompute.verify.freivalds.tolerance import FLOAT_DTYPES

__all__ = ["TorchModelVerifier", "verify_torch_model", "FUNCTIONAL_MODES", "PRODUCT_FUNCTIONS"]

#: What a torch verifier does with products outside the checked layers (``F.linear``, ``@``, ``conv``...).
FUNCTIONAL_MODES = ("recompute", "refuse")
#: Names of the torch functions counted as products when called outside a checked layer.
PRODUCT_FUNCTIONS = frozenset({
    "linear", "bilinear", "matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "addmm", "addbmm", "baddbmm",
    "addmv", "mv", "dot", "einsum", "tensordot", "chain_matmul", "multi_dot", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "convolution", "scaled_dot_product_attention"})


class _Refused(Exception):
    pass


def _products_mode(refuse: bool) -> Any:
    """A TorchFunctionMode that names every product computed outside a checked layer."""
    from torch.overrides import TorchFunctionMode

    class Products(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.depth = 0
            self.seen: list[str] = []

        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            name = getattr(func, "__name__", "")
            if self.depth == 0 and name in PRODUCT_FUNCTIONS:
                if refuse:
                    raise _Refused(f"the module computes {name} outside an nn.Linear/nn.Conv2d layer")
                self.seen.append(f"{name}#{len(self.seen)}")
            return func(*args, **(kwargs or {}))

    return Products()


def _clone_tree(x: Any) -> Any:
    """``x`` with every tensor copied, so that in-place operations of the replay never reach the caller's."""
    import torch

    if isinstance(x, torch.Tensor):
        return torch.Tensor.clone(torch.Tensor.detach(x))
    if isinstance(x, tuple):
        return tuple(_clone_tree(v) for v in x)
    if isinstance(x, list):
        return [_clone_tree(v) for v in x]
    if isinstance(x, dict):
        return {k: _clone_tree(v) for k, v in x.items()}
    return x


def _first_device_type(inputs: Any, module: Any) -> str:
    import torch

    for x in inputs:
        if isinstance(x, torch.Tensor):
            return x.device.type
    p = next(iter(module.parameters()), None)
    return p.device.type if p is not None else "cpu"


class TorchModelVerifier:
    """Verifies forward passes of one torch module; its weights are prepared once.

    The layers checked are the ``nn.Linear`` and ``nn.Conv2d`` modules that
    compute as those classes do (:func:`~vcompute.workloads.models.torch_linear_layers`:
    a subclass or instance that overrides ``forward`` is glue, run by the
    verifier itself). Conv layers may use any padding (``'same'``, ``'valid'``,
    asymmetric) and padding mode (zeros, reflect, replicate, circular), groups,
    stride and dilation. Every other product the forward pass computes
    (``F.linear``, ``@``, ``torch.matmul``, ``einsum``, other convolutions,
    parameters used outside a checked layer, attention products) is seen by a
    ``TorchFunctionMode`` during the replay: with ``functional="recompute"``
    the verifier computes it itself (exact, at its full cost) and names it in
    ``details['recomputed']``; with ``functional="refuse"`` verification raises.

    The replay works on copies: neither the inputs nor the claimed trace or
    output are written to, whatever in-place operations the module does.

    Weights changed in place through the parameter (an optimiser step,
    ``load_state_dict``) or replaced (``layer.weight.data = w``) are prepared
    again; a change made through ``layer.weight.data`` in place bumps no
    version counter and is not seen (build a new verifier after one).

    Args:
        module: the consumer's module (its weights are trusted).
        verifier: the Freivalds instance to use per layer.
        autocast: ``torch.bfloat16`` or ``torch.float16`` if the job runs under
            ``torch.autocast`` with that dtype (layers then compute on operands
            cast to it, as autocast does), or None: the autocast state in effect
            when :meth:`verify` is called (none, usually).
        functional: ``"recompute"`` or ``"refuse"`` (see above).

    Raises:
        TypeError: ``module`` is not an ``nn.Module`` or ``verifier`` not a :class:`Freivalds`.
        ValueError: an unknown ``autocast`` or ``functional``, a module without a checkable layer, or a
            layer whose weight dtype cannot be checked.

    Example:
        >>> import torch
        >>> from vcompute.workloads.models import torch_mlp, torch_provider
        >>> m = torch_mlp((8, 16, 4), seed=0); x = torch.randn(5, 8)
        >>> out, trace = torch_provider(m, x)
        >>> TorchModelVerifier(m).verify((x,), out, trace, seed=1).accepted
        True
    """

    def __init__(self, module: Any, verifier: Freivalds | None = None, *, autocast: Any = None,
                 functional: str = "recompute") -> None:
        import torch
        from torch import nn

        from vcompute.workloads.models import torch_linear_layers

        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if autocast is not None and autocast not in (torch.float16, torch.bfloat16):
            raise ValueError(f"autocast must be torch.float16, torch.bfloat16 or None, got {autocast!r}")
        self.module = module
        self.verifier = layer_verifier(verifier)
        self.autocast = autocast
        self.functional = one_of("functional", functional, FUNCTIONAL_MODES)
        self.layers = torch_linear_layers(module)
        if not self.layers:
            raise ValueError("the module has no nn.Linear or nn.Conv2d layer the verifier can check (subclasses "
                             "that override forward are glue); verify it by replication instead")
        for n, m in self.layers.items():
            if dtype_name(m.weight) not in FLOAT_DTYPES:
                raise ValueError(f"layer {n!r} has a {dtype_name(m.weight)} weight; the check supports "
                                 f"{', '.join(FLOAT_DTYPES)} (quantised layers: verify by replication)")
        self._prepared: dict[str, tuple] = {}  # name -> (weight stamp, prepared W^T, weight)

    def verify(self, inputs: tuple, output: Any, trace: Any, *, seed: int | np.random.Generator,
               inference_s: float | None = None) -> Verdict:
        """Check a claimed forward pass.

        Args:
            inputs: the module's positional inputs, as a tuple (``(x,)``).
            output: the claimed output.
            trace: ``{layer name: [output per call]}`` from the provider.
            seed: int or generator, drawn after the claim is fixed.
            inference_s: seconds of one plain forward pass, to report the cost ratio.

        Returns:
            A verdict with per-layer details (``details['recomputed']`` names the
            products outside checked layers); never raises on a malformed trace or output.

        Raises:
            TypeError: ``inputs`` is not a tuple, or ``seed`` not an int or Generator.
            ValueError: ``functional="refuse"`` and the module computes a product outside a checked layer.
            Misuse: (a ``ValueError``) the module raises on ``inputs`` alone (the caller's model and inputs),
                the original exception chained. If the module raises only on the claimed layer outputs (a run
                on ``inputs`` alone succeeds), the claim is rejected with the exception in the reason.
        """
        import torch

        if not isinstance(inputs, tuple):
            raise TypeError(f"inputs must be a tuple of the module's positional arguments, e.g. (x,); "
                            f"got {type(inputs).__name__}")
        rng = rng_of(seed)
        t0 = time.perf_counter()
        if not issubclass(type(trace), dict):
            return Verdict.reject("the trace must map layer names to lists of outputs", scheme="freivalds-model")
        # keys copied to exact str (str.__str__ runs none of a subclass's code; its __hash__/__eq__ would
        # run in the lookups below); keys that are not str name no layer
        claims = {str.__str__(k): plain_list(v) for k, v in dict.items(trace) if issubclass(type(k), str)}
        device_type = _first_device_type(inputs, self.module)
        amp = self.autocast
        if amp is None and torch.is_autocast_enabled(device_type):
            amp = torch.get_autocast_dtype(device_type)
        results: list[dict] = []
        calls = {n: 0 for n in self.layers}
        flops = [0.0]
        mode = _products_mode(self.functional == "refuse")

        def checked(name: str, mod: Any) -> Callable:
            base = type(mod).forward

            def fwd(*args: Any, **kwargs: Any) -> Any:
                x = args[0] if args else kwargs["input"]
                i = calls[name]
                calls[name] += 1
                outs = claims.get(name)
                y = outs[i] if outs is not None and i < len(outs) else None
                mode.depth += 1
                try:
                    v, y = self._check_layer(mod, name, x, y, rng, amp)
                    record(results, name if i == 0 else f"{name}#{i}", v, flops)
                    # continue from a copy of the accepted claim (in-place glue must not write into the
                    # claim); a rejected one is replaced by the honest output, so glue only sees checked values
                    return y.clone() if v.accepted else base(mod, x)
                finally:
                    mode.depth -= 1

            return fwd

        args = _clone_tree(inputs)
        failure: BaseException | None = None
        try:
            for n, m in self.layers.items():
                m.forward = checked(n, m)
            with torch.no_grad(), torch.autocast(device_type, dtype=amp or torch.bfloat16,
                                                 enabled=amp is not None), mode:
                ours = self.module(*args)
        except _Refused as e:
            raise ValueError(f"{e}; build the verifier with functional='recompute' to have the verifier "
                             "compute such products itself, or use nn.Linear/nn.Conv2d modules") from None
        except (Misuse, KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as e:  # the module (the caller's) or a check of the claim (the provider's): see below
            if verifier_fault(e):
                raise
            failure = e
        finally:
            for m in self.layers.values():
                m.__dict__.pop("forward", None)
        if failure is not None:
            # Whose failure? The replay ran the caller's module on claimed layer outputs. Run it once more on the
            # caller's inputs alone (no claimed value anywhere): if that fails too, the module is broken (raised,
            # never a rejection); if not, the claimed values made it fail (the provider's doing: a rejection).
            with caller_code("the consumer's module, run on the caller's inputs alone,"), torch.no_grad(), \
                    torch.autocast(device_type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                self.module(*_clone_tree(inputs))
            return summarise(results, f"the module raised {_type_name(failure)}: {_message(failure)} on the claimed "
                             "values (it runs on the caller's inputs alone)", t0, inference_s, flops[0],
                             {"recomputed": mode.seen, "autocast": None if amp is None else str(amp)})
        extra = [n for n, outs in claims.items() if n in calls and outs is not None and len(outs) > calls[n]]
        problem = final_output_problem(output, ours)
        if problem is None and extra:
            problem = f"the trace has more outputs than calls for layer(s) {', '.join(extra)}"
        return summarise(results, problem, t0, inference_s, flops[0],
                         {"recomputed": mode.seen, "autocast": None if amp is None else str(amp)})

    def _check_layer(self, mod: Any, name: str, x: Any, y: Any, rng: np.random.Generator,
                     amp: Any) -> tuple[Verdict, Any]:
        import torch
        from torch import nn

        if y is None:
            return layer_reject("the trace has no output for this call"), y
        if type(y) is not torch.Tensor:
            return layer_reject(f"the claimed output is a {type(y).__name__}, not a plain torch.Tensor"), y
        if not torch_values_readable(y):
            return layer_reject(f"the claimed output is a {y.layout} tensor on {y.device}, not dense values"), y
        # through the class: the claimed tensor may carry an instance attribute named ``detach``
        x, y = torch.Tensor.detach(x), torch.Tensor.detach(y)
        w = mod.weight.detach()
        bias = None if mod.bias is None else mod.bias.detach()
        if amp is not None:  # autocast casts floating operands (not float64) of linear/conv to its dtype
            x, w, bias = (t if t is None or not t.is_floating_point() or t.dtype == torch.float64 else t.to(amp)
                          for t in (x, w, bias))
        if y.dtype != x.dtype:  # torch's linear and conv return their (autocast) operands' dtype
            return layer_reject(f"the claimed output has dtype {dtype_name(y)}; the layer computes "
                                f"{dtype_name(x)}"), y
        if y.device != x.device:  # a claim from another device is the same values (moved once its size is the job's)
            if not self._size_fits(mod, x, y):
                return layer_reject(f"claimed output has shape {tuple(y.shape)}, input {tuple(x.shape)}"), y
            y = y.to(x.device)
        if isinstance(mod, nn.Conv2d):
            batched = x.ndim == 4
            if not batched:  # unbatched (C, H, W) input
                if y.ndim != 3:
                    return layer_reject(f"claimed output has shape {tuple(y.shape)} for an unbatched input"), y
                x, y4 = x[None], y[None]
            else:
                y4 = y
            x, pad = _conv_input(mod, x)
            return self.verifier.check_conv2d(x, w, y4, seed=rng, bias=bias, stride=mod.stride, padding=pad,
                                              dilation=mod.dilation, groups=mod.groups), y
        stamp = (w.data_ptr(), mod.weight._version, tuple(w.shape), tuple(w.stride()), w.dtype, w.device)
        hit = self._prepared.get(name)
        if hit is None or hit[0] != stamp:
            # W^T once, contiguous: the row kernels stream B by rows, and a transposed view would be copied per
            # call. Rebuilt when the weight is changed in place (its version) or replaced (its storage: the
            # weight is kept, so a new storage cannot reuse the old address).
            self._prepared[name] = (stamp, self.verifier.prepare(w.T.contiguous()), w)
        if tuple(y.shape[:-1]) != tuple(x.shape[:-1]) or y.ndim == 0 or y.shape[-1] != w.shape[0]:
            return layer_reject(f"claimed output has shape {tuple(y.shape)}, input {tuple(x.shape)}"), y
        a = x.reshape(-1, x.shape[-1])
        c = y.reshape(-1, y.shape[-1])
        return self.verifier.check(a, self._prepared[name][1], c, seed=rng, bias=bias), y


    @staticmethod
    def _size_fits(mod: Any, x: Any, y: Any) -> bool:
        """Whether a claimed layer output has no more elements than the layer can produce from ``x``.

        A bound, not the exact shape (the checks below derive that): what a copy of the claim may cost.
        """
        from torch import nn

        if isinstance(mod, nn.Conv2d):  # stride >= 1: each output map is at most the (padded) input's size
            ph, pw = (0, 0) if isinstance(mod.padding, str) else mod.padding
            spatial = (x.shape[-2] + 2 * ph) * (x.shape[-1] + 2 * pw)
            bound = (x.numel() // max(1, x.shape[-3] * x.shape[-2] * x.shape[-1])) * mod.out_channels * spatial
        else:
            bound = (x.numel() // max(1, x.shape[-1])) * mod.weight.shape[0]
        return y.numel() <= bound


def _conv_input(mod: Any, x: Any) -> tuple[Any, Any]:
    """The input padded as ``nn.Conv2d`` pads it, and the symmetric zero padding left for the check."""
    import torch.nn.functional as F

    (kh, kw), (dh, dw) = mod.kernel_size, mod.dilation
    if isinstance(mod.padding, str):  # 'valid' or 'same' (stride 1): torch puts the odd extra on the right
        th, tw = (dh * (kh - 1), dw * (kw - 1)) if mod.padding == "same" else (0, 0)
        pads = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    else:
        ph, pw = mod.padding
        pads = (pw, pw, ph, ph)
    if mod.padding_mode == "zeros" and pads[0] == pads[1] and pads[2] == pads[3]:
        return x, (pads[2], pads[0])
    mode = "constant" if mod.padding_mode == "zeros" else mod.padding_mode
    return F.pad(x, pads, mode=mode), 0


def verify_torch_model(module: Any, inputs: tuple, output: Any, trace: Any, *, seed: int | np.random.Generator,
                       verifier: Freivalds | None = None, inference_s: float | None = None,
                       autocast: Any = None) -> Verdict:
    """Verify every linear/conv layer of one torch forward pass (see :class:`TorchModelVerifier`).

    Args:
        module: the consumer's module; inputs: its positional inputs, as a tuple.
        output: the claimed output; trace: ``{layer name: [outputs]}``.
        seed: seed or generator drawn after the claim.
        verifier: the per-layer Freivalds (default ``Freivalds(rounds=2)``).
        inference_s: seconds of a plain forward pass, to report the cost ratio.
        autocast: the job's ``torch.autocast`` dtype, if any.

    Returns:
        A verdict with per-layer details.
    """
    return TorchModelVerifier(module, verifier, autocast=autocast).verify(inputs, output, trace, seed=seed,
                                                                          inference_s=inference_s)
