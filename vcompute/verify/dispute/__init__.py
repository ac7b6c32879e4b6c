"""Refereed delegation: trace commitments and the players of the on-chain dispute game.

A provider commits to a Merkle root over every state of its forward pass
(:mod:`~vcompute.verify.dispute.trace`); a challenger who disagrees bisects
the two traces on chain down to one layer, which ``protocols/Dispute.vy``
checks itself (Freivalds over F_p). The players
(:mod:`~vcompute.verify.dispute.players`) are honest or adversarial; the
contract client that referees them is
:mod:`vcompute.ledger.dispute_client` (``verify`` never imports ``ledger``).
Claims and their tests: ``proofs/dispute.md``.
"""

from vcompute.verify.dispute.players import LYING, STRATEGIES, Player, make_player
from vcompute.verify.dispute.trace import QuantNet, Trace, TraceCommitment, job_id

__all__ = ["LYING", "STRATEGIES", "Player", "QuantNet", "Trace", "TraceCommitment", "job_id", "make_player"]
