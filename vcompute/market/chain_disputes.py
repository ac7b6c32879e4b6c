"""The optimistic policy's disputes played on chain: real mode, on an EVM ledger.

In modelled mode :mod:`vcompute.market.optimistic` models a dispute from the
measured game (the honest party wins, ``ceil(log2 n)`` rounds, each kind's
gas). In real mode on an EVM ledger (``settlement.ledger = "evm://..."``)
:class:`ChainDisputes` plays it instead, on the contract the job's kind
names (its ``dispute`` hook, :mod:`vcompute.verify.dispute.market`):

- every optimistic job's provider **commits** its result and trace as a
  claim: a ``matmul`` job as a float32 claim in ``protocols/Dispute.vy``
  (``commit_float``: the trace of its own ``a @ b``, accumulated over
  ``optimistic.trace_steps`` blocks,
  :mod:`vcompute.verify.dispute.matmul_trace`), a ``forward`` job as an
  operator claim in ``protocols/OperatorGame.vy`` (``commit``: every operator
  of its ReLU MLP, ``ReluNet.from_forward_job``); what it commits follows its
  market cheat class (honest, ``random_output``, ``skip_k``, ``low_precision``);
- a watcher who found the result wrong **disputes** it with its own trace
  (it adopts the provider's valid steps), a griefer with a wrong one, and
  the two play the game move by move against the deployed contract
  (:func:`vcompute.ledger.dispute_client.referee`,
  :func:`vcompute.ledger.op_dispute.referee_op`: the players' moves sent as
  transactions; a party without a valid move is timed out), down to one
  block whose element ``FloatStep.vy`` recomputes, or one operator one
  element of which ``OperatorGame.vy`` checks;
- the market then **settles from the contract**: the claim's state and the
  recorded winner decide whether the provider's escrow on the market's
  ledger (``VLedger.vy``'s escrow, which the arbiter account executes) is
  released or slashed, and to whom. Nothing in Python decides who won.

The games run on their own embedded revm (an
:class:`~vcompute.ledger.op_dispute.OpChain`: ``Dispute.vy``,
``FloatStep.vy``, ``OperatorStep.vy`` and ``OperatorGame.vy``), beside the
ledger's chain, with the ledger's units as wei: the games' bonds stay on the
game chain, the job's payment and stake on the ledger. Each game is played
at once; the market's clock charges it ``rounds x move_timeout_s`` (each
move may take up to its timeout), as the model does. :meth:`ChainDisputes.summary`
reports each played game beside what the model predicts for it, so the two
can be compared (``tests/market/test_chain_disputes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompute.verify.dispute.market import DISPUTE_GAS, FLOAT_GAS_PER_COLUMN

__all__ = ["ChainDisputes", "disputed_kinds", "FLOAT_BASE_GAS", "FLOAT_GAS_PER_COLUMN", "Played", "float_dispute_gas"]

#: Gas of a float32 dispute less its rounds at a 32-wide state: the ``dispute`` transaction, the
#: element challenge and ``decide_float`` (``proofs/dispute.md`` C7: 0.85M gas at L = 8 less 3 rounds).
FLOAT_BASE_GAS = DISPUTE_GAS["float"][0]


def float_dispute_gas(rounds: int, width: int) -> int:
    """The model's gas for a float32 dispute of ``rounds`` rounds on ``width``-column states."""
    return FLOAT_BASE_GAS + FLOAT_GAS_PER_COLUMN * max(0, int(width) - 32) + DISPUTE_GAS["float"][1] * int(rounds)


def disputed_kinds() -> list[str]:
    """The registered job kinds that declare a dispute game (their ``dispute`` hook), in registry order."""
    from vcompute.workloads.kinds import KINDS, get_kind

    out = []
    for name in KINDS.names():
        try:
            if get_kind(name).dispute:
                out.append(name)
        except (ImportError, TypeError):  # a plug-in kind that cannot load has no metrics
            continue
    return out


@dataclass(frozen=True)
class Played:
    """One dispute played on the contract, beside the model's prediction.

    Attributes:
        winner: ``"claimant"``, ``"challenger"`` or ``"none"``, read from the contract.
        rounds: bisection rounds played.
        gas: gas of every transaction from the dispute on.
        modelled_winner: the party the model says wins (the honest one).
        modelled_rounds: ``ceil(log2 trace_steps)``.
        modelled_gas: :func:`float_dispute_gas` at the modelled rounds.
        griefed: whether the challenger was a griefer (the claimant honest).
        kind: the job's kind.
        decide_gas: gas of the one-step (one-element) check, 0 if the game ended on a timeout.
    """

    winner: str
    rounds: int
    gas: int
    modelled_winner: str
    modelled_rounds: int
    modelled_gas: int
    griefed: bool
    kind: str = "matmul"
    decide_gas: int = 0


@dataclass
class _Claim:
    player: Any
    claim_id: bytes
    game: Any
    adapter: Any
    kind: str
    size: Any


class ChainDisputes:
    """``Dispute.vy``, ``FloatStep.vy`` and ``OperatorGame.vy`` on an embedded revm, and the games the market plays.

    Each job kind's dispute adapter (its ``dispute`` hook,
    :func:`vcompute.verify.dispute.market.dispute_for`) builds the job's trace and
    players and names the contract that decides it: ``"float"`` claims go to
    ``Dispute.vy`` (``commit_float``, refereed by
    :func:`~vcompute.ledger.dispute_client.referee`), ``"operator"`` claims to
    ``OperatorGame.vy`` (refereed by :func:`~vcompute.ledger.op_dispute.referee_op`).

    Args:
        steps: trace steps of a matmul job (``optimistic.trace_steps``).
        move_timeout_s: the contracts' move timeout.
        window_s: the claims' dispute window.
        burn_share: the contracts' ``burn_bps`` / 10^4.
        bond: each party's bond, in ledger units (wei on the game's chain).
        seed: the run's seed (where cheating traces lie, the griefers' traces).

    Raises:
        ImportError: without ``pyrevm`` and ``eth_abi`` (``pip install 'vcompute[evm]'``).
    """

    def __init__(self, *, steps: int, move_timeout_s: float, window_s: float, burn_share: float, bond: int,
                 seed: int) -> None:
        from vcompute.ledger.op_dispute import OpChain

        self.chain = OpChain(move_timeout=max(1, int(round(move_timeout_s))),
                             burn_bps=int(round(burn_share * 10_000)), treasury="treasury", min_bond=1)
        self.steps, self.bond, self.seed = int(steps), max(1, int(bond)), int(seed)
        self.window = max(1, int(round(window_s)))
        self._funded: set[str] = set()
        self.commits = 0
        self.commit_gas = 0
        self.games: list[Played] = []

    def _fund(self, name: str) -> None:
        if name not in self._funded:
            self.chain.fund(name, 10**40)
            self._funded.add(name)

    def commit(self, job: Any, *, provider: str, cheat: str | None, key: int, size: Any = None) -> _Claim:
        """The provider of ``job`` commits its trace as a claim on the contract its kind's games are played on.

        Args:
            job: the market job's real inputs (a :class:`~vcompute.core.types.Job` of a kind with a dispute hook).
            provider: the provider's account name.
            cheat: its market cheat class for this job, or None.
            key: the job's sequence number (where a cheat lies).
            size: the job type's size (the model's rounds and gas; None: read from the job).

        Raises:
            ValueError: for a job whose kind declares no dispute game.
        """
        from vcompute.verify.dispute.market import dispute_for
        from vcompute.workloads.kinds import kind_of_job

        kind = kind_of_job(job)
        adapter = dispute_for(kind.name) if kind is not None else None
        if adapter is None:
            raise ValueError(f"no dispute game decides {getattr(job, 'kind', job)!r} jobs (the kind's dispute hook)")
        g = adapter.build(job, self.steps)
        player = adapter.provider(cheat, g, seed=self.seed * 1_000_003 + key, name=provider)
        self._fund(provider)
        ch = self.chain
        if adapter.game == "float":
            claim_id = ch.call(provider, "commit_float", g.net.ops_tree.root, player.honest_trace.leaves[0],
                               g.net.n_layers, *player.commitment(), self.window, value=self.bond)
        else:
            claim_id = ch.call(provider, "commit", g.net.ops_tree.root, player.honest_trace.leaves[0],
                               g.net.n_layers, g.net.per_layer, *player.commitment(), self.window, value=self.bond,
                               on="game")
        self.commits += 1
        self.commit_gas += ch.last_gas
        if size is None:
            size = g.x0.shape[0] if kind.name == "matmul" else job.spec.get("size")
        return _Claim(player, bytes(claim_id), g, adapter, kind.name, size)

    def dispute(self, claim: _Claim, challenger: str, *, griefer: bool, key: int) -> Played:
        """``challenger`` disputes ``claim`` and the two play it out on the contract.

        Args:
            claim: what :meth:`commit` returned.
            challenger: the watcher's (or griefer's) account name.
            griefer: a griefer commits a wrong trace; a watcher adopts the claimant's valid steps.
            key: the job's sequence number (where a griefer's trace lies).

        Returns:
            The :class:`Played` game, its winner read from the contract.
        """
        from vcompute.ledger.dispute_client import referee
        from vcompute.ledger.op_dispute import referee_op

        ch = self.chain
        self._fund(challenger)
        ad = claim.adapter
        c = ad.challenger(claim.player, claim.game, griefer=griefer, seed=self.seed * 1_000_003 + key + 1,
                          name=challenger)
        if ad.game == "float":
            ch.call(challenger, "dispute", claim.claim_id, *c.commitment(), value=self.bond)
            res = referee(ch, claim.claim_id, claim.player, c, gas=ch.last_gas)
        else:
            ch.call(challenger, "dispute", claim.claim_id, *c.commitment(), value=self.bond, on="game")
            res = referee_op(ch, claim.claim_id, claim.player, c, gas=ch.last_gas)
        rounds = ad.rounds(claim.size, self.steps)
        played = Played(res.winner, res.rounds, res.gas, "claimant" if griefer else "challenger", rounds,
                        ad.modelled_gas(claim.size, self.steps), griefer, claim.kind, res.decide_gas)
        self.games.append(played)
        return played

    def summary(self) -> dict[str, float]:
        """Played games against the model: counts, agreement, rounds and gas (means per game), and per kind."""
        g = self.games
        nan = float("nan")
        out = {
            "disputes_played": len(g),
            "dispute_model_agree": sum(p.winner == p.modelled_winner for p in g) / len(g) if g else nan,
            "dispute_rounds_played": float(np.mean([p.rounds for p in g])) if g else nan,
            "dispute_rounds_max": max(p.rounds for p in g) if g else nan,
            "dispute_gas_played": float(np.mean([p.gas for p in g])) if g else nan,
            "dispute_gas_modelled": float(np.mean([p.modelled_gas for p in g])) if g else nan,
            "dispute_commit_gas": self.commit_gas / self.commits if self.commits else nan,
            # against the contract's outcome, the honest party's loss and the cheater's win (targets 0, 0)
            "honest_lost": sum(p.winner != p.modelled_winner for p in g),
            "cheater_won": sum(p.winner == "claimant" and not p.griefed for p in g),
        }
        for kind in disputed_kinds():
            mine = [p for p in g if p.kind == kind]
            out[f"disputes_played_{kind}"] = len(mine)
            out[f"dispute_gas_played_{kind}"] = float(np.mean([p.gas for p in mine])) if mine else nan
            out[f"dispute_rounds_played_{kind}"] = float(np.mean([p.rounds for p in mine])) if mine else nan
        return out
