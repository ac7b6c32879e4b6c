"""Refereed delegation: trace commitments and the players of the on-chain dispute game.

A provider commits to a Merkle root over every state of its forward pass
(:mod:`~vcompute.verify.dispute.trace`); a challenger who disagrees bisects
the two traces on chain down to one layer, which ``protocols/Dispute.vy``
checks itself (Freivalds over F_p). A float32 job
(:mod:`~vcompute.verify.dispute.float_trace`) commits float states instead,
and its last step is one output element held to its rounding bound; its
players are in :mod:`~vcompute.verify.dispute.float_players`; a linear
model's training transcript is such a job
(:mod:`~vcompute.verify.dispute.train_trace`). A nonlinear pass (GELU-MLP
blocks) is committed operator by operator
(:mod:`~vcompute.verify.dispute.op_trace`) and bisected to one operator by
``protocols/OperatorGame.vy``, whose add, GELU and LayerNorm checks
:mod:`~vcompute.verify.dispute.op_step` mirrors; which operators are valid
is :mod:`~vcompute.verify.dispute.op_validity`, the players are in
:mod:`~vcompute.verify.dispute.op_players`. The same game decides the
``forward`` kind's ReLU MLPs (:class:`~vcompute.verify.dispute.op_trace.ReluNet`,
with ReLU and softmax operators) and a ``generate`` job's prefill through a
transformer LM, attention included (:mod:`~vcompute.verify.dispute.lm_trace`). The players
(:mod:`~vcompute.verify.dispute.players`) are honest or adversarial; the
contract client that referees them is
:mod:`vcompute.ledger.dispute_client` (``verify`` never imports ``ledger``).
Claims and their tests: ``proofs/dispute.md``.
"""

from vcompute.verify.dispute.float_players import (FLOAT_LYING, FLOAT_STRATEGIES, FLOAT_VALID, FloatPlayer,
                                                   make_float_player)
from vcompute.verify.dispute.float_trace import FloatNet, FloatTrace, float_job_id
from vcompute.verify.dispute.players import LYING, STRATEGIES, Player, make_player
from vcompute.verify.dispute.trace import QuantNet, Trace, TraceCommitment, job_id
from vcompute.verify.dispute.train_trace import initial_checkpoint, linear_training_job

__all__ = ["FLOAT_LYING", "FLOAT_STRATEGIES", "FLOAT_VALID", "LYING", "STRATEGIES", "FloatNet", "FloatPlayer",
           "FloatTrace", "Player", "QuantNet", "Trace", "TraceCommitment", "float_job_id", "job_id",
           "initial_checkpoint", "linear_training_job", "make_float_player", "make_player"]
