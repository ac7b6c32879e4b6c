"""How the market plays a job kind's disputes: one adapter a kind, named by the kind's ``dispute`` hook.

A job kind (:class:`vcompute.workloads.kinds.JobKind`) declares where its
dispute adapter lives as a ``"module:attr"`` path in its ``dispute``
attribute (workloads never import verify); :func:`dispute_for` loads it.
An adapter says which contract decides the kind's games (:attr:`MarketDispute.game`:
``"float"``, ``Dispute.vy``'s float32 claims, or ``"operator"``,
``OperatorGame.vy``), which job sizes it can play, how many steps a job's trace
commits (so rounds, ``ceil(log2 n)``) and the model's gas for a dispute, and
builds a job's trace and the players: the provider committing what its market
cheat class means, a watcher disputing with its own trace, a griefer with a
wrong one. :mod:`vcompute.market.chain_disputes` sends their moves to the
contract, which decides who won.

Built-in adapters:

- :class:`MatmulDispute` (``matmul``): the product accumulated over
  ``optimistic.trace_steps`` blocks of its inner dimension
  (:mod:`~vcompute.verify.dispute.matmul_trace`), one ``FloatStep.vy`` element
  at the end;
- :class:`ForwardDispute` (``forward``): the ReLU MLP as operators
  (:meth:`~vcompute.verify.dispute.op_trace.ReluNet.from_forward_job`: ``lin``,
  ``bias``, ``relu`` a hidden layer, widths padded to multiples of 8),
  bisected flat down to one operator, one element of which ``OperatorGame.vy``
  checks (``proofs/dispute.md`` C12). Its cheat classes, as the kind's
  behaviours mean them: ``random_output`` (nothing computed: noise after
  every operator), ``skip_k`` (``skip_layer``: a contiguous quarter of the
  first layer's inner dimension left out), ``low_precision`` (the last
  linear layer from bfloat16-rounded inputs and weights).

``generate`` declares none: the operator game decides a tiny LM's prefill
(C13), but a generate claim is its sampled tokens, and neither the tied head
(its width is the vocabulary's, over the contract's 256) nor the sampling is
among the operators. A provider replaying another prompt's tokens with an
honest prefill over them commits a trace every operator of which is valid: a
watcher who found the tokens wrong would lose its game.

Example:
    >>> d = dispute_for("forward")
    >>> d.game, d.n_steps("tiny", 8), d.rounds("tiny", 8)
    ('operator', 5, 3)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["DISPUTE_GAS", "FLOAT_GAS_PER_COLUMN", "FORWARD_CHEATS", "forward_trace", "ForwardDispute", "GameJob", "MarketDispute", "MatmulDispute", "dispute_for"]

#: The model's gas per dispute, by adapter: ``(base, per round)``, from the dispute transaction on
#: (the commit excluded), evaluated at ``ceil(log2 n)`` rounds. ``float``: ``proofs/dispute.md`` C7
#: (0.85M at L = 8 less 3 rounds of 105k). ``forward``: 98k a round (least squares over 120 market
#: games, the gas less the one-element check), and the base set so that the model at 3 rounds is the
#: mean of the 479 games of ``experiments/optimistic-real-forward.toml`` on the contract with the
#: nobody-won ending, 0.88M (claim ``optimistic-real-forward-gas``). A game spreads 0.57-1.29M around
#: it: a ``lin`` element's check grows with its inner width, and a game the challenger wins also pays
#: for the check of the challenger's own element (``OperatorGame.vy``'s PROVE phase).
DISPUTE_GAS = {"float": (535_000, 105_000), "forward": (583_000, 98_000)}
#: ``decide_float``'s gas per state column beyond 32 (``protocols/Dispute.md``: 0.17M at 32, 0.62M at 256).
FLOAT_GAS_PER_COLUMN = 2_000


def _ceil_log2(n: int) -> int:
    return (int(n) - 1).bit_length()


@dataclass(frozen=True)
class GameJob:
    """A market job as its dispute game sees it.

    Attributes:
        net: the trace's operators (a :class:`~vcompute.verify.dispute.float_trace.FloatNet` or an
            operator list such as :class:`~vcompute.verify.dispute.op_trace.ReluNet`).
        x0: the input state.
        m: the output's columns (a matmul trace's state is ``[C | a]``: its first ``m`` columns).
    """

    net: Any
    x0: np.ndarray
    m: int


class MarketDispute:
    """A kind's market disputes. Subclasses set :attr:`game` and implement the methods.

    Attributes:
        game: ``"float"`` (``Dispute.vy``'s ``commit_float``) or ``"operator"`` (``OperatorGame.vy``).
    """

    game: ClassVar[str] = ""
    #: The row of :data:`DISPUTE_GAS` its games are modelled by.
    gas_key: ClassVar[str] = ""

    @property
    def round_gas(self) -> int:
        """The model's gas of one bisection round (both parties' openings)."""
        return DISPUTE_GAS[self.gas_key][1]

    def check_size(self, size: Any, steps: int) -> None:
        """Raise ``ValueError`` (saying what would do) if jobs of ``size`` cannot be played."""
        raise NotImplementedError

    def n_steps(self, size: Any, steps: int) -> int:
        """Steps a job of ``size`` commits (``steps``: ``optimistic.trace_steps``, where the kind uses it)."""
        raise NotImplementedError

    def rounds(self, size: Any, steps: int) -> int:
        """Bisection rounds of a dispute: ``ceil(log2 n_steps)``."""
        return _ceil_log2(self.n_steps(size, steps))

    def modelled_gas(self, size: Any, steps: int) -> int:
        """The model's gas of one dispute on a job of ``size`` (:data:`DISPUTE_GAS`)."""
        raise NotImplementedError

    def build(self, job: Any, steps: int) -> GameJob:
        """The job's trace operators and input state."""
        raise NotImplementedError

    def provider(self, cheat: str | None, g: GameJob, *, seed: int, name: str) -> Any:
        """The claimant: it commits what ``cheat`` (None: honest) means and plays every move on time."""
        raise NotImplementedError

    def challenger(self, claimant: Any, g: GameJob, *, griefer: bool, seed: int, name: str) -> Any:
        """A watcher (its own trace, adopting ``claimant``'s valid steps) or a griefer (a wrong trace), prepared."""
        raise NotImplementedError


class MatmulDispute(MarketDispute):
    """``matmul`` jobs: the product's accumulation over ``trace_steps`` blocks, on ``Dispute.vy``."""

    game = "float"
    gas_key = "float"

    def check_size(self, size: Any, steps: int) -> None:
        if not isinstance(size, int) or size % 4 or size > 128 or steps > min(size, 64):
            raise ValueError(f"a played matmul dispute needs jobs of size n <= 128, a multiple of 4, with "
                             f"optimistic.trace_steps <= min(n, 64); got n = {size!r}, trace_steps = {steps}")

    def n_steps(self, size: Any, steps: int) -> int:
        return int(steps)

    def modelled_gas(self, size: Any, steps: int) -> int:
        """C7's float32 figure: ``base + 2k`` a state column beyond 32 ``+ per round`` (state ``[C | a]``, 2 n)."""
        base, per = DISPUTE_GAS["float"]
        width = 2 * int(size) if isinstance(size, int) else 32
        return base + FLOAT_GAS_PER_COLUMN * max(0, width - 32) + per * self.rounds(size, steps)

    def build(self, job: Any, steps: int) -> GameJob:
        from vcompute.verify.dispute.matmul_trace import matmul_input, matmul_net

        a = np.asarray(job.inputs["a"], np.float32)
        b = np.asarray(job.inputs["b"], np.float32)
        return GameJob(matmul_net(b, steps=steps, rows=a.shape[0]), matmul_input(a, b.shape[1]), int(b.shape[1]))

    def provider(self, cheat: str | None, g: GameJob, *, seed: int, name: str) -> Any:
        from vcompute.verify.dispute.matmul_trace import provider_player

        return provider_player(cheat, g.net, g.x0, m=g.m, seed=seed, name=name)

    def challenger(self, claimant: Any, g: GameJob, *, griefer: bool, seed: int, name: str) -> Any:
        from vcompute.verify.dispute import float_players

        c = float_players.make_float_player("lie_one" if griefer else "honest", g.net, g.x0, seed=seed, name=name)
        c.prepare(claimant)
        return c


#: Market cheat classes :class:`ForwardDispute` commits (None: honest).
FORWARD_CHEATS = ("random_output", "skip_k", "low_precision")


class ForwardDispute(MarketDispute):
    """``forward`` jobs (ReLU MLPs): every operator committed, bisected flat on ``OperatorGame.vy``."""

    game = "operator"
    gas_key = "forward"

    @staticmethod
    def _widths(size: Any) -> list[int]:
        from vcompute.workloads.kinds import get_kind

        kind = get_kind("forward")
        widths, _ = kind.sizes[kind.size(size)]
        return [int(w) for w in widths]

    def check_size(self, size: Any, steps: int) -> None:
        pad = [-(-w // 8) * 8 for w in self._widths(size)]
        if max(pad) > 256:
            raise ValueError(f"a played forward dispute needs layer widths <= 256 (OperatorGame.vy's MAX_DIM); "
                             f"size {size!r} has widths {self._widths(size)}")

    def n_steps(self, size: Any, steps: int) -> int:
        """``lin``, ``bias`` a layer and ``relu`` between layers: ``3 layers - 1`` operators."""
        return 3 * (len(self._widths(size)) - 1) - 1

    def modelled_gas(self, size: Any, steps: int) -> int:
        base, per = DISPUTE_GAS["forward"]
        return base + per * self.rounds(size, steps)

    def build(self, job: Any, steps: int) -> GameJob:
        from vcompute.verify.dispute.op_trace import ReluNet

        net, x0 = ReluNet.from_forward_job(job)
        return GameJob(net, x0, int(job.spec["widths"][-1]))

    def provider(self, cheat: str | None, g: GameJob, *, seed: int, name: str) -> Any:
        from vcompute.verify.dispute.op_players import OpPlayer, make_op_player

        honest = make_op_player("honest", g.net, g.x0, seed=seed, name=name)
        if cheat is None:
            return honest
        return OpPlayer(name, "lie_one", forward_trace(g, cheat, seed=seed), honest.trace)

    def challenger(self, claimant: Any, g: GameJob, *, griefer: bool, seed: int, name: str) -> Any:
        from vcompute.verify.dispute import op_players

        c = op_players.make_op_player("lie_one" if griefer else "honest", g.net, g.x0, seed=seed, name=name)
        c.prepare(claimant)
        return c


def _bf16(x: np.ndarray) -> np.ndarray:
    from vcompute.verify.dispute.matmul_trace import _bf16 as bf16

    return bf16(x)


def forward_trace(g: GameJob, cheat: str, *, seed: int) -> Any:
    """The operator trace a ``forward`` provider with market cheat class ``cheat`` commits.

    ``random_output``: noise after every operator; ``skip_k``: the first ``lin`` with a
    contiguous quarter of the job's inner dimension left out, computed on from there;
    ``low_precision``: the last ``lin`` from bfloat16-rounded inputs and weights.

    Raises:
        ValueError: for another ``cheat``, or a trace valid at every operator (nothing to dispute).
    """
    from vcompute.verify.dispute.op_trace import LIN, OpTrace, apply_op
    from vcompute.verify.dispute.op_validity import invalid_elements

    if cheat not in FORWARD_CHEATS:
        raise ValueError(f"cheat must be one of {', '.join(FORWARD_CHEATS)}, got {cheat!r}")
    net, x0 = g.net, g.x0
    rng = np.random.default_rng(seed)
    lins = [p for p in range(1, net.n_ops + 1) if net.op(p).kind == LIN]
    s = (x0, x0.copy())
    states = []
    for p in range(1, net.n_ops + 1):
        op = net.op(p)
        if cheat == "random_output":
            out = (s[0], rng.standard_normal((s[1].shape[0], op.m)).astype(np.float32))
        elif cheat == "skip_k" and p == lins[0]:
            k = int(np.count_nonzero(np.abs(op.param).sum(axis=1)))  # the job's own inner width (unpadded)
            run = max(1, -(-k // 4))
            start = int(rng.integers(0, k - run + 1))
            a = s[1].copy()
            a[:, start:start + run] = 0.0  # the same sums as never computing those terms
            out = (s[0], np.matmul(a, op.param).astype(np.float32))
        elif cheat == "low_precision" and p == lins[-1]:
            out = (s[0], np.matmul(_bf16(s[1]), _bf16(op.param)).astype(np.float32))
        else:
            out = apply_op(op, s)
        states.append(out)
        s = out
    trace = OpTrace(net, x0, states)
    if not any(invalid_elements(net, p, trace.state(p - 1), trace.state(p)) for p in range(1, net.n_ops + 1)):
        raise ValueError(f"the {cheat} trace is valid at every operator: nothing to dispute")
    return trace


def dispute_for(kind: str) -> MarketDispute | None:
    """The dispute adapter job kind ``kind`` declares (its ``dispute`` hook), or None if it declares none.

    Raises:
        UnknownPluginError: for an unknown kind.
        TypeError: if the hook does not name a :class:`MarketDispute` subclass or instance.
    """
    from vcompute.workloads.kinds import get_kind

    path = get_kind(kind).dispute
    if not path:
        return None
    if type(path) is not str or ":" not in path:
        raise TypeError(f"job kind {kind!r}: dispute must be a 'module:attr' path, got {path!r}")
    mod, attr = path.split(":", 1)
    obj = getattr(importlib.import_module(mod), attr)
    adapter = obj() if isinstance(obj, type) and issubclass(obj, MarketDispute) else obj
    if not isinstance(adapter, MarketDispute):
        raise TypeError(f"job kind {kind!r}: dispute {path!r} is not a MarketDispute")
    return adapter
