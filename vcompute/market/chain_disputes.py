"""The optimistic policy's disputes played on ``Dispute.vy``: real mode, on an EVM ledger.

In modelled mode :mod:`vcompute.market.optimistic` models a dispute from the
measured game (the honest party wins, ``ceil(log2 L)`` rounds, the
calibrated gas). In real mode on an EVM ledger (``settlement.ledger =
"evm://..."``) :class:`ChainDisputes` plays it instead:

- every optimistic job's provider **commits** its result and trace as a
  float32 claim in ``protocols/Dispute.vy`` (``commit_float``): the trace
  of the job's own ``a @ b``, accumulated over ``optimistic.trace_steps``
  blocks (:mod:`vcompute.verify.dispute.matmul_trace`), and what it
  commits follows its market cheat class (honest, ``random_output``,
  ``skip_k``, ``low_precision``);
- a watcher who found the result wrong **disputes** it with its own trace
  (it adopts the provider's valid steps), a griefer with a wrong one, and
  the two play the game move by move against the deployed contract
  (:func:`vcompute.ledger.dispute_client.referee`: the players' moves sent
  as transactions; a party without a valid move is timed out), down to one
  block whose element ``FloatStep.vy`` recomputes;
- the market then **settles from the contract**: the claim's state and the
  recorded winner (``Dispute.vy``'s ``outcome``) decide whether the
  provider's escrow on the market's ledger (``VLedger.vy``'s escrow, which
  the arbiter account executes) is released or slashed, and to whom.
  Nothing in Python decides who won.

The game runs on its own embedded revm (``DisputeChain``), beside the
ledger's chain, with the ledger's units as wei: the game's bonds stay on the
game's chain, the job's payment and stake on the ledger. Each game is played
at once; the market's clock charges it ``rounds x move_timeout_s`` (each
move may take up to its timeout), as the model does. :meth:`ChainDisputes.summary`
reports each played game beside what the model predicts for it, so the two
can be compared (``tests/market/test_chain_disputes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ChainDisputes", "Played", "float_dispute_gas"]

#: Gas of a float32 dispute less its rounds at a 32-wide state: the ``dispute`` transaction, the
#: element challenge and ``decide_float`` (``proofs/dispute.md`` C7: 0.85M gas at L = 8 less 3 rounds).
FLOAT_BASE_GAS = 535_000
#: ``decide_float``'s gas per state column beyond 32 (``protocols/Dispute.md``: 0.17M at 32, 0.62M at 256).
FLOAT_GAS_PER_COLUMN = 2_000


def float_dispute_gas(rounds: int, width: int) -> int:
    """The model's gas for a float32 dispute of ``rounds`` rounds on ``width``-column states."""
    from vcompute.market.optimistic import ROUND_GAS

    return FLOAT_BASE_GAS + FLOAT_GAS_PER_COLUMN * max(0, int(width) - 32) + ROUND_GAS * int(rounds)


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
    """

    winner: str
    rounds: int
    gas: int
    modelled_winner: str
    modelled_rounds: int
    modelled_gas: int
    griefed: bool


@dataclass
class _Claim:
    player: Any
    claim_id: bytes
    net: Any
    x0: np.ndarray


class ChainDisputes:
    """``Dispute.vy`` and ``FloatStep.vy`` on an embedded revm, and the games the market plays on them.

    Args:
        steps: trace steps of each job (``optimistic.trace_steps``).
        move_timeout_s: the contract's move timeout.
        window_s: the claims' dispute window.
        burn_share: the contract's ``burn_bps`` / 10^4.
        bond: each party's bond, in ledger units (wei on the game's chain).
        seed: the run's seed (where cheating traces lie, the griefers' traces).

    Raises:
        ImportError: without ``pyrevm`` and ``eth_abi`` (``pip install 'vcompute[evm]'``).
    """

    def __init__(self, *, steps: int, move_timeout_s: float, window_s: float, burn_share: float, bond: int,
                 seed: int) -> None:
        from vcompute.ledger.dispute_client import DisputeChain

        self.chain = DisputeChain(move_timeout=max(1, int(round(move_timeout_s))),
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

    def commit(self, job: Any, *, provider: str, cheat: str | None, key: int) -> _Claim:
        """The provider of ``job`` (a matmul :class:`~vcompute.core.types.Job`) commits its trace as a claim.

        Args:
            job: the market job's real inputs (``a``, ``b``: float32).
            provider: the provider's account name.
            cheat: its market cheat class for this job, or None.
            key: the job's sequence number (where a cheat lies).
        """
        from vcompute.verify.dispute.matmul_trace import matmul_input, matmul_net, provider_player

        a = np.asarray(job.inputs["a"], np.float32)
        b = np.asarray(job.inputs["b"], np.float32)
        net = matmul_net(b, steps=self.steps, rows=a.shape[0])
        x0 = matmul_input(a, b.shape[1])
        player = provider_player(cheat, net, x0, m=b.shape[1], seed=self.seed * 1_000_003 + key, name=provider)
        self._fund(provider)
        ch = self.chain
        claim_id = ch.call(provider, "commit_float", net.ops_tree.root, player.honest_trace.leaves[0],
                           net.n_layers, *player.commitment(), self.window, value=self.bond)
        self.commits += 1
        self.commit_gas += ch.last_gas
        return _Claim(player, bytes(claim_id), net, x0)

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
        from vcompute.market.optimistic import dispute_rounds
        from vcompute.verify.dispute.float_players import make_float_player

        ch = self.chain
        self._fund(challenger)
        c = make_float_player("lie_one" if griefer else "honest", claim.net, claim.x0,
                              seed=self.seed * 1_000_003 + key + 1, name=challenger)
        c.prepare(claim.player)
        ch.call(challenger, "dispute", claim.claim_id, *c.commitment(), value=self.bond)
        res = referee(ch, claim.claim_id, claim.player, c, gas=ch.last_gas)
        rounds = dispute_rounds(self.steps)
        width = int(claim.x0.shape[1])
        played = Played(res.winner, res.rounds, res.gas, "claimant" if griefer else "challenger", rounds,
                        float_dispute_gas(rounds, width), griefer)
        self.games.append(played)
        return played

    def summary(self) -> dict[str, float]:
        """Played games against the model: counts, agreement, rounds and gas (means per game)."""
        g = self.games
        nan = float("nan")
        return {
            "disputes_played": len(g),
            "dispute_model_agree": sum(p.winner == p.modelled_winner for p in g) / len(g) if g else nan,
            "dispute_rounds_played": float(np.mean([p.rounds for p in g])) if g else nan,
            "dispute_gas_played": float(np.mean([p.gas for p in g])) if g else nan,
            "dispute_gas_modelled": float(np.mean([p.modelled_gas for p in g])) if g else nan,
            "dispute_commit_gas": self.commit_gas / self.commits if self.commits else nan,
        }
