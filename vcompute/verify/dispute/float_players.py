"""Players of the float32 dispute game: valid results (honest, drifted) and the liars they must beat.

A float32 step has no unique honest answer, so "honest" means *within the
operator's rounding bound* (:func:`~vcompute.verify.dispute.float_trace.within`).
Strategies (:data:`FLOAT_STRATEGIES`):

- ``honest``: its own float32 trace as claimant; as challenger it adopts
  the claimant's valid steps (:func:`~vcompute.verify.dispute.float_trace.adopt`),
  so it disputes only at a step it can show out of bound;
- ``drift``: a valid trace with other bits (float64 accumulation, then a few
  elements nudged by one ulp): another honest machine. As a challenger it is
  a griefer whose every step is valid, and it must lose;
- ``lie_one``: one element of one layer off by more than its own magnitude,
  carried forward;
- ``lie_edge``: one element just outside the bound (twice the bound from the
  exact value): the sharpest lie the contract must still catch;
- ``lie_last``: every state valid except the result;
- ``skip``: one step not computed, its state a copy of the one before (a lazy
  trainer skipping an SGD step of a training transcript); square layers only;
- ``absent``: a wrong trace, then no move;
- ``bad_openings``: a wrong trace that opens the honest leaves with its own paths.

The last step: the challenger names one element of the claimant's output
and the claimant opens it. An honest challenger names an element out of
bound (it reads the claimant's states: they are delivered with a result, as
PoL checkpoints are); a liar or griefer names the first element. Every
claimant but ``absent`` opens the named element and lets the contract judge.

Example:
    >>> from vcompute.verify.dispute.float_trace import FloatNet
    >>> net = FloatNet.random(dims=(16, 16, 16), rows=2, seed=0)
    >>> x0 = net.random_input(seed=1)
    >>> make_float_player("lie_one", net, x0, seed=0).trace.leaves[-1] != make_float_player(
    ...     "honest", net, x0, seed=0).trace.leaves[-1]
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompute.verify.dispute.float_trace import (FloatNet, FloatTrace, adopt, bad_elements, float_state_leaf,
                                                 pack_float32, rows_tree)
from vcompute.verify.dispute.players import Player

__all__ = ["FLOAT_STRATEGIES", "FLOAT_LYING", "FLOAT_VALID", "FloatPlayer", "make_float_player",
           "corrupt_float_trace", "drift_trace"]

#: Every strategy a float player may follow.
FLOAT_STRATEGIES = ("honest", "drift", "lie_one", "lie_edge", "lie_last", "skip", "absent", "bad_openings")
#: The strategies whose every step is within the bound.
FLOAT_VALID = ("honest", "drift")
#: The strategies whose trace has a step out of bound.
FLOAT_LYING = tuple(s for s in FLOAT_STRATEGIES if s not in FLOAT_VALID)


def drift_trace(net: FloatNet, x0: np.ndarray, *, seed: int) -> FloatTrace:
    """A valid trace with other bits than :meth:`FloatTrace.execute`: another machine's honest pass."""
    rng = np.random.default_rng(seed)
    states, x = [], x0
    for l in range(1, net.n_layers + 1):
        y = (x.astype(np.float64) @ net.weights[l - 1].astype(np.float64)).astype(np.float32)
        for _ in range(3):
            i, j = int(rng.integers(y.shape[0])), int(rng.integers(y.shape[1]))
            y[i, j] = np.nextafter(y[i, j], np.float32(np.inf) if rng.random() < 0.5 else np.float32(-np.inf))
        if bad_elements(net, l, x, y):  # pragma: no cover - one ulp is far inside the bound
            raise ValueError(f"a one-ulp drift left the bound at layer {l}")
        states.append(y)
        x = y
    return FloatTrace(net, x0, states)


def skip_trace(net: FloatNet, x0: np.ndarray, layer: int) -> FloatTrace:
    """A trace whose state ``layer`` repeats state ``layer - 1`` (the step skipped), computed on from there.

    Raises:
        ValueError: if that layer is not square (a copy would have the wrong shape) or the copy is within bound.
    """
    states, x = [], x0
    for l in range(1, net.n_layers + 1):
        y = x.copy() if l == layer else net.layer(l, x)
        if l == layer and (y.shape != net.layer(l, x).shape or not bad_elements(net, l, x, y)):
            raise ValueError(f"skipping layer {layer} is not out of bound (a non-square or near-identity step)")
        states.append(y)
        x = y
    return FloatTrace(net, x0, states)


def corrupt_float_trace(net: FloatNet, x0: np.ndarray, layers: list[int], *, seed: int,
                        edge: bool = False) -> FloatTrace:
    """A trace out of bound at one element of each of ``layers`` (1-based), computed on from each wrong state.

    Args:
        net: the job's operators.
        x0: the job's input.
        layers: the layers to corrupt.
        seed: which element, and by how much.
        edge: put the element at twice the bound from the exact value (just outside) instead of far off.

    Raises:
        ValueError: if a layer is out of ``1..net.n_layers``.
    """
    if not layers or any(not 1 <= l <= net.n_layers for l in layers):
        raise ValueError(f"layers must be in 1..{net.n_layers}, got {layers}")
    rng = np.random.default_rng(seed)
    states, x = [], x0
    for l in range(1, net.n_layers + 1):
        y = net.layer(l, x)
        if l in layers:
            w = net.weights[l - 1]
            n, u = w.shape[0] + 2, 2.0 ** -net.u_bits
            bounds = n * u / (1 - n * u) * (np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)))
            # an edge lie needs room: an element whose bound is 0 (an exact zero product) has no edge
            cand = np.argwhere(bounds > 0) if edge else np.argwhere(np.ones_like(bounds, bool))
            i, j = (int(v) for v in cand[int(rng.integers(len(cand)))])
            sign = 1.0 if rng.random() < 0.5 else -1.0
            exact = float(x[i].astype(np.float64) @ w[:, j].astype(np.float64))
            if edge:
                y[i, j] = np.float32(exact + sign * 2 * bounds[i, j])
            else:
                y[i, j] = np.float32(exact + sign * (1 + abs(exact)) * (1 + rng.random()))
            assert (i, j) in bad_elements(net, l, x, y)
        states.append(y)
        x = y
    return FloatTrace(net, x0, states)


@dataclass
class FloatPlayer(Player):
    """One party of a float32 dispute: the bisection moves of :class:`Player`, its own last step.

    Args:
        name: its account name on the chain.
        strategy: one of :data:`FLOAT_STRATEGIES`.
        trace: the :class:`FloatTrace` it commits to.
        honest_trace: this machine's honest trace, which ``bad_openings`` opens with its own paths.
    """

    #: The contract function this player's claims use.
    commit_fn = "commit_float"

    def prepare(self, claimant: Any) -> None:
        """Before disputing ``claimant``: an honest challenger adopts the claimant's valid steps."""
        if self.strategy == "honest":
            self.trace = adopt(claimant.trace)

    def prove_step(self, hi: int) -> None:
        """A float32 step is not proved by one party: see :meth:`name_element` and :meth:`respond`."""
        return None

    def name_element(self, hi: int, claimant: Any) -> tuple[int, int] | None:
        """As challenger: the element ``(i, j)`` of ``claimant``'s state ``hi`` it names (``None``: no move).

        A valid player names an element out of bound (it reads the claimant's states);
        a liar or a griefer names the first element and hopes.
        """
        if self.strategy == "absent":
            return None
        if self.strategy == "honest":
            theirs = claimant.trace.states[hi - 1]
            if float_state_leaf(theirs) != claimant.trace.leaves[hi]:
                return (0, 0)  # the delivered state is not what it committed: it can open nothing
            bad = bad_elements(self.trace.net, hi, self.trace.state(hi - 1), theirs)
            return bad[0] if bad else None
        return (0, 0)

    def respond(self, hi: int, element: tuple[int, int]) -> dict[str, Any] | None:
        """As claimant: its ``decide_float`` arguments opening ``element`` of its state ``hi`` (``None``: no move)."""
        if self.strategy == "absent":
            return None
        net = self.trace.net
        i, j = element
        x, y, w = self.trace.state(hi - 1), self.trace.states[hi - 1], net.weights[hi - 1]
        xt, yt, wt = rows_tree(x), rows_tree(y), net.cols_tree(hi)
        i, j = min(i, x.shape[0] - 1), min(j, w.shape[1] - 1)  # an element outside the output needs no opening
        return {"rows": int(x.shape[0]), "k": int(w.shape[0]), "m": int(w.shape[1]), "u_bits": net.u_bits,
                "x_row": pack_float32(np.ascontiguousarray(x[i])), "x_root": xt.root, "x_proof": xt.proof(i),
                "w_col": pack_float32(np.ascontiguousarray(w[:, j])), "w_root": wt.root, "w_proof": wt.proof(j),
                "op_proof": net.ops_tree.proof(hi - 1),
                "c_row": pack_float32(np.ascontiguousarray(y[i])), "c_root": yt.root, "c_proof": yt.proof(i)}


def make_float_player(strategy: str, net: FloatNet, x0: np.ndarray, *, seed: int,
                      name: str | None = None) -> FloatPlayer:
    """A float player following ``strategy`` on the job ``(net, x0)``; ``seed`` picks where a liar lies.

    Raises:
        ValueError: if ``strategy`` is not one of :data:`FLOAT_STRATEGIES`.
    """
    if strategy not in FLOAT_STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(FLOAT_STRATEGIES)}; got {strategy!r}")
    honest = FloatTrace.execute(net, x0)
    rng = np.random.default_rng(seed)
    n = net.n_layers
    if strategy == "honest":
        trace = honest
    elif strategy == "drift":
        trace = drift_trace(net, x0, seed=seed)
    elif strategy == "lie_last":
        trace = corrupt_float_trace(net, x0, [n], seed=seed)
    elif strategy == "skip":
        trace = skip_trace(net, x0, int(rng.integers(1, n + 1)))
    elif strategy == "lie_edge":
        trace = corrupt_float_trace(net, x0, [int(rng.integers(1, n + 1))], seed=seed, edge=True)
    else:  # lie_one, absent, bad_openings
        trace = corrupt_float_trace(net, x0, [int(rng.integers(1, n + 1))], seed=seed)
    return FloatPlayer(name or strategy, strategy, trace, honest)
