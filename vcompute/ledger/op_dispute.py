"""A referee for ``protocols/OperatorGame.vy``: operator-level disputes played on an embedded revm.

:class:`OpChain` is a :class:`~vcompute.ledger.dispute_client.DisputeChain`
(the same accounts, clock and revert reasons) with ``OperatorStep.vy`` and
``OperatorGame.vy`` deployed beside ``FloatStep.vy``; :func:`play_op` and
:func:`referee_op` send the players' moves
(:class:`vcompute.verify.dispute.op_players.OpPlayer`, duck-typed: ``ledger``
never imports ``verify``) and read the winner from the contract.

Example:
    >>> chain = OpChain(move_timeout=100)        # doctest: +SKIP
    >>> chain.view("arity", on="game")           # doctest: +SKIP
    2
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from vcompute.ledger.dispute_client import ContractRevert, DisputeChain
from vcompute.ledger.dispute_escrow import JobOutcome, settle_job

__all__ = ["CHECKED_IN_MAX_DIM", "OpChain", "OpGameResult", "play_op", "play_op_job", "referee_op", "wide_builds"]

#: ``MAX_DIM`` of the checked-in builds of ``OperatorGame.vy``, ``OperatorStep.vy`` and ``FloatStep.vy``.
CHECKED_IN_MAX_DIM = 256

_DISPUTED, _SLASHED = 2, 4
_ONE_STEP, _ELEMENT, _PROVE = 3, 4, 5


@functools.lru_cache(maxsize=4)
def wide_builds(max_dim: int) -> dict[str, dict[str, Any]]:
    """Benchmark builds of the operator game's three contracts with ``MAX_DIM = max_dim`` (never checked in).

    Vyper lays memory out for the bound, so a wider build costs more gas at every width (measured
    in ``protocols/OperatorGame.md``, "Wider rows"); ``MAX_T`` (64 tokens) is unchanged.
    """
    from vcompute.ledger.contracts import compile_contract

    return {"FloatStep": compile_contract("FloatStep", {"MAX_DIM": max_dim, "MAX_WORDS": max_dim // 8}),
            "OperatorStep": compile_contract("OperatorStep", {"MAX_DIM": max_dim}),
            "OperatorGame": compile_contract("OperatorGame", {"MAX_DIM": max_dim})}


class OpChain(DisputeChain):
    """``OperatorGame.vy`` (``on="game"``) with its step checkers on a fresh in-process revm.

    Args:
        treasury: the account name that receives the loser's burned share, or ``None`` to burn it.
        burn_bps: the share of a loser's bond not paid to the winner, in basis points.
        move_timeout: seconds each party has for each move.
        min_bond: the least bond a claim may carry (wei).
        arity: segments the disagreement is cut into each round (2..16).
        max_dim: the widest row the contracts take; 256 is the checked-in build, another value compiles
            benchmark builds of ``FloatStep.vy``, ``OperatorStep.vy`` and ``OperatorGame.vy`` with that
            ``MAX_DIM`` (needs vyper; :func:`wide_builds`).

    Raises:
        ImportError: if ``pyrevm`` or ``eth_abi`` is missing (``pip install 'vcompute[evm]'``).
        ValueError: if ``max_dim`` is not a multiple of 8 in 256..8192.
    """

    def __init__(self, *, treasury: str | None = None, burn_bps: int = 1000, move_timeout: int = 3600,
                 min_bond: int = 1, arity: int = 2, max_dim: int = CHECKED_IN_MAX_DIM) -> None:
        if type(max_dim) is not int or max_dim % 8 or not CHECKED_IN_MAX_DIM <= max_dim <= 8192:
            raise ValueError(f"max_dim must be a multiple of 8 in {CHECKED_IN_MAX_DIM}..8192, got {max_dim!r}")
        super().__init__(treasury=treasury, burn_bps=burn_bps, move_timeout=move_timeout, min_bond=min_bond,
                         arity=arity)
        self.max_dim = max_dim
        builds = wide_builds(max_dim) if max_dim != CHECKED_IN_MAX_DIM else {}
        float_step = self.at("float_step")
        if builds:
            float_step = self.deploy("FloatStep", as_="float_step_wide", build=builds["FloatStep"])
        op_step = self.deploy("OperatorStep", as_="op_step", build=builds.get("OperatorStep"))
        self.deploy("OperatorGame", self.address(treasury) if treasury else "0x" + "00" * 20, burn_bps,
                    move_timeout, min_bond, arity, float_step, op_step, as_="game", build=builds.get("OperatorGame"))

    @property
    def escrow(self) -> str:
        """``JobEscrow.vy``, deployed on first use, trusting both games here: ``Dispute.vy`` and ``OperatorGame.vy``.

        A job names its game at posting and is settled only from that game's record of its claim.
        """
        if "escrow" not in self._at:
            self.deploy("JobEscrow", [self.contract, self.at("game")], as_="escrow")
        return self._at["escrow"]


@dataclass
class OpGameResult:
    """How one operator-level dispute ended.

    Attributes:
        winner: ``"claimant"``, ``"challenger"`` or ``"none"`` (nobody won: both parties' elements out of bound, or
            the challenger's not opened after the claimant's was out: both bonds forfeit, the claim slashed).
        how: ``"step"`` (the contract checked the claimant's element) or ``"timeout"`` (a party stopped
            moving before that; a challenger may still have opened its own element after the claimant's timeout).
        rounds: bisection rounds played (both parties' openings make one).
        gas: gas of every successful transaction from the dispute on.
        decide_gas: gas of the one-element check of the claimant's element (0 if it did not run).
        kind: the disputed operator's kind number (0 if the game ended before one was reached).
        refused: transactions the contract refused.
        lo: the agreed state index where the game ended; hi the disputed one.
        hi: see ``lo``.
        moves: gas of each successful move, in order (for the per-round gas).
        prove_gas: gas of the check of the challenger's own element, run once the claimant's was out of
            bound (0 if it did not run).
    """

    winner: str
    how: str
    rounds: int
    gas: int
    decide_gas: int
    kind: int
    refused: int
    lo: int
    hi: int
    moves: list[int] = field(default_factory=list)
    prove_gas: int = 0


def play_op(chain: OpChain, claimant: Any, challenger: Any, *, ops_root: bytes, input_state: bytes, n_layers: int,
            per_layer: int, bond: int, window: int = 86_400) -> OpGameResult:
    """Referee one operator-level dispute on ``chain``: the claimant commits, the challenger disputes.

    Args:
        chain: the deployed contracts.
        claimant: the player whose result is disputed.
        challenger: the player who disputes it.
        ops_root: the job's operator root.
        input_state: the job's input state leaf.
        n_layers: layers of the job.
        per_layer: operators per layer.
        bond: the bond each side posts (wei).
        window: the challenge window (seconds).

    Returns:
        The :class:`OpGameResult`.

    Raises:
        ContractRevert: if the commit or the dispute itself is refused (e.g. the two results agree).
    """
    for who in (claimant, challenger):
        chain.fund(who.name, 100 * bond + 10**20)
    root, result, proof = claimant.commitment()
    claim_id = chain.call(claimant.name, "commit", ops_root, input_state, n_layers, per_layer, root, result, proof,
                          window, value=bond, on="game")
    challenger.prepare(claimant)
    c_root, c_result, c_proof = challenger.commitment()
    chain.call(challenger.name, "dispute", claim_id, c_root, c_result, c_proof, value=bond, on="game")
    return referee_op(chain, claim_id, claimant, challenger, gas=chain.last_gas)


def play_op_job(chain: OpChain, provider: Any, challenger: Any | None, *, ops_root: bytes, input_state: bytes,
                n_layers: int, per_layer: int, payment: int, stake: int, bond: int, challenge_window: int = 3600,
                consumer: str = "consumer", treasury: str | None = None) -> JobOutcome:
    """Run one job through ``JobEscrow.vy`` settled by ``OperatorGame.vy``: post, accept, commit, dispute, settle.

    :func:`~vcompute.ledger.dispute_escrow.play_job`'s flow with this game's job
    id, commit and referee; the escrow is asked to finalize while the game runs
    (its refusal is counted in ``refused``). The contracts decide who is paid.

    Args:
        chain: the deployed contracts (the escrow is deployed on first use).
        provider: the operator-level player who provides (the game's claimant).
        challenger: the player who disputes, or ``None`` for nobody.
        ops_root: the job's operator root.
        input_state: the job's input state leaf.
        n_layers: layers of the job.
        per_layer: operators per layer.
        payment, stake, bond, challenge_window, consumer, treasury: as in
            :func:`~vcompute.ledger.dispute_escrow.play_job`.

    Returns:
        The :class:`~vcompute.ledger.dispute_escrow.JobOutcome` (``game`` an :class:`OpGameResult`).
    """
    spec = chain.view("job_id_of", ops_root, input_state, n_layers, per_layer, on="game")

    def commit(window: int) -> bytes:
        return chain.call(provider.name, "commit", ops_root, input_state, n_layers, per_layer,
                          *provider.commitment(), window, value=bond, on="game")

    return settle_job(chain, provider, challenger, on="game", spec=spec, commit=commit, referee=referee_op,
                      payment=payment, stake=stake, bond=bond, challenge_window=challenge_window,
                      consumer=consumer, treasury=treasury)


def referee_op(chain: OpChain, claim_id: bytes, claimant: Any, challenger: Any, *, gas: int = 0) -> OpGameResult:
    """Play a running operator-level dispute to its end; a party left without a valid move is timed out.

    Args:
        chain: the deployed contracts.
        claim_id: the disputed claim.
        claimant: the claim's player.
        challenger: the disputing player.
        gas: gas already spent on this dispute.

    Returns:
        The :class:`OpGameResult` (the winner read from the contract's state).
    """
    decide_gas = prove_gas = refused = kind = 0
    moves: list[int] = []
    timeout = chain.view("move_timeout", on="game")
    while chain.record("claims", claim_id, on="game")["state"] == _DISPUTED:
        g = chain.record("games", claim_id, on="game")
        hi, phase = g["hi"], g["phase"]
        moved = False
        if phase == _ONE_STEP:
            element = challenger.name_element(hi, claimant)
            if element is not None:
                chain.call(challenger.name, "challenge_element", claim_id, *element, on="game")
                moved = True
        elif phase in (_ELEMENT, _PROVE):
            # the claimant opens the named element; if it is out of bound, the challenger its own
            mover = claimant if phase == _ELEMENT else challenger
            args = mover.respond(hi, (g["ei"], g["ej"]))
            if args is not None:
                try:
                    fn = args.pop("fn", "decide")  # "decide_rows": an element opened with every row of its input
                    chain.call(mover.name, fn, claim_id, *args.values(), on="game")
                    moved = True
                    if phase == _ELEMENT:
                        decide_gas, kind = chain.last_gas, args["op"][0]
                    else:
                        prove_gas, kind = chain.last_gas, args["op"][0]
                except ContractRevert:
                    refused += 1
        else:
            mover = claimant if phase == 1 else challenger
            for leaves, paths in mover.reveal(list(chain.view("points", claim_id, on="game"))):
                try:
                    chain.call(mover.name, "reveal", claim_id, leaves, paths, on="game")
                except ContractRevert:
                    refused += 1
                    continue
                moved = True
                break
        if not moved:
            chain.advance(timeout)
            chain.fund("referee", 10**18)
            chain.call("referee", "timeout", claim_id, on="game")
        gas += chain.last_gas
        moves.append(chain.last_gas)
    g = chain.record("games", claim_id, on="game")
    winner = "claimant"
    if chain.record("claims", claim_id, on="game")["state"] == _SLASHED:
        winner = "none" if int(chain.view("winner", claim_id, on="game"), 16) == 0 else "challenger"
    return OpGameResult(winner, "step" if decide_gas else "timeout", g["rounds"], gas, decide_gas, kind,
                        refused, g["lo"], g["hi"], moves, prove_gas)
