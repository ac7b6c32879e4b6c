"""Whole-model verification of a JAX function: each linear equation of its jaxpr checked with Freivalds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vcompute.core.arrays import backend_of, dtype_name
from vcompute.core.types import Verdict
from vcompute.verify.freivalds import Freivalds
from vcompute.verify.freivalds.exact import INT_INPUT_DTYPES, INT_OUTPUT_DTYPES
from vcompute.verify.freivalds.model._jax_plan import (JaxPlan, canonical, dot_layout, has_batch_dims, jax_on_cpu,
                                             jax_state)
from vcompute.verify.freivalds.model._output import (final_output_problem, layer_reject, layer_verifier, one_of, plain_list,
                                           record, rng_of, summarise)
from vcompute.verify.screening import exact_array_type, memory_span
from vcompute.verify.freivalds.tolerance import FLOAT_DTYPES

__all__ = ["JaxModelVerifier", "verify_jax_model", "BATCHED_MODES"]

#: How a JAX verifier treats ``dot_general`` equations with batch dimensions.
BATCHED_MODES = ("recompute", "check")

_CLAIM_DTYPES = FLOAT_DTYPES + INT_INPUT_DTYPES + INT_OUTPUT_DTYPES


class _TraceExhausted(Exception):
    pass


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

    Control flow is replayed with its real semantics
    (:mod:`vcompute.workloads.jaxpr_eval`): a ``scan`` or ``fori_loop`` has its
    linear equations checked in every iteration, a ``while_loop`` runs until
    its condition (on checked values) is false, a ``cond``/``switch`` checks
    the branch it takes, and ``jit``, ``custom_jvp``/``custom_vjp`` and
    ``checkpoint`` calls are recursed into. A trace with fewer outputs than
    the evaluation performs linear equations is rejected (a provider that ran
    a loop body fewer times). Refused up front, with a ``ValueError`` on the
    first :meth:`verify` call for that argument structure (the function is the
    caller's, not the provider's evidence): any other primitive holding a
    linear equation (``shard_map``, ``custom_transpose``...), linear
    equations on dtypes the check does not support or of mixed dtypes, and
    convolutions that are not 2-D, are transposed (``lhs_dilation``), use
    ``batch_group_count`` or negative padding. Grouped and asymmetrically
    padded convolutions are checked.

    The replay is one jitted program per argument structure and shapes that
    takes the claimed layer outputs as inputs and returns the layer inputs in
    the 2-D (or batched 3-D) form the checks use; a function whose ``while``
    or ``cond`` holds linear equations is replayed eagerly (its control flow
    depends on values). A ``dot_general`` operand that is a JAX array
    argument leaf (a weight) is prepared for Freivalds once, and reused for as
    long as the same (immutable) array object is passed; numpy leaves, which
    can change in place, are prepared on every call. On CPU the checks run
    on numpy views of the JAX buffers (no copies).

    Args:
        fn: the model function, ``fn(*args)``; its arguments (parameters
            included) are trusted.
        verifier: the Freivalds instance to use per layer (default ``Freivalds(rounds=2)``).
        batched: ``"recompute"`` or ``"check"`` (see above).

    Raises:
        TypeError: ``fn`` is not callable or ``verifier`` not a :class:`Freivalds`.
        ValueError: for an unknown ``batched`` mode.

    Example:
        >>> from vcompute.workloads.models import jax_mlp, jax_provider
        >>> f, p = jax_mlp((8, 16, 4), seed=0); x = np.ones((5, 8), np.float32)
        >>> out, trace = jax_provider(f, p, x)
        >>> JaxModelVerifier(f).verify((p, x), out, trace, seed=1).accepted
        True
    """

    def __init__(self, fn: Callable, verifier: Freivalds | None = None, *, batched: str = "recompute") -> None:
        if not callable(fn):
            raise TypeError(f"fn must be a callable JAX function, got {type(fn).__name__}")
        self.fn = fn
        self.verifier = layer_verifier(verifier)
        self.batched = one_of("batched", batched, BATCHED_MODES)
        self._state = jax_state(fn, batched)

    def verify(self, args: tuple, output: Any, trace: Any, *, seed: int | np.random.Generator,
               inference_s: float | None = None) -> Verdict:
        """Check a claimed evaluation ``fn(*args)``.

        Args:
            args: the function's positional arguments as a tuple (parameters included, trusted).
            output: the claimed output.
            trace: the list of every linear equation's output, in evaluation order
                (an equation in a loop once per iteration).
            seed: int or generator, drawn after the claim is fixed.
            inference_s: seconds of one plain evaluation, to report the cost ratio.

        Returns:
            A verdict with per-layer details (layers named ``dot_general[i]``,
            counting every ``dot_general`` in evaluation order; ``details['recomputed']``
            names the batched ones the replay recomputed; ``details['replay']`` is
            ``"compiled"``, or ``"eager"`` when a malformed trace made the verifier
            replay equation by equation to name the bad one, or the function's
            control flow depends on values). Never raises on a malformed trace or output.

        Raises:
            TypeError: ``args`` is not a tuple, or ``seed`` not an int or Generator.
            ValueError: the function uses a construct the verifier refuses (see the class docstring).
        """
        if not isinstance(args, tuple):
            raise TypeError(f"args must be a tuple of fn's positional arguments, e.g. (params, x); "
                            f"got {type(args).__name__}")
        rng = rng_of(seed)
        t0 = time.perf_counter()
        fr = self.verifier
        key, closed, concrete = self._static(args)
        trace = plain_list(trace)  # None unless a list or tuple (by type, not by a __class__ it claims)
        if trace is None:
            return Verdict.reject("the trace must be a list of linear-equation outputs", scheme="freivalds-model")
        results: list[dict] = []
        flops = [0.0]

        fast = None if concrete else self._replay(key, args, trace)
        if fast is not None:  # well-formed trace: the glue ran as one compiled program; check each layer
            ours, checks, recomputed = fast
            for label, a, b, c, check in checks:
                record(results, label, check(fr, a, b, c, rng), flops)
            return summarise(results, final_output_problem(output, ours), t0, inference_s, flops[0],
                             {"recomputed": recomputed, "replay": "compiled"})

        recomputed: list[str] = []

        def on_layer(i: int, name: str, ins: list, params: dict, compute: Callable) -> Any:
            label = f"{name}[{i}]"
            if name == "dot_general" and self.batched == "recompute" and has_batch_dims(params):
                recomputed.append(label)
                return compute()
            if i >= len(trace):  # stop here: a provider-steered loop must not run the verifier forever
                raise _TraceExhausted(label)
            y = _claim(trace[i])
            if not isinstance(y, str) and dtype_name(y) != _out_dtype(ins, params):
                y = f"the claimed output has dtype {dtype_name(y)}; the equation computes {_out_dtype(ins, params)}"
            if isinstance(y, str):
                v = layer_reject(y)
            elif name == "dot_general":
                v = _check_dot_general(fr, ins, params, y, rng)
            else:
                v = _check_jax_conv(fr, ins, params, y, rng)
            record(results, label, v, flops)
            return y if v.accepted else compute()

        from vcompute.workloads.jaxpr_eval import eval_jaxpr_layers

        try:
            ours = eval_jaxpr_layers(self.fn, args, on_layer, closed=closed)
        except _TraceExhausted as e:
            return summarise(results, f"the trace has {len(trace)} outputs but the evaluation performs more "
                             f"linear equations (the first without one: {e})", t0, inference_s, flops[0],
                             {"recomputed": recomputed, "replay": "eager"})
        problem = final_output_problem(output, ours)
        n_eqs = len(results) + len(recomputed)
        if problem is None and len(trace) > n_eqs:
            problem = f"the trace has {len(trace)} outputs but the evaluation performs {n_eqs} linear equations"
        return summarise(results, problem, t0, inference_s, flops[0], {"recomputed": recomputed, "replay": "eager"})

    def _static(self, args: tuple) -> tuple[Any, Any, bool]:
        """The argument key, the closed jaxpr and whether the replay needs concrete values (refusing what it must)."""
        import jax

        from vcompute.workloads.jaxpr_eval import jaxpr_of, layer_equations, needs_concrete_values

        leaves, treedef = jax.tree_util.tree_flatten(args)
        # everything the jaxpr and the plan's leaf positions depend on: the argument structure (a function
        # may branch on it), each leaf's kind, shape, dtype and weak type, and the x64 mode
        key = (treedef, bool(jax.config.jax_enable_x64),
               tuple((type(x), tuple(getattr(x, "shape", ())), str(getattr(x, "dtype", "")),
                      bool(getattr(x, "weak_type", False))) for x in leaves))
        hit = self._state.static.get(key)
        if hit is None:
            closed = jaxpr_of(self.fn, args)
            eqns = list(layer_equations(closed.jaxpr))
            if not eqns:
                raise ValueError("fn has no dot_general or conv_general_dilated to check; verify it by "
                                 "replication instead")
            for e in eqns:
                _refuse_unsupported(e)
            hit = self._state.static[key] = (closed, needs_concrete_values(closed.jaxpr))
        return key, hit[0], hit[1]

    def _replay(self, key: Any, args: tuple, trace: list) -> tuple | None:
        """Run the compiled replay; None if the trace is malformed (the eager replay then names the problem).

        Returns ``(output, [(label, a, b, c, check)], [recomputed labels])``.
        """
        import jax

        st = self._state
        try:
            leaves = jax.tree_util.tree_leaves(args)
            plan = st.plans.get(key)
            if plan is None:
                plan = st.plans[key] = JaxPlan(st, args, self.batched)
            if len(trace) != len(plan.eqns):
                return None
            for y, e in zip(trace, plan.eqns):
                if backend_of(y) != "jax" or tuple(y.shape) != e.out_shape or y.dtype != e.out_dtype:
                    return None
            ours, outs = plan.replay(tuple(args), [trace[i] for i in plan.checked])
            host = jax_on_cpu(ours)
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
                a = view(a_out) if e.lhs_leaf is None else canonical(view(leaves[e.lhs_leaf]), e.lhs_perm,
                                                                     e.lhs_shape)
                if e.rhs_leaf is None:
                    b = view(b_out)
                else:
                    b = st.prepared_weight(e, leaves[e.rhs_leaf], view, host, self.verifier)
                c = canonical(view(trace[i]), None, e.out_canon)
                checks.append((e.label, a, b, c, _dot_check))
        except Exception:  # any trouble: the eager replay decides, and names the bad layer (never a verdict here)
            return None
        return ours, checks, [plan.eqns[i].label for i in plan.recomputed]


def _refuse_unsupported(eqn: Any) -> None:
    """Raise ValueError for a linear equation the check does not support (the caller's function)."""
    name = eqn.primitive.name
    dts = [np.dtype(v.aval.dtype).name if "bfloat16" not in str(v.aval.dtype) else "bfloat16"
           for v in eqn.invars[:2]]
    if dts[0] != dts[1]:
        raise ValueError(f"a {name} multiplies {dts[0]} by {dts[1]}; the check needs one dtype: cast both "
                         "operands first")
    allowed = FLOAT_DTYPES + (INT_INPUT_DTYPES if name == "dot_general" else ())
    if dts[0] not in allowed:
        raise ValueError(f"a {name} on {dts[0]} operands cannot be checked; supported: {', '.join(allowed)}")
    if name == "conv_general_dilated":
        p = eqn.params
        dn = p["dimension_numbers"]
        why = ("it is not 2-D" if len(dn.lhs_spec) != 4 else
               "it is transposed (lhs_dilation)" if any(d != 1 for d in p.get("lhs_dilation", ()) or ()) else
               "it uses batch_group_count" if p.get("batch_group_count", 1) != 1 else
               "it has negative padding" if any(int(v) < 0 for pad in p["padding"] for v in pad) else None)
        if why is not None:
            raise ValueError(f"a conv_general_dilated cannot be checked: {why}; supported are 2-D convolutions "
                             "with any stride, dilation, padding and feature groups")


def _claim(y: Any) -> Any:
    """One claimed layer output as a JAX array, or why it is not one (provider evidence)."""
    import jax.numpy as jnp

    b = exact_array_type(y)  # exact types only: a subclass (of jax.Array too) answers reads with its own code
    if b is None:
        return f"the trace entry is a {type(y).__name__}, not an exact array"
    if b not in ("jax", "numpy"):
        return f"the trace entry is a {b} array; a JAX function's trace holds JAX (or numpy) arrays"
    if dtype_name(y) not in _CLAIM_DTYPES:
        return f"the trace entry has dtype {dtype_name(y)}"
    if b == "numpy":  # copied to the device below: the copy may cost only the memory the claim really holds
        _, problem = memory_span(y)
        if problem is not None:
            return f"the trace entry {problem}"
    out = jnp.asarray(np.asarray(y) if b == "numpy" else y)
    if dtype_name(out) != dtype_name(y):  # e.g. float64 without x64: JAX would round the claim into another one
        return f"the trace entry has dtype {dtype_name(y)}, which JAX turns into {dtype_name(out)}"
    return out


def _out_dtype(ins: list, params: dict) -> str:
    """The dtype a linear equation returns: its ``preferred_element_type``, else its operands' (one dtype)."""
    import jax

    pet = params.get("preferred_element_type")  # a numpy float64 operand computes in float32 without x64
    return str(np.dtype(jax.dtypes.canonicalize_dtype(ins[0].dtype if pet is None else pet)))


def verify_jax_model(fn: Callable, args: tuple, output: Any, trace: Any, *, seed: int | np.random.Generator,
                     verifier: Freivalds | None = None, inference_s: float | None = None,
                     batched: str = "recompute") -> Verdict:
    """Verify every linear equation of a JAX function's evaluation (see :class:`JaxModelVerifier`).

    The compiled replay and prepared weights are cached per ``fn`` (weakly) and
    argument structure and shapes, so repeated calls cost what :meth:`JaxModelVerifier.verify` does.

    Args:
        fn: the model function; args: its arguments as a tuple (parameters included, trusted).
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


def _dot_check(fr: Freivalds, a: Any, b: Any, c: Any, rng: np.random.Generator) -> Verdict:
    return fr.check(a, b, c, seed=rng)


def _conv_check(params: dict) -> Callable:
    return lambda fr, x, w, y, rng: _check_jax_conv(fr, [x, w], params, y, rng)


def _check_dot_general(fr: Freivalds, ins: list, params: dict, y: Any, rng: np.random.Generator) -> Verdict:
    import jax.numpy as jnp

    lhs, rhs = ins
    lay = dot_layout(tuple(lhs.shape), tuple(rhs.shape), params)
    (lc, rc), (lb, rb) = params["dimension_numbers"]
    lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
    want = tuple(lhs.shape[d] for d in lb) + tuple(lhs.shape[d] for d in lf) + tuple(rhs.shape[d] for d in rf)
    if tuple(y.shape) != want:
        return layer_reject(f"claimed output has shape {tuple(y.shape)}, expected {want}")
    a = jnp.transpose(lhs, lay["lhs_perm"]).reshape(lay["lhs_shape"])
    b = jnp.transpose(rhs, lay["rhs_perm"]).reshape(lay["rhs_shape"])
    return fr.check(a, b, jnp.reshape(y, lay["out_canon"]), seed=rng)


def _check_jax_conv(fr: Freivalds, ins: list, params: dict, y: Any, rng: np.random.Generator) -> Verdict:
    import jax.numpy as jnp

    dn = params["dimension_numbers"]
    if len(y.shape) != 4:
        return layer_reject(f"claimed conv output has shape {tuple(y.shape)}, not 4-D")
    pads = [tuple(int(v) for v in p) for p in params["padding"]]
    x = jnp.transpose(ins[0], dn.lhs_spec)
    w = jnp.transpose(ins[1], dn.rhs_spec)
    yy = jnp.transpose(y, dn.out_spec)
    if any(lo != hi for lo, hi in pads):  # asymmetric ('SAME' with an even kernel): pad first, as XLA does
        x = jnp.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
        pad: Any = 0
    else:
        pad = (pads[0][0], pads[1][0])
    return fr.check_conv2d(x, w, yy, seed=rng, stride=tuple(params["window_strides"]), padding=pad,
                           dilation=tuple(params["rhs_dilation"]), groups=int(params.get("feature_group_count", 1)))
