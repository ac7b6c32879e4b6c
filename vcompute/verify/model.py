"""Whole-model verification: Freivalds on every linear layer of a forward pass.

The provider returns the model's output and a trace with the output of each
linear layer (torch ``nn.Linear``/``nn.Conv2d`` calls; JAX ``dot_general``
and ``conv_general_dilated`` equations). The verifier replays the forward
pass itself, but instead of computing a linear layer it checks the claimed
output against the input the layer actually receives in the replay (and the
consumer's own weights) with Freivalds, then continues from the claimed
output. Everything between linear layers (activations, norms, softmax,
attention products) is recomputed by the verifier, which keeps it honest and
is cheap for models whose FLOPs are in their linear layers. Idea as in
Slalom (Tramer & Boneh, ICLR 2019), with float tolerances instead of F_p.

The result is one :class:`~vcompute.core.Verdict` whose ``details`` hold the
per-layer verdicts, the first bad layer, and ``verify_s`` (plus
``verify_over_inference`` when the inference time is given).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vcompute.core.arrays import to_numpy
from vcompute.core.types import Cost, Verdict
from vcompute.verify.freivalds import Freivalds, PreparedMatrix

__all__ = ["TorchModelVerifier", "JaxModelVerifier", "verify_torch_model", "verify_jax_model",
           "BATCHED_MODES"]

_SCHEME = "freivalds-model"


def _output_leaves(x: Any) -> list:
    """The arrays of a (nested) model output: lists and tuples in order, dicts by sorted key (as JAX flattens)."""
    if isinstance(x, dict):
        try:
            keys = sorted(x)
        except TypeError:
            keys = list(x)
        return [leaf for k in keys for leaf in _output_leaves(x[k])]
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _output_leaves(item)]
    return [] if x is None else [x]


def _final_output_problem(claimed: Any, ours: Any) -> str | None:
    """Compare the claimed model output with the replay's (glue is not bit-reproducible across hardware).

    A model with several outputs (a tuple, list or dict) has each compared on
    its own scale, so a large output cannot hide a wrong small one. Integer
    and boolean outputs (indices, masks) must match exactly. Float outputs
    are compared on host views in their own precision (float32 stays float32:
    the difference of two float32 numbers is within half an ulp of itself, far
    below the 1e-5 tolerance), one pass for the gap and one for the scale.
    """
    if isinstance(ours, (list, tuple, dict)):
        mine = _output_leaves(ours)
        theirs = _output_leaves(claimed) if isinstance(claimed, (list, tuple, dict)) else [claimed]
        if len(theirs) != len(mine):
            return f"the claimed model output has {len(theirs)} arrays, the replay gives {len(mine)}"
        for i, (c, o) in enumerate(zip(theirs, mine)):
            problem = _array_problem(c, o)
            if problem is not None:
                return f"output {i}: {problem}"
        return None
    return _array_problem(claimed, ours)


def _array_problem(claimed: Any, ours: Any) -> str | None:
    try:
        c = to_numpy(claimed)
    except Exception as e:
        return f"claimed model output is not an array: {type(e).__name__}"
    try:
        o = to_numpy(ours)
    except Exception as e:
        return f"the replay's output is not an array: {type(e).__name__}: {e}"
    if c.shape != o.shape:
        return f"claimed model output has shape {c.shape}, the replay gives {o.shape}"
    if not o.size:
        return None
    if o.dtype.kind in "biu":  # no rounding to forgive: a relative tolerance would pass an index off by one
        try:
            same = np.equal(c, o)
        except TypeError as e:
            return f"claimed model output has dtype {c.dtype}, which cannot be compared: {e}"
        if not np.all(same):
            return (f"claimed model output differs from the replay's {o.dtype} output in "
                    f"{int(np.size(same) - np.count_nonzero(same))} entries")
        return None
    try:
        dt = np.result_type(c.dtype, o.dtype, np.float32)
        d = np.subtract(c, o, dtype=dt)
    except TypeError as e:
        return f"claimed model output has dtype {c.dtype}, which cannot be compared: {e}"
    gap = float(np.max(np.abs(d, out=d)))
    scale = float(max(np.max(o), -np.min(o)))
    if not np.isfinite(gap) or not np.isfinite(scale):
        if not np.all(np.isfinite(c)):
            return "claimed model output contains NaN or Inf"
        return "the replay's output contains NaN or Inf (the claimed layer outputs are not finite)"
    if gap > 1e-5 * scale + 1e-30:  # ~100 float32 ulps of the largest entry
        return f"claimed model output differs from the replay by {gap:.3g} (scale {scale:.3g})"
    return None


def _summarise(layers: list[dict], problem: str | None, t0: float, inference_s: float | None,
               flops: float, extra: dict | None = None) -> Verdict:
    verify_s = time.perf_counter() - t0
    bad = [x for x in layers if not x["accepted"]]
    details: dict[str, Any] = {"layers": layers, "first_bad_layer": bad[0]["name"] if bad else None,
                               "layers_checked": len(layers), "verify_s": verify_s, **(extra or {})}
    if inference_s:
        details["inference_s"] = inference_s
        details["verify_over_inference"] = verify_s / inference_s
    cost = Cost(flops=flops, seconds=verify_s)
    if bad:
        return Verdict.reject(f"layer {bad[0]['name']}: {bad[0]['reason']} ({len(bad)} of {len(layers)} "
                              "layers fail)", scheme=_SCHEME, cost=cost, details=details)
    if problem is not None:
        return Verdict.reject(problem, scheme=_SCHEME, cost=cost, details=details)
    if not layers:
        return Verdict.reject("no linear layers were checked: the model has none the verifier knows",
                              scheme=_SCHEME, cost=cost, details=details)
    return Verdict.accept(f"all {len(layers)} linear layer calls verified", scheme=_SCHEME, cost=cost,
                          details=details)


class TorchModelVerifier:
    """Verifies forward passes of one torch module; its weights are prepared once.

    Weights changed in place through the parameter (an optimiser step,
    ``load_state_dict``) or replaced (``layer.weight.data = w``) are prepared
    again; a change made through ``layer.weight.data`` in place bumps no
    version counter and is not seen (build a new verifier after one).

    Args:
        module: the consumer's module (its weights are trusted).
        verifier: the Freivalds instance to use per layer.

    Example:
        >>> import torch
        >>> from vcompute.workloads.models import torch_mlp, torch_provider
        >>> m = torch_mlp((8, 16, 4), seed=0); x = torch.randn(5, 8)
        >>> out, trace = torch_provider(m, x)
        >>> TorchModelVerifier(m).verify((x,), out, trace, seed=1).accepted
        True
    """

    def __init__(self, module: Any, verifier: Freivalds | None = None) -> None:
        from torch import nn

        self.module = module
        self.verifier = verifier or Freivalds(rounds=2)
        self.layers = {n: m for n, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
        self._prepared: dict[str, tuple] = {}  # name -> (weight stamp, prepared W^T, weight)

    def verify(self, inputs: tuple, output: Any, trace: Any, *, seed: int | np.random.Generator,
               inference_s: float | None = None) -> Verdict:
        """Check a claimed forward pass.

        Args:
            inputs: the module's inputs.
            output: the claimed output.
            trace: ``{layer name: [output per call]}`` from the provider.
            seed: seed or generator, drawn after the claim is fixed.
            inference_s: seconds of one plain forward pass, to report the cost ratio.

        Returns:
            A verdict with per-layer details; never raises on a malformed trace.
        """
        import torch

        t0 = time.perf_counter()
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        if not isinstance(trace, dict):
            return Verdict.reject("the trace must map layer names to lists of outputs", scheme=_SCHEME)
        results: list[dict] = []
        calls = {n: 0 for n in self.layers}
        flops = [0.0]

        def checked(name: str, mod: Any) -> Callable:
            def fwd(x: Any) -> Any:
                i = calls[name]
                calls[name] += 1
                label = name if i == 0 else f"{name}#{i}"
                outs = trace.get(name)
                y = outs[i] if isinstance(outs, (list, tuple)) and i < len(outs) else None
                v = self._check_layer(mod, name, x, y, rng)
                flops[0] += v.cost.flops
                results.append({"name": label, "accepted": v.accepted, "reason": v.reason,
                                "max_error_ratio": v.details.get("max_error_ratio"), "seconds": v.cost.seconds})
                if _is_tensor_like(y, x) and y.ndim == x.ndim:
                    return y  # continue from the claim, so later layers are judged on their own
                return type(mod).forward(mod, x)  # stand in for a missing output to keep checking

            return fwd

        try:
            for n, m in self.layers.items():
                m.forward = checked(n, m)
            with torch.no_grad():
                ours = self.module(*inputs)
        except Exception as e:
            return Verdict.reject(f"replaying the forward pass failed: {type(e).__name__}: {e}", scheme=_SCHEME,
                                  cost=Cost(seconds=time.perf_counter() - t0),
                                  details={"layers": results})
        finally:
            for m in self.layers.values():
                m.__dict__.pop("forward", None)
        extra = [n for n, outs in trace.items() if n in calls and isinstance(outs, (list, tuple))
                 and len(outs) > calls[n]]
        problem = _final_output_problem(output, ours)
        if problem is None and extra:
            problem = f"the trace has more outputs than calls for layer(s) {', '.join(extra)}"
        return _summarise(results, problem, t0, inference_s, flops[0])

    def _check_layer(self, mod: Any, name: str, x: Any, y: Any, rng: np.random.Generator) -> Verdict:
        from torch import nn

        if y is None:
            return Verdict.reject("the trace has no output for this call", scheme=_SCHEME)
        bias = None if mod.bias is None else mod.bias.detach()
        if isinstance(mod, nn.Conv2d):
            if mod.groups != 1 or mod.padding_mode != "zeros" or isinstance(mod.padding, str):
                return Verdict.reject("conv layers with groups, non-zero or string padding are not supported",
                                      scheme=_SCHEME)
            return self.verifier.check_conv2d(x, mod.weight.detach(), y, seed=rng, bias=bias, stride=mod.stride,
                                              padding=mod.padding, dilation=mod.dilation)
        w = mod.weight.detach()  # shares the weight's storage and version counter
        stamp = (w.data_ptr(), w._version, tuple(w.shape), tuple(w.stride()), w.dtype, w.device)
        hit = self._prepared.get(name)
        if hit is None or hit[0] != stamp:
            # W^T once, contiguous: the row kernels stream B by rows, and a transposed view would be copied per
            # call. Rebuilt when the weight is changed in place (its version) or replaced (its storage: ``w``
            # is kept, so a new storage cannot reuse the old address).
            self._prepared[name] = (stamp, self.verifier.prepare(w.T.contiguous()), w)
        if not _is_tensor_like(y, x) or tuple(y.shape[:-1]) != tuple(x.shape[:-1]):
            return Verdict.reject(f"claimed output has shape {getattr(y, 'shape', None)}, input {tuple(x.shape)}",
                                  scheme=_SCHEME)
        a = x.reshape(-1, x.shape[-1])
        c = y.reshape(-1, y.shape[-1])
        return self.verifier.check(a, self._prepared[name][1], c, seed=rng, bias=bias)


def _is_tensor_like(y: Any, x: Any) -> bool:
    return type(y) is type(x) and hasattr(y, "shape")


def verify_torch_model(module: Any, inputs: tuple, output: Any, trace: Any, *, seed: int | np.random.Generator,
                       verifier: Freivalds | None = None, inference_s: float | None = None) -> Verdict:
    """Verify every linear/conv layer of one torch forward pass (see :class:`TorchModelVerifier`).

    Args:
        module: the consumer's module; inputs: its inputs.
        output: the claimed output; trace: ``{layer name: [outputs]}``.
        seed: seed or generator drawn after the claim.
        verifier: the per-layer Freivalds (default ``Freivalds(rounds=2)``).
        inference_s: seconds of a plain forward pass, to report the cost ratio.

    Returns:
        A verdict with per-layer details.
    """
    return TorchModelVerifier(module, verifier).verify(inputs, output, trace, seed=seed, inference_s=inference_s)


#: How a JAX verifier treats ``dot_general`` equations with batch dimensions.
BATCHED_MODES = ("recompute", "check")


class JaxModelVerifier:
    """Verifies evaluations of one JAX function; its replay is compiled and its weights prepared once.

    Every ``conv_general_dilated`` and every ``dot_general`` without batch
    dimensions (``x @ W``: the linear layers) is checked with Freivalds
    against the input the verifier's own replay feeds it. ``dot_general``
    equations *with* batch dimensions (attention's ``q k^T`` and
    ``softmax(.) v``, products of two activations) are, by default, recomputed
    in the replay, as torch's ``@`` is: at attention's small contractions that
    is cheaper than checking them. ``batched="check"`` checks them with
    Freivalds too (and names them when they are wrong).

    The replay is one jitted program per argument structure and shapes that takes the
    claimed layer outputs as inputs and returns the layer inputs in the 2-D
    (or batched 3-D) form the checks use. A ``dot_general`` operand that is
    a JAX array argument leaf (a weight) is prepared for Freivalds once, and
    reused for as long as the same (immutable) array object is passed; numpy
    leaves, which can change in place, are prepared on every call. On CPU the checks run on
    numpy views of the JAX buffers (no copies).

    Args:
        fn: the model function, ``fn(*args)``; its arguments (parameters
            included) are trusted.
        verifier: the Freivalds instance to use per layer (default ``Freivalds(rounds=2)``).
        batched: ``"recompute"`` or ``"check"`` (see above).

    Raises:
        ValueError: for an unknown ``batched`` mode.

    Example:
        >>> from vcompute.workloads.models import jax_mlp, jax_provider
        >>> f, p = jax_mlp((8, 16, 4), seed=0); x = np.ones((5, 8), np.float32)
        >>> out, trace = jax_provider(f, p, x)
        >>> JaxModelVerifier(f).verify((p, x), out, trace, seed=1).accepted
        True
    """

    def __init__(self, fn: Callable, verifier: Freivalds | None = None, *, batched: str = "recompute") -> None:
        if batched not in BATCHED_MODES:
            raise ValueError(f"batched must be one of {', '.join(BATCHED_MODES)}, got {batched!r}")
        self.fn = fn
        self.verifier = verifier or Freivalds(rounds=2)
        self.batched = batched
        self._state = _jax_state(fn, batched)

    def verify(self, args: tuple, output: Any, trace: Any, *, seed: int | np.random.Generator,
               inference_s: float | None = None) -> Verdict:
        """Check a claimed evaluation ``fn(*args)``.

        Args:
            args: the function's arguments (parameters included, trusted).
            output: the claimed output.
            trace: the list of every linear equation's output, in evaluation order.
            seed: seed or generator, drawn after the claim is fixed.
            inference_s: seconds of one plain evaluation, to report the cost ratio.

        Returns:
            A verdict with per-layer details (layers named ``dot_general[i]``,
            counting every ``dot_general`` in evaluation order; ``details['recomputed']``
            names the batched ones the replay recomputed; ``details['replay']`` is
            ``"compiled"``, or ``"eager"`` when a malformed trace made the verifier
            replay equation by equation to name the bad one). Never raises on a malformed trace.
        """
        t0 = time.perf_counter()
        fr = self.verifier
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        if not isinstance(trace, (list, tuple)):
            return Verdict.reject("the trace must be a list of linear-equation outputs", scheme=_SCHEME)
        results: list[dict] = []
        flops = [0.0]

        def record(label: str, v: Verdict) -> None:
            flops[0] += v.cost.flops
            results.append({"name": label, "accepted": v.accepted, "reason": v.reason,
                            "max_error_ratio": v.details.get("max_error_ratio"), "seconds": v.cost.seconds})

        fast = self._replay(args, trace)
        if fast is not None:  # well-formed trace: the glue ran as one compiled program; check each layer
            ours, checks, recomputed = fast
            for label, a, b, c, check in checks:
                record(label, check(fr, a, b, c, rng))
            return _summarise(results, _final_output_problem(output, ours), t0, inference_s, flops[0],
                              {"recomputed": recomputed, "replay": "compiled"})

        recomputed: list[str] = []

        def on_layer(i: int, name: str, ins: list, params: dict, compute: Callable) -> Any:
            label = f"{name}[{i}]"
            if name == "dot_general" and self.batched == "recompute" and _has_batch_dims(params):
                recomputed.append(label)
                return compute()
            y = trace[i] if i < len(trace) else None
            if y is None:
                v = Verdict.reject("the trace has no output for this equation", scheme=_SCHEME)
            elif name == "dot_general":
                v = _check_dot_general(fr, ins, params, y, rng)
            else:
                v = _check_jax_conv(fr, ins, params, y, rng)
            record(label, v)
            return y if v.accepted else compute()

        from vcompute.workloads.models import eval_jaxpr_layers

        try:
            ours = eval_jaxpr_layers(self.fn, args, on_layer)
        except Exception as e:
            return Verdict.reject(f"replaying the function failed: {type(e).__name__}: {e}", scheme=_SCHEME,
                                  cost=Cost(seconds=time.perf_counter() - t0), details={"layers": results})
        problem = _final_output_problem(output, ours)
        n_eqs = len(results) + len(recomputed)
        if problem is None and len(trace) > n_eqs:
            problem = f"the trace has {len(trace)} outputs but the function has {n_eqs} linear equations"
        return _summarise(results, problem, t0, inference_s, flops[0], {"recomputed": recomputed, "replay": "eager"})

    def _replay(self, args: tuple, trace: Any) -> tuple | None:
        """Run the compiled replay; None if the trace is malformed (the eager replay then names the problem).

        Returns ``(output, [(label, a, b, c, check)], [recomputed labels])``.
        """
        import jax

        from vcompute.core.arrays import backend_of

        st = self._state
        try:
            leaves, treedef = jax.tree_util.tree_flatten(args)
            # everything the jaxpr and the plan's leaf positions depend on: the argument structure (a function
            # may branch on it), each leaf's kind, shape, dtype and weak type, and the x64 mode
            key = (treedef, bool(jax.config.jax_enable_x64),
                   tuple((type(x), tuple(getattr(x, "shape", ())), str(getattr(x, "dtype", "")),
                          bool(getattr(x, "weak_type", False))) for x in leaves))
            plan = st.plans.get(key)
            if plan is None:
                plan = st.plans[key] = _JaxPlan(st, args, self.batched)
            if len(trace) != len(plan.eqns):
                return None
            for y, e in zip(trace, plan.eqns):
                if backend_of(y) != "jax" or tuple(y.shape) != e.out_shape or y.dtype != e.out_dtype:
                    return None
            ours, outs = plan.replay(tuple(args), [trace[i] for i in plan.checked])
            host = _jax_on_cpu(ours)
            if host:
                view = np.asarray
            else:
                import jax.numpy as jnp

                view = lambda x: x if backend_of(x) == "jax" else jnp.asarray(x)  # noqa: E731
            checks = []
            for i in plan.checked:
                e = plan.eqns[i]
                a_out, b_out = (None if w is None else outs[w] for w in plan.where[i])
                if e.name != "dot_general":
                    checks.append((e.label, a_out, b_out, trace[i], _conv_check(e.params)))
                    continue
                a = view(a_out) if e.lhs_leaf is None else _canonical(view(leaves[e.lhs_leaf]), e.lhs_perm, e.lhs_shape)
                if e.rhs_leaf is None:
                    b = view(b_out)
                else:
                    b = st.prepared_weight(e, leaves[e.rhs_leaf], view, host, self.verifier)
                c = _canonical(view(trace[i]), None, e.out_canon)
                checks.append((e.label, a, b, c, _dot_check))
        except Exception:  # any trouble: the eager replay reports it layer by layer
            return None
        return ours, checks, [plan.eqns[i].label for i in plan.recomputed]


def verify_jax_model(fn: Callable, args: tuple, output: Any, trace: Any, *, seed: int | np.random.Generator,
                     verifier: Freivalds | None = None, inference_s: float | None = None,
                     batched: str = "recompute") -> Verdict:
    """Verify every linear equation of a JAX function's evaluation (see :class:`JaxModelVerifier`).

    The compiled replay and prepared weights are cached per ``fn`` (weakly) and
    argument structure and shapes, so repeated calls cost what :meth:`JaxModelVerifier.verify` does.

    Args:
        fn: the model function; args: its arguments (parameters included, trusted).
        output: the claimed output; trace: list of each linear equation's output.
        seed: seed or generator drawn after the claim.
        verifier: the per-layer Freivalds (default ``Freivalds(rounds=2)``).
        inference_s: seconds of a plain evaluation, to report the cost ratio.
        batched: ``"recompute"`` (default) or ``"check"`` batched products such as attention's.

    Returns:
        A verdict with per-layer details (layers named ``dot_general[i]``).

    Example:
        >>> from vcompute.workloads.models import jax_mlp, jax_provider
        >>> f, p = jax_mlp((8, 16, 4), seed=0); x = np.ones((5, 8), np.float32)
        >>> out, trace = jax_provider(f, p, x)
        >>> verify_jax_model(f, (p, x), out, trace, seed=1).accepted
        True
    """
    return JaxModelVerifier(fn, verifier, batched=batched).verify(args, output, trace, seed=seed,
                                                                   inference_s=inference_s)


def _has_batch_dims(params: dict) -> bool:
    (_, _), (lb, _) = params["dimension_numbers"]
    return len(lb) > 0


def _dot_check(fr: Freivalds, a: Any, b: Any, c: Any, rng: np.random.Generator) -> Verdict:
    return fr.check(a, b, c, seed=rng)


def _conv_check(params: dict) -> Callable:
    return lambda fr, x, w, y, rng: _check_jax_conv(fr, [x, w], params, y, rng)


def _canonical(x: Any, perm: tuple | None, shape: tuple) -> Any:
    """``x`` transposed by ``perm`` and reshaped to ``shape`` (numpy or JAX)."""
    if perm is not None and tuple(perm) != tuple(range(len(perm))):
        x = x.transpose(perm)
    return x.reshape(shape)


def _jax_on_cpu(x: Any) -> bool:
    import jax

    try:
        return all(d.platform == "cpu" for leaf in jax.tree_util.tree_leaves(x) for d in leaf.devices())
    except Exception:
        return False


def _dot_layout(lhs_shape: tuple, rhs_shape: tuple, params: dict) -> dict:
    """Permutations and 2-D (batched: 3-D) shapes that turn a ``dot_general`` into ``a @ b = c``."""
    (lc, rc), (lb, rb) = params["dimension_numbers"]
    lc, rc, lb, rb = (tuple(int(d) for d in t) for t in (lc, rc, lb, rb))
    lf = tuple(d for d in range(len(lhs_shape)) if d not in lc and d not in lb)
    rf = tuple(d for d in range(len(rhs_shape)) if d not in rc and d not in rb)
    size = lambda s, dims: int(np.prod([s[d] for d in dims], dtype=np.int64))  # noqa: E731
    nb, m, k, n = size(lhs_shape, lb), size(lhs_shape, lf), size(lhs_shape, lc), size(rhs_shape, rf)
    lead = (nb,) if lb else ()
    return {"lhs_perm": lb + lf + lc, "rhs_perm": rb + rc + rf, "lhs_shape": lead + (m, k),
            "rhs_shape": lead + (k, n), "out_canon": lead + (m, n)}


class _Eqn:
    """What the plan knows about one linear equation."""

    def __init__(self, index: int, name: str, params: dict, out_shape: tuple, out_dtype: Any) -> None:
        self.index, self.name, self.params = index, name, params
        self.label = f"{name}[{index}]"
        self.out_shape, self.out_dtype = out_shape, out_dtype
        self.mode = "check"
        self.lhs_leaf: int | None = None
        self.rhs_leaf: int | None = None
        self.lhs_dtype = self.rhs_dtype = None
        self.lhs_perm = self.rhs_perm = None
        self.lhs_shape = self.rhs_shape = self.out_canon = None


class _JaxPlan:
    """The equations of ``fn`` at one argument structure and set of shapes, and its jitted replay."""

    def __init__(self, st: "_JaxState", args: tuple, batched: str) -> None:
        import jax

        fn = st.fn()
        if fn is None:
            raise RuntimeError("the model function is gone")
        eqns: list[_Eqn] = []

        def shapes(*a: Any) -> Any:
            flat = jax.tree_util.tree_leaves(a)

            def leaf_index(x: Any) -> int | None:
                return next((j for j, f in enumerate(flat) if f is x), None)

            def on_layer(i: int, name: str, ins: list, params: dict, compute: Callable) -> Any:
                out = compute()
                e = _Eqn(i, name, params, tuple(out.shape), out.dtype)
                if name == "dot_general":
                    lay = _dot_layout(tuple(ins[0].shape), tuple(ins[1].shape), params)
                    for k, v in lay.items():
                        setattr(e, k, v)
                    e.lhs_leaf, e.rhs_leaf = leaf_index(ins[0]), leaf_index(ins[1])
                    e.lhs_dtype, e.rhs_dtype = ins[0].dtype, ins[1].dtype
                    if batched == "recompute" and _has_batch_dims(params):
                        e.mode = "recompute"
                eqns.append(e)
                return out

            from vcompute.workloads.models import eval_jaxpr_layers

            return eval_jaxpr_layers(fn, a, on_layer)

        jax.eval_shape(shapes, *args)
        real = jax.tree_util.tree_leaves(args)
        for e in eqns:  # a leaf is used as it is only if it already has the operand's dtype (no x64 demotion)
            if e.lhs_leaf is not None and not _same_dtype(real[e.lhs_leaf], e.lhs_dtype):
                e.lhs_leaf = None
            if e.rhs_leaf is not None and not _same_dtype(real[e.rhs_leaf], e.rhs_dtype):
                e.rhs_leaf = None
        self.eqns = eqns
        self.checked = [e.index for e in eqns if e.mode == "check"]
        self.recomputed = [e.index for e in eqns if e.mode == "recompute"]
        fref = st.fn
        slot = {i: j for j, i in enumerate(self.checked)}

        # which replay output holds each checked equation's operands, filled in while tracing
        where: dict[int, tuple] = {}

        def run(a: tuple, claimed: list) -> Any:
            outs: list = []
            seen: dict = {}  # one output per distinct operand (q, k and v share their input)

            def emit(x: Any, perm: tuple | None, shape: tuple | None) -> int:
                key = (id(x), perm, shape)
                if key not in seen:
                    seen[key] = len(outs)
                    outs.append(x if shape is None else _canonical(x, perm, shape))
                return seen[key]

            def on_layer(i: int, name: str, ins: list, params: dict, compute: Callable) -> Any:
                e = eqns[i]
                if e.mode == "recompute":
                    return compute()
                if name != "dot_general":
                    where[i] = (emit(ins[0], None, None), emit(ins[1], None, None))
                else:  # operands that are argument leaves are taken (or prepared) outside
                    where[i] = (None if e.lhs_leaf is not None else emit(ins[0], e.lhs_perm, e.lhs_shape),
                                None if e.rhs_leaf is not None else emit(ins[1], e.rhs_perm, e.rhs_shape))
                return claimed[slot[i]]

            from vcompute.workloads.models import eval_jaxpr_layers

            return eval_jaxpr_layers(fref(), a, on_layer), outs

        self.where = where
        self.replay = jax.jit(run)


def _same_dtype(x: Any, dtype: Any) -> bool:
    try:
        return np.dtype(x.dtype) == np.dtype(dtype)
    except Exception:
        return False


class _JaxState:
    """Per-function cache: plans per argument structure and shapes, and prepared weights per argument leaf."""

    def __init__(self, fn: Callable, batched: str) -> None:
        import weakref

        try:
            self.fn = weakref.ref(fn)
        except TypeError:
            self.fn = lambda: fn
        self.plans: dict = {}
        self._weights: dict = {}

    def prepared_weight(self, e: _Eqn, leaf: Any, view: Callable, host: bool, fr: Freivalds) -> PreparedMatrix:
        """The prepared canonical right operand of ``e``, rebuilt only when a different array is passed."""
        import jax

        key = (e.rhs_leaf, e.rhs_perm, e.rhs_shape, host)
        hit = self._weights.get(key)
        if hit is not None and hit[0] is leaf:
            return hit[1]
        w = _canonical(view(leaf), e.rhs_perm, e.rhs_shape)
        if host:
            w = np.ascontiguousarray(w)
        prepared = fr.prepare(w)
        if isinstance(leaf, jax.Array):  # immutable; a numpy leaf could change in place under a cached copy
            self._weights[key] = (leaf, prepared)
        return prepared


_STATES: Any = None


def _jax_state(fn: Callable, batched: str) -> _JaxState:
    import weakref

    global _STATES
    if _STATES is None:
        _STATES = weakref.WeakKeyDictionary()
    try:
        per_fn = _STATES.setdefault(fn, {})
    except TypeError:  # not weak-referenceable: no caching across calls
        return _JaxState(fn, batched)
    st = per_fn.get(batched)
    if st is None:
        st = per_fn[batched] = _JaxState(fn, batched)
    return st


def _check_dot_general(fr: Freivalds, ins: list, params: dict, y: Any, rng: np.random.Generator) -> Verdict:
    import jax.numpy as jnp

    lhs, rhs = ins
    lay = _dot_layout(tuple(lhs.shape), tuple(rhs.shape), params)
    (lc, rc), (lb, rb) = params["dimension_numbers"]
    lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
    want = tuple(lhs.shape[d] for d in lb) + tuple(lhs.shape[d] for d in lf) + tuple(rhs.shape[d] for d in rf)
    if not hasattr(y, "shape") or tuple(y.shape) != want:
        return Verdict.reject(f"claimed output has shape {getattr(y, 'shape', None)}, expected {want}",
                              scheme=_SCHEME)
    a = jnp.transpose(lhs, lay["lhs_perm"]).reshape(lay["lhs_shape"])
    b = jnp.transpose(rhs, lay["rhs_perm"]).reshape(lay["rhs_shape"])
    return fr.check(a, b, jnp.reshape(y, lay["out_canon"]), seed=rng)


def _check_jax_conv(fr: Freivalds, ins: list, params: dict, y: Any, rng: np.random.Generator) -> Verdict:
    import jax.numpy as jnp

    dn = params["dimension_numbers"]
    pads = [tuple(p) for p in params["padding"]]
    if (params.get("feature_group_count", 1) != 1 or params.get("batch_group_count", 1) != 1
            or any(d != 1 for d in params.get("lhs_dilation", (1, 1))) or any(p[0] != p[1] for p in pads)
            or len(dn.lhs_spec) != 4):
        return Verdict.reject("only 2-D convolutions with symmetric padding and no grouping are supported",
                              scheme=_SCHEME)
    x = jnp.transpose(ins[0], dn.lhs_spec)
    w = jnp.transpose(ins[1], dn.rhs_spec)
    yy = jnp.transpose(y, dn.out_spec)
    return fr.check_conv2d(x, w, yy, seed=rng, stride=tuple(params["window_strides"]),
                           padding=tuple(p[0] for p in pads), dilation=tuple(params["rhs_dilation"]))
