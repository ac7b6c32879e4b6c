"""Players of the dispute game: an honest party and the adversaries it must beat.

A player owns a trace (honest or not) and answers the game's requests as
plain data: what to commit, which leaf to open at a midpoint, what to
submit for the last step. It never touches a chain: a referee
(:func:`vcompute.ledger.dispute_client.play`) sends its answers to the
deployed contract, and the contract, not the player, decides who wins.

Strategies (:data:`STRATEGIES`):

- ``honest``: the honest trace, every move on time;
- ``lie_one``: one accumulator entry of one layer changed, requantised and
  carried forward consistently (a layer skipped or computed wrongly);
- ``lie_several``: the same at several layers;
- ``lie_last``: every state honest except the final result;
- ``lie_output``: an honest accumulator with a wrong requantised output at
  one layer (the requantisation check, not Freivalds, must catch it);
- ``absent``: a wrong trace, then no move at all (it loses on timeout);
- ``bad_openings``: a wrong trace that, at every cut point, opens the
  *honest* leaves with its own paths (inconsistent Merkle openings), hoping
  the contract believes the agreement, and gives up when refused.

As challenger, any lying strategy is a griefer: it disputes an honest claim.

Example:
    >>> from vcompute.verify.dispute.trace import QuantNet
    >>> net = QuantNet.random(dims=(32, 32, 32, 32), rows=2, seed=0)
    >>> x0 = net.random_input(seed=1)
    >>> honest, liar = make_player("honest", net, x0, seed=0), make_player("lie_one", net, x0, seed=0)
    >>> honest.trace.leaves[-1] != liar.trace.leaves[-1]
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompute.verify.dispute.trace import QuantNet, Trace, pack_int8, pack_int32, requantise

__all__ = ["STRATEGIES", "LYING", "Player", "make_player", "corrupt_trace"]

#: Every strategy a player may follow.
STRATEGIES = ("honest", "lie_one", "lie_several", "lie_last", "lie_output", "absent", "bad_openings")
#: The strategies whose trace is wrong.
LYING = tuple(s for s in STRATEGIES if s != "honest")


def corrupt_trace(net: QuantNet, x0: np.ndarray, layers: list[int], *, seed: int,
                  output_only: bool = False) -> Trace:
    """A trace wrong at ``layers`` (1-based), computed honestly from each wrong state onwards.

    Args:
        net: the job's operators.
        x0: the job's input.
        layers: the layers to corrupt.
        seed: where in each layer the entry changes, and by how much.
        output_only: keep the honest accumulator and change the requantised output instead.

    Raises:
        ValueError: if a layer is out of ``1..net.n_layers``.
    """
    if not layers or any(not 1 <= l <= net.n_layers for l in layers):
        raise ValueError(f"layers must be in 1..{net.n_layers}, got {layers}")
    honest_result = Trace.execute(net, x0).leaves[-1]
    rng = np.random.default_rng(seed)
    # A small change can be absorbed downstream (the next requantisation rounds it away, or a
    # clip saturates), leaving the result right and nothing to dispute: a liar wants a wrong
    # result, so it tries other entries until the result moves.
    for _ in range(64):
        trace = _corrupt_once(net, x0, layers, rng, output_only)
        if trace.leaves[-1] != honest_result:
            return trace
    raise ValueError(f"no corruption of layers {layers} changed the result in 64 tries")  # pragma: no cover


def _corrupt_once(net: QuantNet, x0: np.ndarray, layers: list[int], rng: np.random.Generator,
                  output_only: bool) -> Trace:
    states, x = [], x0
    for l in range(1, net.n_layers + 1):
        z, y = net.layer(l, x)
        if l in layers:
            i, j = int(rng.integers(z.shape[0])), int(rng.integers(z.shape[1]))
            # the requantised value moves by 1..64 towards the inside of the int8 range
            target = int(y[i, j]) + (-1 if y[i, j] > 0 else 1) * int(rng.integers(1, 65))
            if output_only:
                y = y.copy()
                y[i, j] = np.int8(target)
            else:
                sh = net.shifts[l - 1]
                z = z.copy()
                z[i, j] = np.int32(target * (1 << sh) + int(rng.integers(0, 1 << sh)))
                y = requantise(z, sh)
        states.append((z, y))
        x = y
    return Trace(net, x0, states)


@dataclass
class Player:
    """One party of a dispute.

    Args:
        name: its account name on the chain.
        strategy: one of :data:`STRATEGIES`.
        trace: the trace it commits to.
        honest_trace: the honest trace, which ``bad_openings`` opens with its own paths.
    """

    name: str
    strategy: str
    trace: Trace
    honest_trace: Trace
    #: The contract function this player's claims use.
    commit_fn = "commit"

    @property
    def honest(self) -> bool:
        """Whether this player's trace is the honest one and it plays every move."""
        return self.strategy == "honest"

    @property
    def n_layers(self) -> int:
        """Layers of the job."""
        return self.trace.net.n_layers

    def commitment(self) -> tuple[bytes, bytes, list[bytes]]:
        """``(root, result leaf, its Merkle path)``: what it commits or disputes with."""
        t = self.trace.tree
        return t.root, self.trace.leaves[-1], t.proof(self.n_layers)

    def prepare(self, claimant: Player) -> None:
        """Before disputing ``claimant``: nothing to do, int8 states are unique (float players adopt)."""

    def reveal(self, points: list[int]) -> list[tuple[list[bytes], list[list[bytes]]]]:
        """The openings it tries at the cut ``points``, in order: ``(leaves, paths)`` each (empty: it does not move)."""
        t = self.trace.tree
        paths = [t.proof(i) for i in points]
        if self.strategy == "absent":
            return []
        if self.strategy == "bad_openings":
            # the honest leaves with its own paths: refused, and it has nothing better to send
            return [([self.honest_trace.leaves[i] for i in points], paths)]
        return [([self.trace.leaves[i] for i in points], paths)]

    def prove_step(self, hi: int) -> dict[str, Any] | None:
        """Its arguments for ``decide`` on layer ``hi`` (``None`` if it does not move)."""
        if self.strategy == "absent":
            return None
        net = self.trace.net
        z_in, x = self.trace.state_in(hi)
        z, y = self.trace.states[hi - 1]
        w = net.weights[hi - 1]
        return {"rows": int(x.shape[0]), "k": int(w.shape[0]), "m": int(w.shape[1]), "sh": net.shifts[hi - 1],
                "x": pack_int8(x), "w": pack_int8(w), "z": pack_int32(z), "y": pack_int8(y),
                "z_in": z_in, "op_proof": net.ops_tree.proof(hi - 1)}


def make_player(strategy: str, net: QuantNet, x0: np.ndarray, *, seed: int, name: str | None = None) -> Player:
    """A player following ``strategy`` on the job ``(net, x0)``; ``seed`` picks where a liar lies.

    Raises:
        ValueError: if ``strategy`` is not one of :data:`STRATEGIES`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    honest = Trace.execute(net, x0)
    rng = np.random.default_rng(seed)
    n = net.n_layers
    if strategy == "honest":
        trace = honest
    elif strategy == "lie_last":
        trace = corrupt_trace(net, x0, [n], seed=seed)
    elif strategy == "lie_several":
        k = min(n, int(rng.integers(2, 4)))
        trace = corrupt_trace(net, x0, sorted(rng.choice(np.arange(1, n + 1), size=k, replace=False).tolist()),
                              seed=seed)
    elif strategy == "lie_output":
        trace = corrupt_trace(net, x0, [int(rng.integers(1, n + 1))], seed=seed, output_only=True)
    else:  # lie_one, absent, bad_openings: one wrong layer
        trace = corrupt_trace(net, x0, [int(rng.integers(1, n + 1))], seed=seed)
    return Player(name or strategy, strategy, trace, honest)
