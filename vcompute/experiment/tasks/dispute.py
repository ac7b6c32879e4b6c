"""``dispute.games``: the dispute game played on chain by honest and adversarial players.

Each run deploys ``protocols/Dispute.vy`` on an embedded revm and referees
``disputes`` games on jobs of one network shape (``n_layers`` layers of
``width`` x ``width``, batch ``rows``; ``kind`` int8 or float32), each job a
fresh seeded input (``kind = "train"``: a linear model's SGD transcript,
:mod:`vcompute.verify.dispute.train_trace`, each game from fresh initial
weights). Every game pits one honest player against one liar (a
strategy of :data:`vcompute.verify.dispute.players.LYING` or
:data:`vcompute.verify.dispute.float_players.FLOAT_LYING`), the honest one
as claimant or as challenger, cycling through every strategy in both roles;
float32 runs add ``drift`` (a valid result with other bits) as a griefing
challenger. With ``escrow``, each game is a whole job in
``protocols/JobEscrow.vy`` settled by the game
(:func:`vcompute.ledger.dispute_escrow.play_job`). The contracts' own
settlement says who won and who was paid. ``proofs/dispute.md`` cites it.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from pydantic import Field, field_validator, model_validator

from vcompute.experiment.tasks.base import TaskParams

__all__ = ["DisputeGames", "DisputeGamesParams"]

_FLOAT_GRIEFERS = ("drift",)
_TARGETS = 8  # outputs of the linear model a "train" job fits


class DisputeGamesParams(TaskParams):
    """Parameters of :class:`DisputeGames`."""

    n_layers: int = Field(5, ge=1, le=1024, description="layers of the job (the trace has one more leaf)")
    width: int = Field(32, ge=32, le=256, description="layer width (a multiple of 32)")
    rows: int = Field(2, ge=1, le=256, description="batch rows of the job's input")
    disputes: int = Field(14, ge=1, le=100_000, description="games per run")
    kind: Literal["int8", "float32", "train"] = Field(
        "int8", description="the job: an int8 network (Freivalds over F_p on chain), a float32 one (one element "
        "against its rounding bound), or a training transcript (n_layers SGD steps of a linear model with "
        "width - 8 features and 8 targets, its checkpoints the trace; rows is unused)")
    liars: tuple[str, ...] | None = Field(None, description="lying strategies to cycle through (each in both "
                                          "roles); default: every one of the kind")
    escrow: bool = Field(False, description="play each game as a whole JobEscrow job settled by the game")
    arity: int = Field(2, ge=2, le=16, description="segments the disagreement is cut into each round (2: bisection)")
    burn_bps: int = Field(1000, ge=0, le=10_000, description="share of the loser's bond not paid to the winner")

    @field_validator("width")
    @classmethod
    def _width_multiple_of_32(cls, v: int) -> int:
        if v % 32:
            raise ValueError(f"width must be a multiple of 32, got {v}")
        return v

    @model_validator(mode="after")
    def _known_liars(self) -> DisputeGamesParams:
        known = _liars(self.kind)
        if self.liars is not None:
            bad = [s for s in self.liars if s not in known]
            if not self.liars or bad:
                raise ValueError(f"liars of a {self.kind} job must be a non-empty list of {', '.join(known)}; "
                                 f"unknown: {bad}")
        return self


def _liars(kind: str) -> tuple[str, ...]:
    if kind == "int8":
        from vcompute.verify.dispute.players import LYING

        return LYING
    from vcompute.verify.dispute.float_players import FLOAT_LYING

    # a skipped step (a lazy trainer) is the training transcript's own attack
    return tuple(s for s in FLOAT_LYING if kind == "train" or s != "skip") + _FLOAT_GRIEFERS


def _ceil_log(n: int, b: int) -> int:
    """``ceil(log_b n)`` in exact integers (floats round ``log_4 64`` up to 3.0000000000000004)."""
    r = 0
    while b**r < n:
        r += 1
    return r


class DisputeGames:
    """Referee ``disputes`` games on chain and count who won.

    Metrics: ``games``, ``honest_lost`` and ``cheater_won`` (counts; targets
    0 and 0), ``rounds_mean`` / ``rounds_max`` against ``rounds_bound`` =
    ceil(log_arity n_layers), ``gas_per_dispute`` (mean gas from the dispute to
    its settlement), ``gas_max``, ``decide_gas`` (mean gas of the on-chain
    last-step check), ``timeouts`` (share settled by a missed move),
    ``refused`` (transactions the contract refused, per game),
    ``griefer_net`` and ``watcher_net`` (a challenger's net ether, in bonds,
    when it disputes an honest result / a wrong one), and with ``escrow``
    ``escrow_wrong`` (jobs whose escrow paid anyone but the honest party:
    target 0) and ``stake_to_winner`` (the stake share the honest winner
    was paid, over the jobs the honest challenger won).

    Example:
        >>> DisputeGames.metrics[:3]
        ('games', 'honest_lost', 'cheater_won')
    """

    Params = DisputeGamesParams
    description = "on-chain dispute games, honest against lying players: who wins, rounds, gas"
    metrics = ("games", "honest_lost", "cheater_won", "rounds_mean", "rounds_max", "rounds_bound",
               "gas_per_dispute", "gas_max", "decide_gas", "timeouts", "refused", "griefer_net", "watcher_net",
               "escrow_wrong", "stake_to_winner")

    def run(self, params: DisputeGamesParams, seed: int) -> dict[str, Any]:
        """Play the games of one run.

        Args:
            params: validated parameters.
            seed: seeds the network, every input and where each liar lies.

        Returns:
            The metrics named in :attr:`metrics`.
        """
        from vcompute.ledger.dispute_client import DisputeChain, play
        from vcompute.ledger.dispute_escrow import play_job

        bond = stake = payment = 10**18
        dims = (params.width,) * (params.n_layers + 1)
        if params.kind == "int8":
            from vcompute.verify.dispute.players import make_player as make
            from vcompute.verify.dispute.trace import QuantNet

            net = QuantNet.random(dims=dims, rows=params.rows, seed=seed)
        elif params.kind == "float32":
            from vcompute.verify.dispute.float_players import make_float_player as make
            from vcompute.verify.dispute.float_trace import FloatNet

            net = FloatNet.random(dims=dims, rows=params.rows, seed=seed)
        else:
            from vcompute.verify.dispute.float_players import make_float_player as make
            from vcompute.verify.dispute.train_trace import initial_checkpoint, linear_training_job

            net, _ = linear_training_job(steps=params.n_layers, features=params.width - _TARGETS, targets=_TARGETS,
                                         batch=16, eta=0.05, seed=seed)
        chain = DisputeChain(burn_bps=params.burn_bps, move_timeout=3600, arity=params.arity)
        rng = np.random.default_rng(seed)
        liars = params.liars or _liars(params.kind)
        # a valid result with other bits is adopted by an honest challenger (nothing to dispute): it only grieves
        pairs = [(liar, honest_claims) for liar in liars for honest_claims in (True, False)
                 if honest_claims or liar not in _FLOAT_GRIEFERS]
        honest_lost = cheater_won = timeouts = refused = escrow_wrong = 0
        rounds, gas, decide, to_winner = [], [], [], []
        grief, watch = [], []
        for i in range(params.disputes):
            liar, honest_claims = pairs[i % len(pairs)]
            input_seed = int(rng.integers(2**31))
            x0 = (initial_checkpoint(params.width - _TARGETS, _TARGETS, seed=input_seed) if params.kind == "train"
                  else net.random_input(seed=input_seed))
            lie_seed = int(rng.integers(2**31))
            h = make("honest", net, x0, seed=0, name=f"h{i}")
            c = make(liar, net, x0, seed=lie_seed, name=f"l{i}")
            claimant, challenger = (h, c) if honest_claims else (c, h)
            job = dict(ops_root=net.ops_tree.root, input_state=h.honest_trace.leaves[0], bond=bond)
            if params.escrow:
                out = play_job(chain, claimant, challenger, payment=payment, stake=stake, challenge_window=3600, **job)
                r = out.game
                paid = out.escrow_credits
                if honest_claims:
                    escrow_wrong += out.job_state != "finalized" or paid[claimant.name] != payment + stake
                else:
                    share = stake * params.burn_bps // 10_000
                    escrow_wrong += out.job_state != "slashed" or paid[challenger.name] != stake - share \
                        or paid[claimant.name] != 0
                    to_winner.append(paid[challenger.name] / stake)
            else:
                r = play(chain, claimant, challenger, **job)
            honest_role = "claimant" if honest_claims else "challenger"
            honest_lost += r.winner != honest_role
            cheater_won += r.winner not in (honest_role, "none")
            timeouts += r.how == "timeout"
            refused += r.refused
            rounds.append(r.rounds)
            gas.append(r.gas)
            if r.decide_gas:
                decide.append(r.decide_gas)
            # the claimant's own bond comes back only when its claim finalizes: count what the game paid
            net_ether = chain.view("credits", chain.address(challenger.name)) - bond
            (watch if honest_claims is False else grief).append(net_ether / bond)
        out = {
            "games": params.disputes,
            "honest_lost": honest_lost,
            "cheater_won": cheater_won,
            "rounds_mean": float(np.mean(rounds)),
            "rounds_max": int(max(rounds)),
            "rounds_bound": _ceil_log(params.n_layers, params.arity),
            "gas_per_dispute": float(np.mean(gas)),
            "gas_max": int(max(gas)),
            "decide_gas": float(np.mean(decide)) if decide else float("nan"),
            "timeouts": timeouts / params.disputes,
            "refused": refused / params.disputes,
            "griefer_net": float(np.mean(grief)) if grief else float("nan"),
            "watcher_net": float(np.mean(watch)) if watch else float("nan"),
        }
        if params.escrow:
            out["escrow_wrong"] = escrow_wrong
            out["stake_to_winner"] = float(np.mean(to_winner)) if to_winner else float("nan")
        return out
