"""``dispute.operator``: operator-level disputes over GELU-MLP and ReLU-MLP passes, played on chain.

Each run deploys ``protocols/OperatorGame.vy`` (with ``OperatorStep.vy`` and
``FloatStep.vy``) on an embedded revm and referees ``disputes`` games on
jobs of one shape: ``n_layers`` residual GELU-MLP blocks of width ``d`` and
hidden width ``hidden`` (six operators a block, seven with ``pre_ln``,
:class:`vcompute.verify.dispute.op_trace.MLPNet`), each job a fresh seeded
input (``net = "relu_mlp"``: the ``forward`` kind's ReLU MLP,
:class:`vcompute.verify.dispute.op_trace.ReluNet`, optionally with a softmax
output). Every game pits the honest player against one strategy of
:func:`vcompute.verify.dispute.op_players.lying_for` the net, the honest one as
claimant or as challenger, cycling through every strategy in both roles,
plus ``drift`` (another honest machine's bits) as a griefing challenger.
The contract's own settlement says who won. With ``two_liars``, that many
extra games pit two liars wrong at the same element of one operator against
each other (:func:`vcompute.verify.dispute.op_players.twin_liars`): the
contract must name nobody. ``proofs/dispute.md`` C9-C13 cite it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pydantic import Field, field_validator, model_validator

from vcompute.experiment.tasks.base import TaskParams
from vcompute.experiment.tasks.dispute import _ceil_log

__all__ = ["DisputeOperator", "DisputeOperatorParams"]

_GRIEFERS = ("drift",)
_KINDS = ("lin", "bias", "gelu", "resid", "ln", "relu", "softmax", "qk", "av", "mms", "mmp", "tr", "axpy", "axpyp",
          "reluw", "relug")
_NETS = ("gelu_mlp", "relu_mlp", "lm_prefill", "pol_mlp")


class DisputeOperatorParams(TaskParams):
    """Parameters of :class:`DisputeOperator`."""

    net: str = Field("gelu_mlp", description="the job: 'gelu_mlp' (residual GELU-MLP blocks), 'relu_mlp' (the "
                     "forward kind's ReLU MLP: d -> hidden ... -> d, lin/bias/relu a layer, a flat bisection) or "
                     "'lm_prefill' (a generate job's prefill of `rows` tokens through the `lm` model, 16 operators "
                     "a block and ln_f, a flat bisection; d, hidden, n_layers come from the model) or 'pol_mlp' "
                     "(n_layers torch SGD steps of the PoL MLP 64 -> hidden -> 10 on batches of `rows`, 20 "
                     "operators a step, 18 without momentum: checkpoints bisected, then one step's operators)")
    lm: str = Field("tiny", description="lm_prefill: the LM configuration (vcompute.workloads.lm.CONFIGS)")
    n_layers: int = Field(4, ge=1, le=4096, description="GELU-MLP blocks of the job (six operators each), or the "
                          "ReLU MLP's linear layers")
    softmax: bool = Field(False, description="relu_mlp: a softmax over each output row after the last layer")
    d: int = Field(32, ge=8, le=256, description="width of the residual stream (a multiple of 8)")
    hidden: int | None = Field(None, ge=8, le=256, description="hidden width of each MLP (a multiple of 8; "
                               "default: min(2 d, 256))")
    rows: int = Field(2, ge=1, le=256, description="batch rows of the job's input")
    momentum: bool = Field(True, description="pol_mlp: SGD with the PoL default momentum 0.9 (False: plain SGD)")
    pre_ln: bool = Field(False, description="a LayerNorm before each MLP (seven operators a block, GPT-2's ln_2)")
    disputes: int = Field(20, ge=1, le=100_000, description="games per run")
    liars: tuple[str, ...] | None = Field(None, description="lying strategies to cycle through, each in both "
                                          "roles; default: every one")
    arity: int = Field(2, ge=2, le=16, description="segments the disagreement is cut into each round")
    burn_bps: int = Field(1000, ge=0, le=10_000, description="share of the loser's bond not paid to the winner")
    max_dim: int = Field(256, ge=256, le=8192, description="the widest row the contracts take: 256 is the "
                         "checked-in build; more compiles benchmark builds with that MAX_DIM (needs vyper), e.g. "
                         "1024 for the `small` LM (3d = 768, d_ff = 1024)")
    two_liars: int = Field(0, ge=0, le=100_000, description="extra games after the `disputes`: two liars wrong at "
                           "the same element of one operator, each twin as claimant in turn (nobody may win)")

    @field_validator("d", "hidden", "max_dim")
    @classmethod
    def _multiple_of_8(cls, v: int | None) -> int | None:
        if v is not None and v % 8:
            raise ValueError(f"widths must be multiples of 8, got {v}")
        return v

    @field_validator("net")
    @classmethod
    def _known_net(cls, v: str) -> str:
        if v not in _NETS:
            raise ValueError(f"net must be one of {', '.join(_NETS)}, got {v!r}")
        return v

    @model_validator(mode="after")
    def _known_liars(self) -> DisputeOperatorParams:
        from vcompute.verify.dispute.op_players import OP_LYING
        from vcompute.verify.dispute.train_op import TRAIN_LYING

        known = (TRAIN_LYING if self.net == "pol_mlp" else OP_LYING) + _GRIEFERS
        if self.liars is not None:
            bad = [s for s in self.liars if s not in known]
            if not self.liars or bad:
                raise ValueError(f"liars must be a non-empty list of {', '.join(known)}; unknown: {bad}")
        if self.net == "pol_mlp" and self.rows % 8:
            raise ValueError(f"pol_mlp: rows is the batch, a multiple of 8; got {self.rows}")
        return self


class DisputeOperator:
    """Referee ``disputes`` operator-level games on chain and count who won.

    Metrics: ``games``, ``honest_lost``, ``cheater_won`` (targets 0, 0),
    ``undisputed`` (games that could not start: the two results agreed;
    target 0), ``rounds_mean`` / ``rounds_max`` against ``rounds_two_level``
    = ceil(log_b L) + ceil(log_b P) and ``rounds_flat`` = ceil(log_b P L)
    (``P`` = 6, or 7 with ``pre_ln``), ``gas_per_dispute``, ``gas_max``,
    ``decide_gas``, ``prove_gas`` (the challenger's own element, checked once the
    claimant's was out of bound) and per operator kind ``decide_gas_lin`` / ``_bias`` /
    ``_gelu`` / ``_resid`` / ``_ln`` / ``_relu`` / ``_softmax`` / ``_qk`` / ``_av`` and the block kinds of a
    training step ``_mms`` / ``_mmp`` / ``_tr`` / ``_axpy`` / ``_axpyp`` / ``_reluw`` / ``_relug`` (mean gas of
    the one-element check), ``timeouts``, ``refused``, ``griefer_net`` and
    ``watcher_net``; of the two-liar games (``two_liars``): ``two_liar_games``, ``nobody_won``
    (target: all of them) and ``two_liar_gas``. ``cheater_won`` counts a lying party paid in any game.

    Example:
        >>> DisputeOperator.metrics[:3]
        ('games', 'honest_lost', 'cheater_won')
    """

    Params = DisputeOperatorParams
    description = ("operator-level dispute games (layernorm, linear, bias, GELU, residual, ReLU, softmax) on chain, "
                   "honest vs liars")
    metrics = ("games", "honest_lost", "cheater_won", "undisputed", "rounds_mean", "rounds_max",
               "rounds_two_level", "rounds_flat", "gas_per_dispute", "gas_max", "decide_gas",
               *(f"decide_gas_{k}" for k in _KINDS), "prove_gas", "timeouts", "refused", "griefer_net", "watcher_net",
               "two_liar_games", "nobody_won", "two_liar_gas")

    def run(self, params: DisputeOperatorParams, seed: int) -> dict[str, Any]:
        """Play the games of one run.

        Args:
            params: validated parameters.
            seed: seeds the network, every input and where each liar lies.

        Returns:
            The metrics named in :attr:`metrics`.
        """
        from vcompute.ledger.dispute_client import ContractRevert
        from vcompute.ledger.op_dispute import OpChain, play_op
        from vcompute.verify.dispute.op_players import lying_for, make_op_player, twin_liars
        from vcompute.verify.dispute.op_trace import KIND_NAMES, MLPNet, ReluNet

        bond = 10**18
        hidden = params.hidden if params.hidden is not None else min(2 * params.d, 256)
        prompts = None
        if params.net == "lm_prefill":
            from vcompute.verify.dispute.lm_trace import prefill_net
            from vcompute.workloads.lm import config_named
            from vcompute.workloads.lm.torch_model import TransformerLM

            model = TransformerLM(config_named(params.lm), seed=seed)
            vocab = model.cfg.vocab

            def prompts(r):  # a fresh seeded prompt: the job's input state, same operators
                return prefill_net(model, [int(v) for v in r.integers(vocab, size=params.rows)],
                                   max_dim=params.max_dim)

            net, _ = prompts(np.random.default_rng(seed))
        elif params.net == "pol_mlp":
            from vcompute.verify.dispute.train_op import TRAIN_LYING, TrainOpNet, make_train_player, torch_trace
            from vcompute.workloads.training.spec import TrainSpec

            spec = TrainSpec(hidden=hidden, batch_size=params.rows, steps=params.n_layers, checkpoint_every=1,
                             momentum=0.9 if params.momentum else 0.0, seed=seed)
            net, a0 = TrainOpNet.random(spec, steps=params.n_layers, seed=seed)
            base = torch_trace(net, a0)  # one job a run; each game its own liar

            def make_op_player(strategy, net, x0, *, seed, name):  # noqa: F811 - the training job's players
                return make_train_player(strategy, net, x0, seed=seed, name=name, honest=base)

            def lying_for(net):  # noqa: F811
                return TRAIN_LYING
        elif params.net == "relu_mlp":
            widths = (params.d, *[hidden] * (params.n_layers - 1), params.d)
            net = ReluNet.random(widths, rows=params.rows, seed=seed, softmax=params.softmax)
        else:
            net = MLPNet.random(d=params.d, hidden=hidden, n_layers=params.n_layers, rows=params.rows, seed=seed,
                                pre_ln=params.pre_ln)
        chain = OpChain(burn_bps=params.burn_bps, move_timeout=3600, arity=params.arity, max_dim=params.max_dim)
        rng = np.random.default_rng(seed)
        liars = params.liars or lying_for(net) + _GRIEFERS  # a liar the net lacks an operator for: ValueError
        pairs = [(liar, hc) for liar in liars for hc in (True, False) if hc or liar not in _GRIEFERS]
        honest_lost = cheater_won = undisputed = timeouts = refused = 0
        rounds, gas, decide, prove, grief, watch = [], [], [], [], [], []
        by_kind: dict[str, list[int]] = {k: [] for k in _KINDS}
        job = dict(ops_root=net.ops_tree.root, n_layers=net.n_layers, per_layer=net.per_layer, bond=bond)
        for i in range(params.disputes):
            liar, honest_claims = pairs[i % len(pairs)]
            if params.net == "pol_mlp":
                x0 = a0
            else:
                x0 = net.random_input(seed=int(rng.integers(2**31))) if prompts is None else prompts(rng)[1]
            lie_seed = int(rng.integers(2**31))
            h = make_op_player("honest", net, x0, seed=0, name=f"h{i}")
            c = make_op_player(liar, net, x0, seed=lie_seed, name=f"l{i}")
            claimant, challenger = (h, c) if honest_claims else (c, h)
            try:
                r = play_op(chain, claimant, challenger, input_state=h.trace.leaves[0], **job)
            except ContractRevert as e:
                if "results agree" not in e.reason:
                    raise
                undisputed += 1
                continue
            honest_role = "claimant" if honest_claims else "challenger"
            honest_lost += r.winner != honest_role
            # paid, not merely named winner: the lying party's credit with the contract
            cheater_won += chain.view("credits", chain.address(c.name), on="game") > 0
            timeouts += r.how == "timeout"
            refused += r.refused
            rounds.append(r.rounds)
            gas.append(r.gas)
            if r.decide_gas:
                decide.append(r.decide_gas)
                by_kind[KIND_NAMES[r.kind]].append(r.decide_gas)
            if r.prove_gas:
                prove.append(r.prove_gas)
            net_ether = chain.view("credits", chain.address(challenger.name), on="game") - bond
            (grief if honest_claims else watch).append(net_ether / bond)
        nobody, twin_gas = 0, []
        for i in range(params.two_liars):  # after the other games: their draws are unchanged
            x0 = net.random_input(seed=int(rng.integers(2**31))) if prompts is None else prompts(rng)[1]
            a, b = twin_liars(net, x0, seed=int(rng.integers(2**31)), names=(f"ta{i}", f"tb{i}"))
            claimant, challenger = (a, b) if i % 2 == 0 else (b, a)
            r = play_op(chain, claimant, challenger, input_state=a.honest_trace.leaves[0], **job)
            nobody += r.winner == "none"
            cheater_won += sum(chain.view("credits", chain.address(t.name), on="game") > 0 for t in (a, b))
            twin_gas.append(r.gas)
        played = max(len(rounds), 1)
        nan = float("nan")
        out = {
            "games": params.disputes,
            "honest_lost": honest_lost,
            "cheater_won": cheater_won,
            "undisputed": undisputed,
            "rounds_mean": float(np.mean(rounds)) if rounds else nan,
            "rounds_max": int(max(rounds)) if rounds else 0,
            "rounds_two_level": _ceil_log(net.n_layers, params.arity) + _ceil_log(net.per_layer, params.arity),
            "rounds_flat": _ceil_log(net.n_ops, params.arity),
            "gas_per_dispute": float(np.mean(gas)) if gas else nan,
            "gas_max": int(max(gas)) if gas else 0,
            "decide_gas": float(np.mean(decide)) if decide else nan,
            "prove_gas": float(np.mean(prove)) if prove else nan,
            "two_liar_games": params.two_liars,
            "nobody_won": nobody,
            "two_liar_gas": float(np.mean(twin_gas)) if twin_gas else nan,
            "timeouts": timeouts / played,
            "refused": refused / played,
            "griefer_net": float(np.mean(grief)) if grief else nan,
            "watcher_net": float(np.mean(watch)) if watch else nan,
        }
        for k in _KINDS:
            out[f"decide_gas_{k}"] = float(np.mean(by_kind[k])) if by_kind[k] else nan
        return out
