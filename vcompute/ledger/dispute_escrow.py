"""A whole job settled by a dispute game: ``JobEscrow.vy`` holding the money, ``Dispute.vy`` deciding.

The consumer posts a job whose result is a claim in the game
(``post_disputed``); the provider accepts it with a stake, commits its trace
in the game and its claim in the escrow (``commit_claim``); a challenger may
dispute the claim, and the escrow pays only once the claim stands
(``finalize``) or hands the stake to the game's winner once it lost
(``settle``). :func:`play_job` drives that on a :class:`DisputeChain` with
two players (:mod:`vcompute.verify.dispute.players`) and reads every
outcome from the contracts; :func:`settle_job` is that flow for any game
with ``Dispute.vy``'s ``outcome`` view (``OperatorGame.vy``:
:func:`vcompute.ledger.op_dispute.play_op_job`). Spec: ``protocols/JobEscrow.md``
("Jobs settled by a dispute game").

Example:
    >>> from vcompute.verify.dispute import QuantNet, make_player
    >>> net = QuantNet.random(dims=(32, 32, 32), rows=1, seed=0)
    >>> x0 = net.random_input(seed=0)
    >>> p = make_player("lie_one", net, x0, seed=1, name="p")
    >>> w = make_player("honest", net, x0, seed=0, name="w")
    >>> out = play_job(DisputeChain(), p, w, ops_root=net.ops_tree.root,  # doctest: +SKIP
    ...                input_state=w.honest_trace.leaves[0], payment=10**18, stake=10**18, bond=10**18)
    >>> out.job_state  # doctest: +SKIP
    'slashed'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from vcompute.ledger.dispute_client import ContractRevert, DisputeChain, referee

__all__ = ["JOB_STATES", "JobOutcome", "play_job", "settle_job"]

#: Job states of ``JobEscrow.vy``, by number.
JOB_STATES = ("unused", "posted", "accepted", "committed", "finalized", "slashed", "cancelled", "timed_out")
_CLAIM_SLASHED = 4


@dataclass
class JobOutcome:
    """How one escrowed job ended.

    Attributes:
        job_id: the escrow's job id.
        claim_id: the provider's claim in the game.
        game: the dispute's result (a ``GameResult`` or an ``OpGameResult``), or ``None`` if nobody disputed.
        job_state: ``"finalized"`` (provider paid) or ``"slashed"`` (stake to the winner).
        escrow_credits: each party's credit on the escrow after settlement (wei), by account name.
        refused: escrow calls the contract refused while the game ran (finalize during the dispute).
    """

    job_id: bytes
    claim_id: bytes
    game: Any
    job_state: str
    escrow_credits: dict[str, int]
    refused: int


def play_job(chain: DisputeChain, provider: Any, challenger: Any | None, *, ops_root: bytes, input_state: bytes,
             payment: int, stake: int, bond: int, challenge_window: int = 3600, consumer: str = "consumer",
             treasury: str | None = None) -> JobOutcome:
    """Run one job through ``JobEscrow.vy`` and ``Dispute.vy``: post, accept, commit, dispute, settle.

    The escrow is asked to finalize while the game runs (it must refuse, counted
    in ``refused``); once the game ends the job is finalized if the claim stands
    and settled if it lost. Nothing here decides who is paid: the contracts do.

    Args:
        chain: the deployed game (the escrow is deployed on first use).
        provider: the player who provides (the game's claimant).
        challenger: the player who disputes, or ``None`` for nobody.
        ops_root: the job's operator root.
        input_state: the job's input leaf.
        payment: what the consumer pays (wei).
        stake: the provider's stake (wei).
        bond: each game party's bond (wei).
        challenge_window: the escrow's challenge window; the claim's dispute window is one move longer.
        consumer: the consumer's account name.
        treasury: the game's treasury account name, reported in ``escrow_credits`` (``None``: burned).

    Returns:
        The :class:`JobOutcome`.
    """
    n = provider.n_layers
    commit_fn = provider.commit_fn
    spec = chain.view("float_job_id_of" if commit_fn == "commit_float" else "job_id_of", ops_root, input_state, n)

    def commit(window: int) -> bytes:
        return chain.call(provider.name, commit_fn, ops_root, input_state, n, *provider.commitment(), window,
                          value=bond)

    return settle_job(chain, provider, challenger, on="dispute", spec=spec, commit=commit, referee=referee,
                      payment=payment, stake=stake, bond=bond, challenge_window=challenge_window,
                      consumer=consumer, treasury=treasury)


def settle_job(chain: DisputeChain, provider: Any, challenger: Any | None, *, on: str, spec: bytes,
               commit: Callable[[int], bytes], referee: Callable[..., Any], payment: int, stake: int, bond: int,
               challenge_window: int, consumer: str = "consumer", treasury: str | None = None) -> JobOutcome:
    """Post, accept, commit, dispute and settle one escrowed job whose claim lives in game ``on``.

    The game-specific parts are passed in: ``play_job`` (``Dispute.vy``) and
    :func:`vcompute.ledger.op_dispute.play_op_job` (``OperatorGame.vy``) share
    everything else. The escrow (``on="escrow"``) must trust game ``on``.

    Args:
        chain: the deployed contracts.
        provider: the player who provides (the game's claimant).
        challenger: the player who disputes, or ``None`` for nobody.
        on: the game's contract name on ``chain``.
        spec: the job id the claim must name in that game.
        commit: commits the provider's claim in the game with the given dispute window; returns its claim id.
        referee: plays a running dispute to its end: ``referee(chain, claim, provider, challenger, gas=...)``.
        payment, stake, bond, challenge_window, consumer, treasury: as in :func:`play_job`.

    Returns:
        The :class:`JobOutcome`.
    """
    # the block number is new at every transaction: one job id per call on this chain
    job = hashlib.sha256(b"vcompute-escrow-job" + spec + chain.number.to_bytes(8, "big")).digest()
    for who in (provider.name, consumer, *([challenger.name] if challenger else [])):
        chain.fund(who, 100 * (payment + stake + bond) + 10**20)
    chain.call(consumer, "post_disputed", job, chain.at(on), spec, stake, 600, 3600, challenge_window,
               value=payment, on="escrow")
    chain.call(provider.name, "accept", job, value=stake, on="escrow")
    claim = commit(challenge_window + chain.view("move_timeout", on=on))
    chain.call(provider.name, "commit_claim", job, claim, on="escrow")
    game, refused = None, 0
    if challenger is not None:
        challenger.prepare(provider)
        chain.call(challenger.name, "dispute", claim, *challenger.commitment(), value=bond, on=on)
        try:
            chain.call("anyone", "finalize", job, on="escrow")
        except ContractRevert:  # the refusal is what is counted; its reason is tested elsewhere
            refused += 1
        game = referee(chain, claim, provider, challenger, gas=chain.last_gas)
    if chain.record("claims", claim, on=on)["state"] == _CLAIM_SLASHED:
        chain.call("anyone", "settle", job, on="escrow")
    else:
        chain.advance(max(0, chain.record("claims", claim, on=on)["deadline"] - chain.time) + 1)
        chain.call("anyone", "finalize", job, on="escrow")
        chain.call("anyone", "finalize", claim, on=on)  # the provider's bond back from the game
    names = [consumer, provider.name, *([challenger.name] if challenger else []), *([treasury] if treasury else [])]
    credits = {k: chain.view("credits", chain.address(k), on="escrow") for k in names}
    state = JOB_STATES[chain.record("jobs", job, on="escrow")["state"]]
    return JobOutcome(job, claim, game, state, credits, refused)
