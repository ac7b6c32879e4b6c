"""The compiled replay of a JAX function: its linear equations at one argument structure, and prepared weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vcompute.verify.freivalds import Freivalds, PreparedMatrix

__all__: list[str] = []


def has_batch_dims(params: dict) -> bool:
    (_, _), (lb, _) = params["dimension_numbers"]
    return len(lb) > 0


def canonical(x: Any, perm: tuple | None, shape: tuple) -> Any:
    """``x`` transposed by ``perm`` and reshaped to ``shape`` (numpy or JAX)."""
    if perm is not None and tuple(perm) != tuple(range(len(perm))):
        x = x.transpose(perm)
    return x.reshape(shape)


def jax_on_cpu(x: Any) -> bool:
    import jax

    try:
        return all(d.platform == "cpu" for leaf in jax.tree_util.tree_leaves(x) for d in leaf.devices())
    except Exception:
        return False


def dot_layout(lhs_shape: tuple, rhs_shape: tuple, params: dict) -> dict:
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


class JaxPlan:
    """The equations of ``fn`` at one argument structure and set of shapes, and its jitted replay."""

    def __init__(self, st: "JaxState", args: tuple, batched: str) -> None:
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
                    lay = dot_layout(tuple(ins[0].shape), tuple(ins[1].shape), params)
                    for k, v in lay.items():
                        setattr(e, k, v)
                    e.lhs_leaf, e.rhs_leaf = leaf_index(ins[0]), leaf_index(ins[1])
                    e.lhs_dtype, e.rhs_dtype = ins[0].dtype, ins[1].dtype
                    if batched == "recompute" and has_batch_dims(params):
                        e.mode = "recompute"
                eqns.append(e)
                return out

            from vcompute.workloads.jaxpr_eval import eval_jaxpr_layers

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
                    outs.append(x if shape is None else canonical(x, perm, shape))
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

            from vcompute.workloads.jaxpr_eval import eval_jaxpr_layers

            return eval_jaxpr_layers(fref(), a, on_layer), outs

        self.where = where
        self.replay = jax.jit(run)


def _same_dtype(x: Any, dtype: Any) -> bool:
    try:
        return np.dtype(x.dtype) == np.dtype(dtype)
    except Exception:
        return False


class JaxState:
    """Per-function cache: plans per argument structure and shapes, and prepared weights per argument leaf."""

    def __init__(self, fn: Callable, batched: str) -> None:
        import weakref

        try:
            self.fn = weakref.ref(fn)
        except TypeError:
            self.fn = lambda: fn
        self.plans: dict = {}
        self.static: dict = {}  # argument key -> (closed jaxpr, needs concrete values)
        self._weights: dict = {}

    def prepared_weight(self, e: _Eqn, leaf: Any, view: Callable, host: bool, fr: Freivalds) -> PreparedMatrix:
        """The prepared canonical right operand of ``e``, rebuilt only when a different array is passed."""
        import jax

        key = (e.rhs_leaf, e.rhs_perm, e.rhs_shape, host)
        hit = self._weights.get(key)
        if hit is not None and hit[0] is leaf:
            return hit[1]
        w = canonical(view(leaf), e.rhs_perm, e.rhs_shape)
        if host:
            w = np.ascontiguousarray(w)
        prepared = fr.prepare(w)
        if isinstance(leaf, jax.Array):  # immutable; a numpy leaf could change in place under a cached copy
            self._weights[key] = (leaf, prepared)
        return prepared


_STATES: Any = None


def jax_state(fn: Callable, batched: str) -> JaxState:
    import weakref

    global _STATES
    if _STATES is None:
        _STATES = weakref.WeakKeyDictionary()
    try:
        per_fn = _STATES.setdefault(fn, {})
    except TypeError:  # not weak-referenceable: no caching across calls
        return JaxState(fn, batched)
    st = per_fn.get(batched)
    if st is None:
        st = per_fn[batched] = JaxState(fn, batched)
    return st

