"""Evaluate a JAX function through its jaxpr, handing every linear equation to a callback.

Providers record their trace with it and the whole-model verifier replays
with it, so both see the same equations in the same order. Control flow is
evaluated with its real semantics, so that every linear equation an honest
evaluation performs is handed over once per time it runs:

- call-like primitives (``jit``/``pjit``, ``closed_call``, ``core_call``,
  ``custom_jvp_call``, ``custom_vjp_call``, ``remat``/``checkpoint``) are
  recursed into (their primal computation; derivative rules play no part
  in a forward evaluation);
- ``scan`` (and ``fori_loop`` with static bounds, which lowers to it) runs
  its body once per iteration, in the scan's direction;
- ``while`` (``fori_loop`` with traced bounds, ``while_loop``) runs its
  condition and body until the condition is false, on concrete values;
- ``cond`` (``lax.cond``, ``lax.switch``) runs the branch its index selects
  (XLA's rule: an index out of range selects the last branch).

A control-flow primitive with no linear equation inside is evaluated as one
primitive (it is glue). Any other primitive that holds a jaxpr with a linear
equation inside (``shard_map``, ``custom_transpose``, a new primitive) is
refused with :class:`UnsupportedModelError` before anything is evaluated:
its semantics are not modelled, so its linear equations could be neither
handed over nor silently skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["LAYER_PRIMITIVES", "CALL_PRIMITIVES", "UnsupportedModelError", "eval_jaxpr_layers", "jaxpr_of",
           "layer_equations", "needs_concrete_values"]

#: jaxpr primitives treated as linear layers.
LAYER_PRIMITIVES = ("dot_general", "conv_general_dilated")
#: Primitives whose single nested jaxpr is their (primal) semantics: evaluated by recursing into it.
CALL_PRIMITIVES = ("jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
                   "custom_vjp_call_jaxpr", "remat", "remat2", "checkpoint")
_CONTROL = ("scan", "while", "cond")


class UnsupportedModelError(ValueError):
    """The function uses a construct the layer-by-layer evaluation does not model (a caller's error)."""


def jaxpr_of(fn: Callable, args: tuple) -> Any:
    """The closed jaxpr of ``fn(*args)``, after refusing constructs the evaluation does not model.

    Raises:
        UnsupportedModelError: a primitive other than the call-like and control-flow ones holds a
            jaxpr with a linear equation inside.
    """
    import jax

    closed = jax.make_jaxpr(fn)(*args)
    _refuse_unmodelled(closed.jaxpr)
    return closed


def _sub_jaxprs(params: dict) -> Iterator[Any]:
    """Every (open) jaxpr held in an equation's parameters."""
    from jax.extend.core import ClosedJaxpr, Jaxpr

    for v in params.values():
        for item in (v if isinstance(v, (tuple, list)) else (v,)):
            if isinstance(item, ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, Jaxpr):
                yield item


_HAS_LAYERS: dict = {}


def _has_layers(jaxpr: Any) -> bool:
    key = id(jaxpr)
    hit = _HAS_LAYERS.get(key)
    if hit is not None and hit[0] is jaxpr:
        return hit[1]
    found = any(e.primitive.name in LAYER_PRIMITIVES or any(_has_layers(s) for s in _sub_jaxprs(e.params))
                for e in jaxpr.eqns)
    if len(_HAS_LAYERS) > 4096:
        _HAS_LAYERS.clear()
    _HAS_LAYERS[key] = (jaxpr, found)  # the jaxpr is kept, so its id cannot be reused while cached
    return found


def _refuse_unmodelled(jaxpr: Any) -> None:
    for e in jaxpr.eqns:
        subs = list(_sub_jaxprs(e.params))
        name = e.primitive.name
        modelled = name in _CONTROL or (name in CALL_PRIMITIVES and _call_body(e.params) is not None)
        if subs and not modelled and any(_has_layers(s) for s in subs):
            raise UnsupportedModelError(
                f"the function uses the primitive {name!r}, which holds linear equations the layer-by-layer "
                f"evaluation does not model; supported around linear layers: {', '.join(CALL_PRIMITIVES + _CONTROL)}. "
                "Rewrite that part without it, or verify the function by replication instead")
        for s in subs:
            _refuse_unmodelled(s)


def _call_body(params: dict) -> Any:
    """The jaxpr a call-like primitive evaluates (its primal computation), or None."""
    for k in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        if params.get(k) is not None:
            return params[k]
    return None


def layer_equations(jaxpr: Any) -> Iterator[Any]:
    """Every linear equation in ``jaxpr`` and the jaxprs nested in it (each once, however often it runs)."""
    for e in jaxpr.eqns:
        if e.primitive.name in LAYER_PRIMITIVES:
            yield e
        for s in _sub_jaxprs(e.params):
            yield from layer_equations(s)


def needs_concrete_values(jaxpr: Any) -> bool:
    """Whether evaluating ``jaxpr`` must look at values (a ``while`` or ``cond`` with linear equations inside)."""
    for e in jaxpr.eqns:
        if e.primitive.name in ("while", "cond") and any(_has_layers(s) for s in _sub_jaxprs(e.params)):
            return True
        if any(needs_concrete_values(s) for s in _sub_jaxprs(e.params)):
            return True
    return False


def eval_jaxpr_layers(fn: Callable, args: tuple, on_layer: Callable, *, closed: Any = None) -> Any:
    """Evaluate ``fn(*args)`` through its jaxpr, handing each linear equation to ``on_layer``.

    Args:
        fn: a JAX-traceable function.
        args: its arguments.
        on_layer: ``(index, primitive_name, invals, params, compute) -> output``;
            ``compute()`` evaluates the equation honestly. Indices count
            linear equations in evaluation order: nested calls included, and
            an equation inside a loop once per iteration.
        closed: the closed jaxpr of ``fn`` at ``args`` if already made (from :func:`jaxpr_of`).

    Returns:
        ``fn``'s output (a single array, or a list for several outputs).

    Raises:
        UnsupportedModelError: for constructs the evaluation does not model (see the module docstring).
    """
    import jax
    import jax.numpy as jnp
    from jax.extend.core import ClosedJaxpr, Literal

    if closed is None:
        closed = jaxpr_of(fn, args)
    counter = [0]

    def bind(eqn: Any, ins: list) -> Any:
        bp = eqn.primitive.get_bind_params(eqn.params)
        if isinstance(bp, tuple):  # jax < 0.7 returned (subfuns, params)
            return eqn.primitive.bind(*bp[0], *ins, **bp[1])
        with eqn.ctx.manager:
            return eqn.primitive.bind(*ins, **bp)

    def sub(j: Any) -> tuple[Any, list]:
        return (j.jaxpr, list(j.consts)) if isinstance(j, ClosedJaxpr) else (j, [])

    def call(j: Any, ins: list) -> list:
        jaxpr, consts = sub(j)
        return run(jaxpr, consts, ins)

    def scan(eqn: Any, ins: list) -> list:
        p = eqn.params
        nc, ncar, length = p["num_consts"], p["num_carry"], p["length"]
        consts, carry, xs = ins[:nc], ins[nc:nc + ncar], ins[nc + ncar:]
        per: list = [None] * length
        for i in (range(length - 1, -1, -1) if p["reverse"] else range(length)):
            outs = call(p["jaxpr"], [*consts, *carry, *(x[i] for x in xs)])
            carry, per[i] = outs[:ncar], outs[ncar:]
        ys = [jnp.stack([per[i][j] for i in range(length)]) if length else jnp.zeros(v.aval.shape, v.aval.dtype)
              for j, v in enumerate(eqn.outvars[ncar:])]
        return [*carry, *ys]

    def while_(eqn: Any, ins: list) -> list:
        p = eqn.params
        cn, bn = p["cond_nconsts"], p["body_nconsts"]
        cc, bc, carry = ins[:cn], ins[cn:cn + bn], ins[cn + bn:]
        while bool(call(p["cond_jaxpr"], [*cc, *carry])[0]):
            carry = call(p["body_jaxpr"], [*bc, *carry])
        return carry

    def cond(eqn: Any, ins: list) -> list:
        branches = eqn.params["branches"]
        i = int(ins[0])
        return call(branches[i if 0 <= i < len(branches) else len(branches) - 1], list(ins[1:]))

    def run(jaxpr: Any, consts: Any, invals: list) -> list:
        env: dict = {}

        def read(v: Any) -> Any:
            return v.val if isinstance(v, Literal) else env[v]

        for v, x in zip(jaxpr.constvars, consts):
            env[v] = x
        for v, x in zip(jaxpr.invars, invals):
            env[v] = x
        for eqn in jaxpr.eqns:
            ins = [read(v) for v in eqn.invars]
            name = eqn.primitive.name
            if name in LAYER_PRIMITIVES:
                outs = [on_layer(counter[0], name, ins, eqn.params, lambda eqn=eqn, ins=ins: bind(eqn, ins))]
                counter[0] += 1
            elif name in CALL_PRIMITIVES and _call_body(eqn.params) is not None:
                outs = call(_call_body(eqn.params), ins)
            elif name in _CONTROL and any(_has_layers(s) for s in _sub_jaxprs(eqn.params)):
                outs = {"scan": scan, "while": while_, "cond": cond}[name](eqn, ins)
            else:
                outs = bind(eqn, ins)
                if not eqn.primitive.multiple_results:
                    outs = [outs]
            for v, x in zip(eqn.outvars, outs):
                if type(v).__name__ != "DropVar":
                    env[v] = x
        return [read(v) for v in jaxpr.outvars]

    flat = jax.tree_util.tree_leaves(args)
    outs = run(closed.jaxpr, closed.consts, flat)
    return outs[0] if len(outs) == 1 else outs
