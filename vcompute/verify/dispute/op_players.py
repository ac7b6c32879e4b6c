"""Players of the operator-level dispute game (``protocols/OperatorGame.vy``): valid results and liars.

Strategies (:data:`OP_STRATEGIES`), on a :class:`~vcompute.verify.dispute.op_trace.MLPNet` job
(or a :class:`~vcompute.verify.dispute.op_trace.ReluNet`, the ``forward`` kind's ReLU MLP;
:func:`lying_for` names those that apply to a net):

- ``honest``: its own float32 trace as claimant; as challenger it adopts the
  claimant's valid operators (:func:`~vcompute.verify.dispute.op_validity.adopt_ops`);
- ``drift``: another honest machine's trace (float64-accumulated matmuls,
  torch's GELU): every operator valid, other bits. As a challenger it is a
  griefer and must lose;
- ``lie_one``: one element of one operator's output far off, computed on from there;
- ``lie_edge``: one element at twice its bound from the exact value (the sharpest lie);
- ``lie_several``: two or three operators wrong;
- ``lie_last``: only the last operator (the last residual add) wrong;
- ``skip_gelu``: one GELU not computed (its input passed through): the lazy
  provider's nonlinearity;
- ``erf_gelu``: every GELU in the erf form instead of the job's tanh form
  (up to 2e-4 apart: another model, not another rounding);
- ``x_tamper``: an operator that must leave the residual stream alone changes one of its elements;
- ``skip_relu``: one ReLU not computed (its input passed through);
- ``leaky_relu``: every ReLU leaky (slope 0.01 below zero: another model);
- ``skip_softmax``: the softmax not computed (the logits passed through);
- ``no_mask``: attention without its causal mask (every key scored and normalised: another model);
- ``lie_attention``: one element far off at one attention operator (``qk``, ``softmax`` or ``av``);
- ``absent``: a wrong trace, then no move;
- ``bad_openings``: a wrong trace that opens the honest leaves with its own paths.

Two liars against each other (:func:`twin_liars`, strategy ``lie_twin``): both
change the same element of the same operator's output, far off in opposite
directions, and compute on from there. As a challenger a twin names an element
where the claimant is out of bound, preferring one where its own output is within
(it would win there); at the one element both got wrong the contract must name
nobody (``protocols/OperatorGame.md``, "Nobody won").

The last step: the challenger names one element of the claimant's output of
the disputed operator (an honest one reads the claimant's delivered states
and names an invalid element; a liar or griefer names the first element),
and the claimant opens it with :meth:`OpPlayer.respond`.

Example:
    >>> from vcompute.verify.dispute.op_trace import MLPNet
    >>> net = MLPNet.random(d=16, hidden=32, n_layers=2, rows=2, seed=0)
    >>> x0 = net.random_input(seed=1)
    >>> make_op_player("lie_one", net, x0, seed=0).trace.leaves[-1] != make_op_player(
    ...     "honest", net, x0, seed=0).trace.leaves[-1]
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompute.verify.dispute.float_trace import pack_float32, rows_tree
from vcompute.verify.dispute.op_block import BLOCK_KINDS
from vcompute.verify.dispute.op_block import edge_value as block_edge
from vcompute.verify.dispute.op_block import opening as block_opening
from vcompute.verify.dispute.op_trace import (AV, BIAS, GELU, LIN, LN, QK, RELU, RESID, SOFTMAX, MLPNet, Operator,
                                              OpTrace, State, apply_op, heads_of, state_leaf)
from vcompute.verify.dispute.op_validity import adopt_ops, invalid_elements, operator_valid, trace_decidable

__all__ = ["OP_STRATEGIES", "OP_VALID", "OP_LYING", "MLP_LYING", "RELU_LYING", "OpPlayer", "make_op_player",
           "lying_trace", "lying_for", "twin_liars"]

#: Every strategy an operator-level player may follow.
OP_STRATEGIES = ("honest", "drift", "lie_one", "lie_edge", "lie_several", "lie_last", "skip_gelu", "erf_gelu",
                 "x_tamper", "absent", "bad_openings", "skip_relu", "leaky_relu", "skip_softmax", "no_mask",
                 "lie_attention")
#: The strategies whose every operator is valid.
OP_VALID = ("honest", "drift")
#: The strategies with an invalid operator.
OP_LYING = tuple(s for s in OP_STRATEGIES if s not in OP_VALID)
# the strategies that need an operator of one kind in the net
_NEEDS = {"skip_gelu": GELU, "erf_gelu": GELU, "skip_relu": RELU, "leaky_relu": RELU, "skip_softmax": SOFTMAX,
          "no_mask": QK, "lie_attention": QK}
#: The lying strategies that apply to a GELU-MLP net (:class:`~vcompute.verify.dispute.op_trace.MLPNet`).
MLP_LYING = tuple(s for s in OP_LYING if _NEEDS.get(s, GELU) == GELU)
#: The lying strategies that apply to a ReLU MLP with a softmax output.
RELU_LYING = tuple(s for s in OP_LYING if _NEEDS.get(s, RELU) in (RELU, SOFTMAX))


def lying_for(net) -> tuple[str, ...]:
    """The lying strategies that apply to ``net`` (those needing a GELU, ReLU or softmax only if it has one)."""
    kinds = {net.op(p).kind for p in range(1, net.n_ops + 1)}
    return tuple(s for s in OP_LYING if s not in _NEEDS or _NEEDS[s] in kinds)


def _erf_gelu(a: np.ndarray) -> np.ndarray:
    v = np.vectorize(lambda t: 0.5 * t * (1.0 + math.erf(t / math.sqrt(2.0))), otypes=[np.float64])
    return v(a.astype(np.float64)).astype(np.float32)


def _edge_value(net: MLPNet, p: int, s_in: State, i: int, j: int, sign: float) -> np.float32:
    """A value at twice operator ``p``'s bound from the exact element ``(i, j)``."""
    op, (x, a) = net.op(p), s_in
    if op.kind in BLOCK_KINDS:
        return block_edge(op, a, i, j, sign)
    a64 = a.astype(np.float64)
    if op.kind == RELU:
        # exact: the sharpest lie is one ulp off (or the least subnormal for a zero)
        v = np.float32(max(float(a[i, j]), 0.0))
        return np.nextafter(v, np.float32(sign * np.inf)) if v != 0 else np.float32(sign * 1e-45)
    if op.kind in (QK, AV):
        h, t, d, dh, sh = heads_of(op)
        if op.kind == QK and j >= h * t:  # v copied: one ulp off
            return np.nextafter(a[i, 2 * d + j - h * t], np.float32(sign * np.inf))
        if op.kind == QK and j % t > i:  # masked: a finite score where -inf is due
            return np.float32(-3e38)
        if op.kind == QK:
            hd = j // t
            u, w = a64[i, hd * dh:(hd + 1) * dh], a64[j % t, d + hd * dh:d + (hd + 1) * dh]
            c, n = 2.0 ** -sh, dh + 2
        else:
            hd = j // dh
            u, w, c, n = a64[i, hd * t:(hd + 1) * t], a64[:, h * t + j], 1.0, t + 2
        uu = 2.0 ** -op.bits
        exact, bound = c * float(u @ w), c * n * uu / (1 - n * uu) * float(np.abs(u) @ np.abs(w))
        return np.float32(exact + sign * 2 * bound + sign * 2.0 ** -130)
    if op.kind == SOFTMAX:
        from vcompute.verify.dispute.op_step import softmax_f64

        blk, causal, span = (int(v) for v in op.param)
        if j >= span:  # a copied lane: one ulp off
            return np.nextafter(a[i, j], np.float32(sign * np.inf))
        ref, base = softmax_f64(np.repeat(a[i:i + 1, :span], i + 1, 0), blk, bool(causal))
        exact, bound = float(ref[i, j]), 2.0 ** -op.bits * float(base[i, j])
    elif op.kind == LN:
        from vcompute.verify.dispute.op_step import ln_f64

        ref, base = ln_f64(x[i:i + 1], op.param[0], op.param[1])
        exact, bound = float(ref[0, j]), 2.0 ** -op.bits * float(base[0, j])
    elif op.kind == LIN:
        w = op.param.astype(np.float64)
        exact = float(a64[i] @ w[:, j])
        n, u = op.k + 2, 2.0 ** -op.bits
        bound = n * u / (1 - n * u) * float(np.abs(a64[i]) @ np.abs(w[:, j]))
    elif op.kind == GELU:
        from vcompute.verify.dispute.op_step import gelu_f64

        exact = gelu_f64(float(a64[i, j]))
        bound = 2.0 ** -op.bits * (abs(float(a64[i, j])) + abs(exact))
    else:
        other = float(op.param[j]) if op.kind == BIAS else float(x[i, j])
        exact = float(a64[i, j]) + other
        bound = 2.0 ** -op.bits * abs(exact)
    return np.float32(exact + sign * 2 * bound + sign * 2.0 ** -130)


def _unmasked(op: Operator, a: np.ndarray) -> np.ndarray:
    """An attention operator without its causal mask: every score kept, softmax over whole blocks."""
    if op.kind == SOFTMAX:
        blk, _, span = op.param
        return apply_op(Operator(SOFTMAX, op.k, op.m, op.bits, (blk, False, span)), (a, a))[1]
    h, t, d, dh, sh = heads_of(op)
    out = apply_op(op, (a, a))[1]
    for hd in range(h):
        q, k = a[:, hd * dh:(hd + 1) * dh], a[:, d + hd * dh:d + (hd + 1) * dh]
        out[:, hd * t:(hd + 1) * t] = (np.matmul(q, np.ascontiguousarray(k.T)) * np.float32(2.0 ** -sh))
    return out


def lying_trace(net: MLPNet, x0: np.ndarray, strategy: str, *, seed: int) -> OpTrace:
    """The trace of a lying ``strategy`` (one of :data:`OP_LYING`), computed on honestly from every lie.

    Raises:
        ValueError: if ``strategy`` is not a lying one.
    """
    if strategy not in OP_LYING:
        raise ValueError(f"strategy must be one of {', '.join(OP_LYING)}; got {strategy!r}")
    if strategy not in lying_for(net):
        raise ValueError(f"strategy {strategy!r} needs an operator this net lacks; it takes {', '.join(lying_for(net))}")
    rng = np.random.default_rng(seed)
    honest = OpTrace.execute(net, x0).leaves[-1]
    # a lie of an ulp or two can round away downstream (the result is then right, and nobody
    # can dispute it): draw again, seeded, until the lie reaches the result
    for _ in range(32):
        with np.errstate(all="ignore"):  # a lie at an inf or near overflow is float32's to round
            t = _lie(net, x0, strategy, rng)
        if t.leaves[-1] != honest:
            return t
    raise ValueError(f"no {strategy} lie reached the result in 32 draws (seed {seed})")


def _lie(net: MLPNet, x0: np.ndarray, strategy: str, rng: np.random.Generator) -> OpTrace:
    n = net.n_ops
    if strategy == "lie_last":
        where = [n]
    elif strategy == "lie_several":
        where = sorted(rng.choice(np.arange(1, n + 1), size=min(n, int(rng.integers(2, 4))), replace=False).tolist())
    elif strategy in ("skip_gelu", "skip_relu", "skip_softmax"):
        where = [int(rng.choice([p for p in range(1, n + 1) if net.op(p).kind == _NEEDS[strategy]]))]
    elif strategy == "leaky_relu":
        where = [p for p in range(1, n + 1) if net.op(p).kind == RELU]
    elif strategy == "lie_attention":
        where = [int(rng.choice([p for p in range(1, n + 1) if net.op(p).kind in (QK, SOFTMAX, AV)]))]
    elif strategy == "no_mask":
        where = [p for p in range(1, n + 1) if net.op(p).kind in (QK, SOFTMAX)]
    elif strategy == "x_tamper":
        where = [int(rng.choice([p for p in range(1, n + 1) if net.op(p).kind != RESID]))]
    elif strategy == "erf_gelu":
        where = [p for p in range(1, n + 1) if net.op(p).kind == GELU]
    else:
        where = [int(rng.integers(1, n + 1))]
    s: State = (x0, x0.copy())
    states = []
    for p in range(1, n + 1):
        op = net.op(p)
        with np.errstate(all="ignore"):  # a skipped softmax carries -inf on: the lie's own problem
            out = apply_op(op, s)
        if p in where:
            x, a = out[0].copy(), out[1].copy()
            if strategy in ("skip_gelu", "skip_relu", "skip_softmax"):
                a = s[1].copy()
            elif strategy == "leaky_relu":
                a = np.where(s[1] > 0, s[1], np.float32(0.01) * s[1]).astype(np.float32)
            elif strategy == "no_mask":
                a = _unmasked(op, s[1])
            elif strategy == "erf_gelu":
                a = _erf_gelu(s[1])
            elif strategy == "x_tamper":
                x[int(rng.integers(x.shape[0])), int(rng.integers(x.shape[1]))] += np.float32(1.0)
            else:
                i, j = int(rng.integers(a.shape[0])), int(rng.integers(a.shape[1]))
                sign = 1.0 if rng.random() < 0.5 else -1.0
                if strategy == "lie_edge":
                    a[i, j] = _edge_value(net, p, s, i, j, sign)
                else:
                    a[i, j] = np.float32(a[i, j] + sign * (1 + abs(float(a[i, j]))) * (1 + rng.random()))
                if op.kind == RESID:
                    x = a.copy()
            out = (x, a)
        states.append(out)
        s = out
    return OpTrace(net, x0, states)


@dataclass
class OpPlayer:
    """One party of an operator-level dispute.

    Args:
        name: its account name on the chain.
        strategy: one of :data:`OP_STRATEGIES`.
        trace: the :class:`~vcompute.verify.dispute.op_trace.OpTrace` it commits to.
        honest_trace: this machine's honest trace, which ``bad_openings`` opens with its own paths.
    """

    name: str
    strategy: str
    trace: OpTrace
    honest_trace: OpTrace

    @property
    def n_ops(self) -> int:
        """Operators of the job."""
        return self.trace.net.n_ops

    def commitment(self) -> tuple[bytes, bytes, list[bytes]]:
        """``(root, result leaf, its Merkle path)``: what it commits or disputes with."""
        t = self.trace.tree
        return t.root, self.trace.leaves[-1], t.proof(self.n_ops)

    def will_claim(self) -> bool:
        """Whether it commits its trace as a claimant: a valid strategy only a trace the contract decides in its
        favour (:func:`~vcompute.verify.dispute.op_validity.trace_decidable`: every operator well formed, and
        where the trace holds an inf or a NaN every element within the non-finite rules); a liar always."""
        return self.strategy not in OP_VALID or trace_decidable(self.trace)

    def prepare(self, claimant: OpPlayer) -> None:
        """Before disputing ``claimant``: an honest challenger adopts the claimant's valid operators."""
        if self.strategy == "honest":
            self.trace = adopt_ops(claimant.trace)

    def reveal(self, points: list[int]) -> list[tuple[list[bytes], list[list[bytes]]]]:
        """The openings it tries at the cut ``points``, in order (empty: it does not move)."""
        if self.strategy == "absent":
            return []
        t = self.trace.tree
        paths = [t.proof(i) for i in points]
        if self.strategy == "bad_openings":
            return [([self.honest_trace.leaves[i] for i in points], paths)]
        return [([self.trace.leaves[i] for i in points], paths)]

    def name_element(self, hi: int, claimant: OpPlayer) -> tuple[int, int] | None:
        """As challenger: the element of ``claimant``'s output of operator ``hi`` it names (``None``: no move)."""
        if self.strategy == "absent":
            return None
        if self.strategy not in ("honest", "lie_twin"):
            return (0, 0)
        ct = claimant.trace
        theirs = ct.state(hi)
        if state_leaf(theirs) != ct.leaves[hi]:
            # the delivered state is not what it committed (data withheld): the challenger cannot see
            # which element is wrong and guesses (0, 0); a claimant holding its committed preimage could
            # make that element right and win, which is why data availability is assumed (A7)
            return (0, 0)
        s_in = self.trace.state(hi - 1)
        bad = invalid_elements(ct.net, hi, s_in, theirs)
        if not bad:
            return None
        # the contract checks the challenger's own element after the claimant's fails (PROVE): it names one
        # where its own value is within bound, as a liar twin does to win. Every honest float32 value is
        # within bound (C9, C10), so an honest challenger always finds one; a challenger whose own values
        # fail everywhere the claimant's do still names one, as it cannot win by staying silent
        mine = set(invalid_elements(ct.net, hi, s_in, self.trace.state(hi)))
        return next((e for e in bad if e not in mine), bad[0])

    def respond(self, hi: int, element: tuple[int, int]) -> dict[str, Any] | None:
        """As claimant: its ``decide`` arguments opening ``element`` of its output of operator ``hi``."""
        if self.strategy == "absent":
            return None
        net = self.trace.net
        op = net.op(hi)
        (x, a), (xo, ao) = self.trace.state(hi - 1), self.trace.state(hi)
        i, j = element
        i, j = min(i, a.shape[0] - 1), min(j, op.m - 1)  # an element outside the output needs no opening
        xt, at = rows_tree(x), rows_tree(a)
        f = (int(a.shape[0]), int(x.shape[1]), xt.root, at.root)
        head = {"op": (op.kind, op.k, op.m, op.bits, op.param_root()), "op_proof": net.ops_tree.proof(hi - 1)}
        if not operator_valid(op, (x, a), max_dim=net.max_dim):
            # a malformed operator: the contract settles for the challenger on the agreed input alone
            return {**head, "f": (*f, bytes(32), int(a.shape[1])), "a_row": [], "a_proof": [], "x_row": [],
                    "x_proof": [], "p_col": [], "p_proof": [], "q_row": [], "out_row": [], "out_proof": []}
        ot = rows_tree(ao)
        head["f"] = (*f, ot.root, int(a.shape[1]))
        row_of = lambda t, r: pack_float32(np.ascontiguousarray(t[r]))  # noqa: E731
        row = lambda t: row_of(t, i)  # noqa: E731
        if op.kind == AV:  # every row of a is sent; the contract rebuilds its root
            return {"fn": "decide_rows", **head, "rows": [row_of(a, r) for r in range(a.shape[0])],
                    "out_row": row(ao), "out_proof": ot.proof(i)}
        if op.kind in BLOCK_KINDS:  # the second row of a, or the parameter's row or column
            p_col, p_proof = block_opening(op, a, i, j)
        elif op.kind == QK:  # the key row j % T of a
            r = j % heads_of(op)[1]  # the contract opens it for every lane (unread for a v lane or a mask)
            p_col, p_proof = row_of(a, r), at.proof(r)
        elif op.kind == LIN:
            wt = rows_tree(np.ascontiguousarray(op.param.T))
            p_col, p_proof = pack_float32(np.ascontiguousarray(op.param[:, j])), wt.proof(j)
        elif op.kind == BIAS:
            p_col, p_proof = pack_float32(op.param), []
        elif op.kind == LN:
            p_col, p_proof = pack_float32(np.ascontiguousarray(op.param[0])), []
        else:
            p_col, p_proof = [], []
        q_row = pack_float32(np.ascontiguousarray(op.param[1])) if op.kind == LN else []
        x_row, x_proof = (row(x), xt.proof(i)) if op.kind in (RESID, LN) else ([], [])
        a_row, a_proof = ([], []) if op.kind == LN else (row(a), at.proof(i))
        return {**head, "a_row": a_row, "a_proof": a_proof, "x_row": x_row, "x_proof": x_proof,
                "p_col": p_col, "p_proof": p_proof, "q_row": q_row, "out_row": row(ao), "out_proof": ot.proof(i)}


def make_op_player(strategy: str, net: MLPNet, x0: np.ndarray, *, seed: int, name: str | None = None) -> OpPlayer:
    """A player following ``strategy`` on the job ``(net, x0)``; ``seed`` picks where a liar lies.

    Raises:
        ValueError: if ``strategy`` is not one of :data:`OP_STRATEGIES`.
    """
    if strategy not in OP_STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(OP_STRATEGIES)}; got {strategy!r}")
    honest = OpTrace.execute(net, x0)
    if strategy == "honest":
        trace = honest
    elif strategy == "drift":
        trace = OpTrace.execute(net, x0, machine="torch")
    else:
        trace = lying_trace(net, x0, strategy, seed=seed)
    return OpPlayer(name or strategy, strategy, trace, honest)


def twin_liars(net: MLPNet, x0: np.ndarray, *, seed: int, names: tuple[str, str] = ("twin_a", "twin_b"),
               at: tuple[int, int, int] | None = None) -> tuple[OpPlayer, OpPlayer]:
    """Two liars wrong at the same element: operator ``p``'s output element ``(i, j)`` moved far off, one up, one down.

    Both compute on honestly from their lie, so they agree up to state ``p - 1`` and differ from
    state ``p`` on (a draw whose lie does not reach both results, or leaves them equal, is drawn
    again, seeded). At operator ``p`` each has exactly one element out of bound, the same one.

    Args:
        net: the job's operators.
        x0: the job's input.
        seed: picks ``(p, i, j)`` and how far off.
        names: the two players' account names.
        at: ``(p, i, j)`` to lie at instead of a drawn place (one try).

    Raises:
        ValueError: if no draw in 32 (or the one at ``at``) reaches both results.
    """
    rng = np.random.default_rng(seed)
    honest = OpTrace.execute(net, x0)
    n = net.n_ops
    for _ in range(1 if at else 32):
        p = at[0] if at else int(rng.integers(1, n + 1))
        i, j = at[1:] if at else (int(rng.integers(x0.shape[0])), int(rng.integers(net.op(p).m)))
        r = 1.0 + rng.random()
        traces = []
        for sign in (1.0, -1.0):
            states = list(honest.states[:p - 1])
            s: State = honest.state(p - 1)
            for q in range(p, n + 1):
                op = net.op(q)
                with np.errstate(all="ignore"):
                    out = apply_op(op, s)
                if q == p:
                    x, a = out[0].copy(), out[1].copy()
                    v = float(a[i, j])
                    # far off either way (a masked score, -inf: a finite one instead)
                    a[i, j] = np.float32(v + sign * (1 + abs(v)) * r) if math.isfinite(v) else np.float32(sign)
                    out = (a.copy(), a) if op.kind == RESID else (x, a)
                states.append(out)
                s = out
            traces.append(OpTrace(net, x0, states))
        ends = [t.leaves[-1] for t in traces]
        if honest.leaves[-1] not in ends and ends[0] != ends[1]:
            a_, b_ = (OpPlayer(name, "lie_twin", t, honest) for name, t in zip(names, traces))
            return a_, b_
    raise ValueError(f"no twin lie reached both results (seed {seed}, at {at})")
