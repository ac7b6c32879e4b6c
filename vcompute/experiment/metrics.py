"""Units and meanings of the metrics experiment tasks return.

Every metric a built-in task declares has an entry here: its unit and one
line saying what it is, and when it can be ``nan``, why. The table legend,
the plot axes, ``vcompute list metrics`` and the experiments catalogue all
read them from :func:`metric_info`. A third-party task declares its own with
a ``metric_info`` mapping (name -> :class:`MetricInfo`) on the task class;
those take precedence.

Units used: ``fraction`` (a share in [0, 1]), ``flag`` (0 or 1), ``count``,
``s`` (seconds), ``nats`` (cross-entropy, natural log), ``h`` (hours), ``USD``, ``ratio`` (dimensionless, one cost
over another), ``rel. error`` (|a - b| / scale), ``text``, ``gas`` (EVM gas),
``bonds`` (ether in units of the dispute bond).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MetricInfo", "metric_info", "task_metric_infos"]


@dataclass(frozen=True)
class MetricInfo:
    """The unit and meaning of one metric.

    Attributes:
        unit: the unit (see the module docstring for the vocabulary).
        meaning: one line: what the number is.
        nan: when the metric is ``nan`` and why (empty: it never is).
    """

    unit: str
    meaning: str
    nan: str = ""

    def legend(self) -> str:
        """``meaning [unit]`` plus the nan note, for a table legend."""
        text = f"{self.meaning} [{self.unit}]"
        return f"{text}; nan: {self.nan}" if self.nan else text


def _m(unit: str, meaning: str, nan: str = "") -> MetricInfo:
    return MetricInfo(unit, meaning, nan)


_FREIVALDS: dict[str, MetricInfo] = {
    "detected": _m("fraction", "share of claims the verifier rejected",
                   "the behaviour does not apply to the dtype (see not_applicable)"),
    "cheated": _m("flag", "1 if the provider behaviour is not honest"),
    "applicable": _m("flag", "0 when the behaviour has no meaning for the dtype (e.g. NaN in an int8 product)"),
    "not_applicable": _m("text", "why the behaviour does not apply (empty when it does)"),
    "verify_s": _m("s", "median wall-clock seconds of one verification"),
    "compute_s": _m("s", "median wall-clock seconds of the honest product"),
    "verify_over_compute": _m("ratio", "verify_s / compute_s: what checking costs next to computing"),
    "max_error_ratio": _m("ratio", "largest |A(BR) - CR| over its tolerance seen (>1 rejects)"),
    "tolerance_over_rms": _m("ratio", "median row tolerance (minimum detectable single-entry error) over RMS(C)"),
    "false_accept_bound": _m("fraction", "the proven bound on accepting a wrong product: 2^-k (p^-k for integers)"),
    "reexecution_over_compute": _m("ratio", "what checking by re-execution costs next to computing (1)"),
    "named_bad_layer": _m("flag", "1 if the first bad layer reported is the cheated one"),
    "inference_s": _m("s", "median wall-clock seconds of one forward pass"),
    "verify_over_inference": _m("ratio", "verify_s / inference_s of the whole-model check"),
    "min_detectable": _m("ratio", "smallest perturbation (x RMS(C)) caught in >= target of the checks"),
    "detected_at_min": _m("fraction", "detection rate at min_detectable"),
    "detected_below": _m("fraction", "detection rate at 0.9 x min_detectable"),
    "honest_rejects": _m("count", "honest checks of the same job rejected (must be 0)"),
}

_POL: dict[str, MetricInfo] = {
    "cheated": _m("flag", "1 if the prover behaviour is not honest"),
    "attack_cost": _m("ratio", "the prover's gradient evaluations over honest training's"),
    "prove_s": _m("s", "seconds the prover spent producing the transcript"),
    "gap_to_stolen": _m("rel. error", "distance of the claimed final model to the stolen one",
                        "the adversary starts from no stolen model"),
    "detected": _m("fraction", "share of verifications that rejected the transcript"),
    "reexecuted_fraction": _m("fraction", "share of the training steps the verifier replayed"),
    "bytes_fraction": _m("fraction", "bytes downloaded over the full transcript's bytes"),
    "verify_s": _m("s", "median wall-clock seconds of one verification"),
    "delta": _m("rel. error", "the replay tolerance delta the calibration implies"),
    "reference_abs_max": _m("abs. error", "largest absolute replay error of the reference verifier "
                            "under unseeded augmentation"),
    "reference_abs_median": _m("abs. error", "median absolute replay error of the reference verifier "
                               "under unseeded augmentation"),
    "honest_max": _m("rel. error", "largest honest replay error over every honest condition"),
    "cheap_min": _m("rel. error", "smallest replay error of training at a cheaper precision claimed as fp32"),
    "separation": _m("ratio", "cheap_min / honest_max: the gap the calibrated delta sits in"),
}

_REPLICATION: dict[str, MetricInfo] = {
    "error_rate": _m("fraction", "share of jobs whose accepted result was wrong (simulated)"),
    "error_lo": _m("fraction", "lower end of the 95% Wilson interval of the error rate"),
    "error_hi": _m("fraction", "upper end of the 95% Wilson interval of the error rate"),
    "formula": _m("fraction", "the error (or wrong results per identity) the closed-form model predicts"),
    "within_ci": _m("flag", "1 if the formula lies in the simulated 95% interval"),
    "redundancy": _m("ratio", "results computed per job (replicas, spot-checks included)"),
    "formula_redundancy": _m("ratio", "the redundancy the closed-form model predicts"),
    "trials": _m("count", "jobs simulated"),
    "wrong_accepted": _m("fraction", "share of jobs whose canonical (accepted) result was wrong"),
    "accepted": _m("fraction", "share of jobs that reached an accepted result"),
    "residual_error": _m("fraction", "wrong results accepted per result accepted",
                         "no result was accepted"),
    "overhead": _m("ratio", "extra results computed per accepted result (0: no replication)"),
    "meets_target": _m("flag", "1 if residual error and overhead are both within the targets"),
    "unreplicated_share": _m("fraction", "share of jobs the policy ran once, unchecked"),
    "banned": _m("count", "hosts the policy banned"),
    "backtracked": _m("count", "accepted results re-executed after their host was caught"),
    "slowdown": _m("ratio", "turns per entry, spot-checks included"),
    "caught": _m("count", "saboteurs caught"),
    "unfinished": _m("count", "entries without an accepted result at the end"),
    "voting_m": _m("count", "smallest M with err(M, f s) <= 1 - threshold (M-first voting)"),
    "voting_redundancy": _m("ratio", "M-first voting's expected replicas per entry for that M"),
    "slowdown_over_voting": _m("ratio", "slowdown over M-first voting's at the same error"),
    "wrong_per_identity": _m("count", "wrong results accepted per identity before it is caught (mean)"),
    "se": _m("count", "standard error of wrong_per_identity"),
    "within_4se": _m("flag", "1 if the formula lies within 4 standard errors of the mean"),
    "over_formula": _m("ratio", "measured wrong acceptance over the independent-voter formula "
                       "(> 1: the formula understates it)", ""),
    "coordinated_bound": _m("fraction", "the bound for colluders who coordinate when to cheat: "
                            "s x majority_error(k, phi)"),
    "bound_holds": _m("flag", "1 if the coordinated bound is not below the measured 3-sigma interval"),
    "bound_within_ci": _m("flag", "1 if the coordinated bound lies inside the measured 3-sigma interval"),
    "over_target": _m("ratio", "measured error over the target error 1 - threshold"),
    "caught_per_cheat": _m("fraction", "share of the cheater's cheats that were caught"),
    "claimed_per_cheat": _m("fraction", "the claimed catch probability per cheat, q + (1-q) p"),
    "cheat_within_4se": _m("flag", "1 if caught_per_cheat lies within 4 standard errors of the claim"),
    "cheats": _m("count", "cheats per identity (mean)"),
}

_INFERENCE: dict[str, MetricInfo] = {
    "generations": _m("count", "honest generations verified"),
    "false_rejects": _m("count", "honest generations rejected (must be 0)"),
    "false_reject_rate": _m("fraction", "false_rejects / generations"),
    "max_rel_err": _m("rel. error", "largest honest error of a committed activation entry"),
    "max_misses": _m("count", "most committed top-k entries missing from the verifier's top-k in one chunk"),
    "max_logit_err": _m("abs. error", "largest honest logit difference, provider's KV cache vs verifier's prefill"),
    "rtol": _m("rel. error", "the activation tolerance in force"),
    "max_misses_allowed": _m("count", "the missing-entry allowance in force, per chunk"),
    "max_inexact": _m("count", "most committed top-k entries in one chunk not bit-identical to the verifier's"),
    "max_inexact_allowed": _m("count", "the not-bit-identical allowance in force, per chunk",
                              "nan where the precision sets none (float32)"),
    "max_mass_err": _m("abs. error", "largest difference of the nucleus mass ranked before a sampled token, "
                       "provider's logits against the verifier's"),
    "max_logit_err_top": _m("abs. error", "largest honest logit difference over the tokens the token rule decides "
                            "on: either side's 0.99 nucleus at temperature 1 (argmax and every job's nucleus)"),
    "mass_needed": _m("abs. error", "least mass_atol that keeps the verifier's nucleus bounds around the "
                      "provider's nucleus (sampled jobs; 0 for greedy)"),
    "logit_top_headroom": _m("ratio", "logit_atol over max_logit_err_top (> 1: the decided logits are covered)"),
    "mass_headroom": _m("ratio", "mass_atol over mass_needed (> 1: the nucleus bounds hold)",
                        "nan where the precision sets no mass_atol; inf-like where mass_needed is 0"),
    "mass_atol": _m("abs. error", "the nucleus-mass tolerance of the token check in force",
                    "nan where the precision sets none"),
    "logit_atol": _m("abs. error", "the logit tolerance of the token check in force"),
    "rel_headroom": _m("ratio", "rtol over the largest honest activation error (> 1: honest runs pass)"),
    "logit_headroom": _m("ratio", "logit_atol over the largest honest logit error (> 1: honest runs pass)"),
    "final_loss": _m("nats", "mean training cross-entropy of the last 10 steps"),
    "loss_at_150": _m("nats", "mean training cross-entropy of steps 141-150", "nan for runs of fewer steps"),
    "eval_loss": _m("nats", "mean cross-entropy over the shipped text's 128-token windows (stride 64)"),
    "unigram_entropy": _m("nats", "entropy of the shipped text's characters: the loss of a model that ignores "
                          "its context (the plateau)"),
    "embedding_cosine": _m("ratio", "mean pairwise cosine of the text's characters' embeddings (near 0: apart; "
                           "rising on the plateau)"),
    "greedy_distinct": _m("count", "fewest distinct tokens in the 48-token greedy continuations of three prompts"),
    "train_cpu_s": _m("s", "CPU seconds of the training (process time)"),
    "near_tie_rate": _m("fraction", "share of generated tokens decided by the near-tie rule"),
    "ambiguous_rate": _m("fraction", "share of sampled tokens where more than one token passes the rule"),
    "max_band_uses": _m("count", "most tokens of one honest generation that passed only by the near-tie rule"),
    "band_limit": _m("count", "band uses the count allows one generation of this length",
                     "nan where the precision's tolerance sets no band_rate"),
    "mass_gap_rate": _m("fraction", "per checked token, an upper bound on the chance that the mass bound rejects "
                        "the honest draw (a nucleus token the verifier excludes, or one it counts in that the "
                        "provider could not draw, weighted by its chance of deciding the draw)"),
    "edge_gap_rate": _m("fraction", "per checked token, the expected number of honest draws from outside the "
                        "verifier's own nucleus (the provider's chance of drawing a token its nucleus holds and the "
                        "verifier's does not)"),
    "outside_uses": _m("count", "band uses from outside the verifier's own nucleus at all, past the cut by a rank "
                       "flip or more (reported, not counted), summed over the checked claims"),
    "checked_tokens": _m("count", "generated tokens the token rule checked, summed over the run's claims"),
    "edge_uses": _m("count", "band uses from outside the verifier's nucleus beyond any rank flip within the band "
                    "(nucleus-edge uses), summed over the checked claims"),
    "edge_limit": _m("count", "nucleus-edge uses the count allows one generation of this length",
                     "nan where the precision's tolerance does not count them apart (no edge_rate) or the job "
                     "is greedy"),
    "band_rate_bound": _m("fraction", "one-sided 95% Clopper-Pearson upper bound on the band uses per checked token"),
    "edge_rate_bound": _m("fraction", "one-sided 95% Clopper-Pearson upper bound on the nucleus-edge uses per "
                          "checked token"),
    "detected": _m("fraction", "share of the adversary's generations the verifier rejected",
                   "the adversary is the honest computation at the job's precision (see not_applicable)"),
    "applicable": _m("flag", "1 if the adversary differs from honest work at the job's precision"),
    "not_applicable": _m("text", "why the adversary is honest work at this precision (empty when it is not)"),
    "by_tokens": _m("fraction", "share of trials rejected by the token check"),
    "by_activations": _m("fraction", "share of trials rejected by the activation commitment"),
    "by_inexact": _m("fraction", "share of trials rejected by the activations' bit-exactness count alone (max_inexact)"),
    "min_inexact": _m("count", "fewest committed entries not bit-identical in a trial's worst checked chunk, over trials",
                      nan="no trial's committed chunks were checked"),
    "by_evidence": _m("fraction", "share of trials rejected as malformed or unbound evidence"),
    "by_band": _m("fraction", "share of trials rejected by the band-use count alone (every other check passed)"),
    "band_uses": _m("count", "tokens that passed only by the near-tie rule, summed over the checked claims"),
    "band_use_rate": _m("fraction", "band uses per checked token", "no claim's tokens were checked"),
    "band_hist": _m("text", "band uses: jobs, over the jobs that passed every check but the band-use count"),
    "tokens_changed": _m("fraction", "share of tokens that differ from the honest generation"),
    "median_rel_err": _m("rel. error", "median committed-entry error (mean over trials)"),
    "verify_over_generate": _m("ratio", "verification seconds over honest generation seconds"),
    "generate_s": _m("s", "seconds to generate (KV cache), minimum over repeats"),
    "prefill_s": _m("s", "seconds of one prefill pass over prompt + generated tokens"),
    "verify_s": _m("s", "seconds to verify one generation"),
    "prefill_over_generate": _m("ratio", "prefill_s / generate_s"),
    "proof_bytes_per_32": _m("bytes", "proof bytes per 32 generated tokens"),
    "glue_check_s": _m("s", "CPU seconds of the sampled-glue check of one prefill trace (1 thread)"),
    "glue_over_prefill": _m("ratio", "glue_check_s / prefill_s"),
    "glue_per_trace_s": _m("s", "CPU seconds per trace of the sampled-glue check of a batch of traces of one model"),
    "glue_per_trace_over_prefill": _m("ratio", "glue_per_trace_s / prefill_s"),
    "glue_token_check_s": _m("s", "CPU seconds of the sampled-glue token check (logits recomputed where the rule "
                                  "reads them) of new_tokens nucleus-sampled tokens (1 thread)"),
    "glue_recomputed_logits": _m("count", "logits the sampled-glue token check recomputed for new_tokens tokens"),
    "glue_logit_slack": _m("abs. error", "largest per-row slack of an honest trace's logits in the token check: "
                                         "Freivalds' head tolerance plus ||hidden - LN_f(x_L)|| max ||W_j|| (logits)"),
    "prefill_gflops": _m("GFLOP/s", "the prefill's matmul FLOPs (linear layers, attention, head) over prefill_s"),
    "n": _m("count", "jobs run against the adversary"),
    "escapes": _m("count", "the adversary's claims the verifier accepted (for honest: the accepted honest claims)"),
    "escape_bound": _m("fraction", "one-sided 95% Clopper-Pearson upper bound on the escape rate",
                       "no applicable job was run"),
    "n_changed": _m("count", "jobs whose tokens differ from the honest generation's"),
    "escapes_same_tokens": _m("count", "escapes whose tokens equal the honest generation's"),
    "escape_bound_changed": _m("fraction", "95% upper bound on the escape rate over the jobs whose tokens changed",
                               "no job's tokens changed"),
    "variants": _m("text", "the precision/mode pairs run (round-robin)"),
    "escapes_by_variant": _m("text", "escapes / jobs per precision/mode pair"),
}

_SYNTHETIC: dict[str, MetricInfo] = {
    "checksum": _m("1", "sum of the computed elements (a seeded run gives the same value)"),
    "elements": _m("count", "elements computed"),
    "burn_s": _m("s", "seconds spent computing"),
}

_MARKET: dict[str, MetricInfo] = {
    "jobs_submitted": _m("count", "jobs consumers posted"),
    "jobs_matched": _m("count", "jobs matched to a provider"),
    "jobs_completed": _m("count", "jobs with a settled result"),
    "jobs_correct": _m("count", "jobs whose accepted result was correct"),
    "jobs_expired": _m("count", "jobs that found no provider before their deadline"),
    "jobs_failed": _m("count", "jobs that ended without a result (crash, timeout)"),
    "jobs_unaffordable": _m("count", "jobs no provider would take at the consumer's budget"),
    "jobs_rejected": _m("count", "results rejected by verification"),
    "wrong_accepted": _m("count", "wrong results accepted (fraud that got through)"),
    "fraud_rate": _m("fraction", "wrong results accepted per completed job"),
    "residual_error": _m("fraction", "wrong results accepted per result accepted", "no result was accepted"),
    "compute_overhead": _m("ratio", "results computed per result accepted, minus 1", "no result was accepted"),
    "fraud_loss": _m("USD", "dollars paid for wrong results that were accepted (all consumers, per run)"),
    "fraud_loss_share": _m("fraction", "fraud_loss over everything paid to providers"),
    "cheat_rate": _m("fraction", "share of all provider jobs that were cheated"),
    "caught": _m("count", "cheated results caught"),
    "false_rejects": _m("count", "honest results rejected"),
    "cost_per_correct": _m("USD", "everything consumers paid (providers, audit fees, tax) per correct result",
                           "no correct result"),
    "consumer_compensation": _m("USD", "slashed stake returned to consumers (per run)"),
    "verification_overhead": _m("ratio", "audit fees, extra replicas and tax over the results' base price"),
    "trust_overhead": _m("ratio", "extra replicas plus checkers' compute (at A100 cost) over the base price"),
    "verify_compute_share": _m("fraction", "checkers' compute cost over providers' compute cost"),
    "checks_requested": _m("count", "checks consumers asked auditors for"),
    "checks_done": _m("count", "checks auditors actually performed"),
    "check_participation": _m("fraction", "checks_done / checks_requested", "no check was requested"),
    "forced_errors": _m("count", "deliberate wrong results planted to keep auditors honest"),
    "forced_found": _m("count", "forced errors the auditors found"),
    "auditor_profit": _m("USD", "auditors' fees and rewards minus their compute cost (all auditors, per run)"),
    "wait_s": _m("s", "mean time from posting a job to its match"),
    "verify_latency_s": _m("s", "mean simulated time a check takes before its job settles (0 without checks)"),
    "time_to_settlement_s": _m("s", "mean time from posting a job to its settlement", "no job was settled"),
    "time_to_finality_s": _m("s", "mean time from posting a job until its result is final (checked, or its "
                             "challenge window closed)", "no job was settled"),
    "economy_cost_per_correct": _m("USD", "price paid for results plus checkers' and watchers' compute and dispute "
                                   "gas, per correct result", "no correct result"),
    "optimistic_disputes": _m("count", "optimistic trust: disputes played (won by watchers plus griefing)"),
    "optimistic_disputes_won": _m("count", "optimistic trust: wrong results a watcher disputed and won"),
    "optimistic_griefing": _m("count", "optimistic trust: honest results a griefer disputed (and lost)"),
    "optimistic_missed": _m("count", "optimistic trust: wrong results a watcher found only after the window closed"),
    "watcher_profit": _m("USD", "optimistic trust: mean profit per watcher (stakes and jackpots won - compute - gas)",
                         "no watcher"),
    "griefer_profit": _m("USD", "optimistic trust: mean profit per griefer (bonds lost and gas, negative)",
                         "no griefer"),
    "watch_participation": _m("fraction", "optimistic trust: jobs watchers re-executed over those drawn for them",
                              "no job was drawn for a watcher"),
    "watch_compute_usd": _m("USD", "optimistic trust: watchers' re-execution at their hardware's price (per run)"),
    "dispute_gas_usd": _m("USD", "optimistic trust: gas of the disputes played (per run)"),
    "dispute_rounds": _m("count", "optimistic trust: modelled rounds of one dispute, ceil(log2 n) over the n "
                         "committed steps (matmul: trace_steps; forward: its operators), the mix's longest"),
    "optimistic_watchers_lost": _m("count", "optimistic trust: disputes a watcher lost (a wrong result that "
                                   "stood its played game; 0 when modelled)"),
    "disputes_played": _m("count", "optimistic trust, real mode: disputes played on chain (Dispute.vy, "
                          "OperatorGame.vy)"),
    "dispute_model_agree": _m("fraction", "optimistic trust, real mode: played disputes whose contract-decided "
                              "winner is the one the model predicts (the honest party)", "no dispute played"),
    "dispute_rounds_played": _m("count", "optimistic trust, real mode: bisection rounds of a played dispute, mean",
                                "no dispute played"),
    "dispute_gas_played": _m("gas", "optimistic trust, real mode: gas of a played dispute, mean",
                             "no dispute played"),
    "dispute_gas_modelled": _m("gas", "optimistic trust, real mode: the model's gas for the same games (each "
                               "kind's, vcompute.verify.dispute.market.DISPUTE_GAS), mean", "no dispute played"),
    "dispute_commit_gas": _m("gas", "optimistic trust, real mode: gas of a provider's commit (commit_float on "
                             "Dispute.vy, commit on OperatorGame.vy), mean", "no claim committed"),
    "dispute_rounds_max": _m("count", "optimistic trust, real mode: most bisection rounds of a played dispute",
                             "no dispute played"),
    "honest_lost": _m("count", "optimistic trust, real mode: played disputes the honest party (the watcher "
                      "against a wrong result, the provider against a griefer) lost on the contract (target 0)"),
    "cheater_won": _m("count", "optimistic trust, real mode: played disputes a cheating provider won on the "
                      "contract (target 0)"),
    "utilisation": _m("fraction", "providers' busy time over their time in the market"),
    "sim_hours": _m("h", "simulated time the run covered"),
    "crashed_replicas": _m("count", "replicas lost to provider crashes"),
    "timeout_refunds": _m("count", "escrows refunded after the provider missed the deadline"),
    "departures": _m("count", "providers that left the market"),
    "banned_providers": _m("count", "providers banned after being caught"),
    "unpaid_compute": _m("USD", "compute providers spent on work that was never paid"),
    "unpaid_usd": _m("USD", "payments owed but not made at the end of the run"),
    "wasted_work": _m("USD", "compute spent on results that were discarded"),
    "paid_usd": _m("USD", "everything paid to providers (per run)"),
    "slashed_usd": _m("USD", "stake slashed from providers caught cheating (per run)"),
    "detect_latency_s": _m("s", "mean time from a cheater's first cheat to its first catch",
                           "no cheater was caught"),
    "detect_latency_jobs": _m("count", "mean jobs from a cheater's first cheat to its first catch",
                              "no cheater was caught"),
    "cheaters_caught_share": _m("fraction", "share of cheating providers caught at least once",
                                "no provider cheated"),
    "adaptive_trusted_share": _m("fraction", "with an adaptive policy: share of jobs it let run unchecked"),
    "adaptive_banned": _m("count", "with an adaptive policy: providers it banned"),
    "backtrack_corrected": _m("count", "wrong results corrected by re-executing a caught provider's history"),
    "profit_adversary": _m("USD", "mean profit per non-honest provider (payments - compute - slashed)",
                           "the market has no adversary"),
    "cheat_rate_adversary": _m("fraction", "share of the non-honest providers' jobs that were cheated",
                               "the market has no adversary"),
    "ledger_supply_usd": _m("USD", "total money on the ledger at the end of the run"),
    "ledger_conserved": _m("flag", "1 if, read from the ledger at the end, supply = holdings = minted"),
    "ledger_in_escrow_usd": _m("USD", "money left in open escrows at the end (0 when every job settled)"),
    "ledger_provider_net_usd": _m("USD", "providers' gain on the ledger (balances and stakes) over the run"),
    "settlement_gap_usd": _m("USD", "ledger_provider_net_usd minus paid - unpaid - slashed as counted (0 when they agree)"),
    "settlement_consistent": _m("flag", "1 if the ledger conserved money, no escrow is left open and there is no gap"),
    "settlement_ops": _m("count", "ledger operations of the run settled on chain (cloud bills left out)"),
    "settlement_gas": _m("gas", "gas of settling the run's ledger operations on chain (protocols/gas.json)"),
    "settlement_gas_usd": _m("USD", "settlement_gas at settlement.gas (gwei x ETH/USD of an L1 or L2 preset)"),
    "settlement_gas_usd_per_correct": _m("USD", "settlement_gas_usd per correct result", "no correct result"),
    "gain_usd": _m("USD", "what one cheat saves the cheater (compute not spent)"),
    "p_times_penalty": _m("USD", "probability of being caught times the penalty: the expected cost of a cheat"),
    "deterrence_ratio": _m("ratio", "p_times_penalty / gain_usd (>1: cheating does not pay)"),
    "backtracked": _m("count", "accepted results re-executed after their provider was caught"),
}

_HYBRID: dict[str, MetricInfo] = {
    "cost_compute": _m("USD", "price paid for results (first replica; the cloud's bill) per correct result",
                       "no correct result"),
    "cost_replicas": _m("USD", "extra replicas paid per correct result", "no correct result"),
    "cost_verification": _m("USD", "checkers' compute at the verifier's hardware price per correct result",
                            "no correct result"),
    "cost_capital": _m("USD", "cost of capital of stake locked over escrow time, per correct result",
                       "no correct result"),
    "cost_gas": _m("USD", "on-chain settlement of the decentralized side (each ledger operation's gas at "
                   "settlement.gas, or x costs.gas_usd_per_op if set) per correct result", "no correct result"),
    "cost_fraud": _m("USD", "wrong results accepted, valued at price x costs.fraud_loss_multiple, per correct "
                     "result", "no correct result"),
    "cost_misses": _m("USD", "jobs without a result, valued at costs.miss_multiple x the cloud price, per correct "
                      "result", "no correct result"),
    "job_settlement_ops": _m("count", "ledger operations of the jobs' settlement (after the accounts were set "
                             "up; cloud bills left out): what cost_gas prices"),
    "cost_all_in": _m("USD", "sum of the cost_* components: all-in cost per correct result", "no correct result"),
    "compensation_credit": _m("USD", "slashed stake paid back to consumers per correct result (not netted)",
                              "no correct result"),
    "results_correct": _m("count", "correct results on both sides (market and cloud)"),
    "cloud_share": _m("fraction", "share of jobs sent to the cloud (fallbacks included)"),
    "dec_share": _m("fraction", "share of jobs that stayed on the decentralized market"),
    "fallback_share": _m("fraction", "share of jobs sent to the cloud because their deadline was at risk"),
    "late_share": _m("fraction", "share of jobs whose market result was final after costs.finality_deadline_h "
                     "(booked as misses)"),
    "cloud_outages": _m("count", "cloud runs lost to an outage (1 - cloud.availability)"),
    "dec_cost_per_correct": _m("USD", "all-in cost per correct result of the market side alone",
                               "no correct result on the market"),
    "cloud_cost_per_correct": _m("USD", "all-in cost per correct result of the cloud side alone",
                                 "no job went to the cloud"),
    "break_even_discount": _m("fraction", "decentralized price discount vs the cloud price per PFLOP at which "
                              "both cost the same per correct result (>1: no price wins)",
                              "no correct market result, or a proof-of-learning cell on a non-training kind"),
    "price_discount": _m("fraction", "discount the market's paid prices had vs the cloud price per PFLOP",
                         "no correct market result"),
    "cloud_reference_cpc": _m("USD", "the cloud's expected cost per correct result for the market's jobs",
                              "no market job"),
    "cpc_cloud": _m("USD", "cost_all_in with every consumer cloud-only"),
    "cpc_decentralized": _m("USD", "cost_all_in with every consumer decentralized-only", "no correct result"),
    "cpc_hybrid": _m("USD", "cost_all_in with every consumer on the routed policy (params.routing: the "
                     "hybrid or bandit router)"),
    "share_cloud_cloud": _m("fraction", "cloud_share of the cloud-only run (1)"),
    "share_cloud_decentralized": _m("fraction", "cloud_share of the decentralized-only run (0)"),
    "share_cloud_hybrid": _m("fraction", "share of jobs the routed policy (params.routing) sent to the cloud"),
    "hybrid_margin": _m("ratio", "cpc_hybrid / min(cpc_cloud, cpc_decentralized) - 1 (target <= 0.02)",
                        "a proof-of-learning cell on a non-training kind"),
    "cpc_side": _m("USD", "cost_all_in with every consumer on params.side_routing (same seed)",
                   "no side_routing"),
    "share_cloud_side": _m("fraction", "share of jobs params.side_routing sent to the cloud", "no side_routing"),
    "side_margin": _m("ratio", "cpc_side / min(cpc_cloud, cpc_decentralized) - 1 (target <= 0.02)",
                      "no side_routing, or a cell not simulated"),
    "runtime_s": _m("s", "wall-clock seconds of the point's market runs (three, four with side_routing)"),
    "applicable": _m("flag", "0 for a proof-of-learning cell on a non-training job kind (not simulated)"),
}

_SEGMENT_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], MetricInfo]]] = [
    (re.compile(r"profit_(?P<b>\w+)"), lambda m: _m(
        "USD", f"mean profit per '{m['b']}' provider (payments - own compute - slashed stake)",
        f"no '{m['b']}' provider in the market")),
    (re.compile(r"cheat_rate_(?P<b>\w+)"), lambda m: _m(
        "fraction", f"share of the '{m['b']}' providers' jobs that were cheated",
        f"no '{m['b']}' provider did a job")),
    # real mode's per-job-kind table (vcompute.market.fidelity.KindStats)
    (re.compile(r"real_jobs_(?P<k>\w+)"), lambda m: _m(
        "count", f"'{m['k']}' jobs executed for real (each by every replica)")),
    (re.compile(r"verify_flops_share_(?P<k>\w+)"), lambda m: _m(
        "fraction", f"checking work per checked '{m['k']}' job as a share of its compute (FLOPs or re-executed "
        "fraction), in real mode", f"no '{m['k']}' job was checked")),
    (re.compile(r"jobs_per_s_(?P<k>\w+)"), lambda m: _m(
        "jobs/s", f"'{m['k']}' jobs per wall-clock second of execution plus verification, in real mode",
        f"no '{m['k']}' job ran")),
    (re.compile(r"verify_over_compute_(?P<k>\w+)"), lambda m: _m(
        "ratio", f"seconds verifying a checked '{m['k']}' job / seconds an honest provider executed it",
        f"no '{m['k']}' job with an honest claim was checked")),
    (re.compile(r"detection_(?P<k>\w+)"), lambda m: _m(
        "fraction", f"share of the checked cheating claims on '{m['k']}' jobs that the verdict blamed",
        f"no cheating '{m['k']}' claim was checked")),
    (re.compile(r"wrong_accepted_(?P<k>\w+)"), lambda m: _m(
        "count", f"cheating claims on '{m['k']}' jobs that stood (not blamed: missed, or not checked)")),
    # real mode's played disputes per job kind (vcompute.market.chain_disputes)
    (re.compile(r"disputes_played_(?P<k>\w+)"), lambda m: _m(
        "count", f"optimistic trust, real mode: disputes played on chain over '{m['k']}' jobs")),
    (re.compile(r"dispute_gas_played_(?P<k>\w+)"), lambda m: _m(
        "gas", f"optimistic trust, real mode: gas of a played dispute over a '{m['k']}' job, mean",
        f"no dispute over a '{m['k']}' job was played")),
    (re.compile(r"dispute_rounds_played_(?P<k>\w+)"), lambda m: _m(
        "count", f"optimistic trust, real mode: bisection rounds of a played dispute over a '{m['k']}' job, mean",
        f"no dispute over a '{m['k']}' job was played")),
    (re.compile(r"caught_by_(?P<k>\d+)"), lambda m: _m(
        "fraction", f"Kaplan-Meier P(a cheater is caught within {m['k']} jobs of its first cheat)",
        "no cheater was observed that long")),
    (re.compile(r"theory_caught_by_(?P<k>\d+)"), lambda m: _m(
        "fraction", f"the closed-form P(caught within {m['k']} jobs) at the audit rate")),
    (re.compile(r"(?P<c>same|threads|cross_framework)_(?P<s>min|max|median)"), lambda m: _m(
        "rel. error", f"{m['s']} relative replay error of honest training, condition '{m['c']}'",
        "the condition does not apply to the framework")),
    (re.compile(r"(?P<c>float16|bfloat16)_(?P<s>min|max|median)"), lambda m: _m(
        "rel. error", f"{m['s']} relative replay error of training under {m['c']} autocast claimed as fp32")),
]

_DISPUTE: dict[str, MetricInfo] = {
    "games": _m("count", "disputes refereed on chain"),
    "honest_lost": _m("count", "disputes the honest party lost (target 0)"),
    "cheater_won": _m("count", "disputes a lying party won (target 0)"),
    "rounds_mean": _m("count", "bisection rounds per dispute (both parties' openings make one round), mean"),
    "rounds_max": _m("count", "bisection rounds of the longest dispute"),
    "rounds_bound": _m("count", "ceil(log_b n_layers): the rounds a b-ary bisection needs (b = arity)"),
    "gas_per_dispute": _m("gas", "gas from the dispute to its settlement (every successful transaction), mean"),
    "gas_max": _m("gas", "gas of the most expensive dispute"),
    "decide_gas": _m("gas", "gas of the on-chain last-step check (int8: Freivalds over F_p + requantisation; "
                     "float32: one element against its rounding bound), mean",
                     "no dispute reached the one-step check (all settled by timeouts)"),
    "timeouts": _m("fraction", "share of disputes settled because a party missed its move"),
    "refused": _m("count", "transactions the contract refused per dispute (bad openings, forged steps)"),
    "griefer_net": _m("bonds", "a challenger's net ether per dispute of an honest result, in bonds",
                      "no run disputed an honest result"),
    "watcher_net": _m("bonds", "a challenger's net ether per dispute of a wrong result, in bonds",
                      "no run disputed a wrong result"),
    "escrow_wrong": _m("count", "escrowed jobs that paid anyone but the honest party (target 0)"),
    "undisputed": _m("count", "operator games that could not start: the two results agreed (target 0)"),
    "rounds_two_level": _m("count", "ceil(log_b L) + ceil(log_b P): rounds of the bisection over L layers, then "
                           "over one layer's P operators"),
    "rounds_flat": _m("count", "ceil(log_b (L P)): rounds of one bisection over all L P operators"),
    "decide_gas_lin": _m("gas", "gas of the one-element check of a linear operator (FloatStep), mean",
                         "no game ended at a linear operator"),
    "decide_gas_bias": _m("gas", "gas of the one-element check of a bias add (OperatorStep), mean",
                          "no game ended at a bias add"),
    "decide_gas_gelu": _m("gas", "gas of the one-element check of a GELU (OperatorStep, fixed point), mean",
                          "no game ended at a GELU"),
    "decide_gas_resid": _m("gas", "gas of the one-element check of a residual add (OperatorStep), mean",
                           "no game ended at a residual add"),
    "decide_gas_ln": _m("gas", "gas of the one-element check of a LayerNorm (OperatorStep: the row's statistics "
                        "and an integer square root), mean", "no game ended at a LayerNorm"),
    "decide_gas_relu": _m("gas", "gas of the one-element check of a ReLU (OperatorStep, exact), mean",
                          "no game ended at a ReLU"),
    "decide_gas_softmax": _m("gas", "gas of the one-element check of a softmax (OperatorStep: the block's exps in "
                             "fixed point), mean", "no game ended at a softmax"),
    "decide_gas_qk": _m("gas", "gas of the one-element check of an attention score (FloatStep on a query row "
                        "and a key row, both opened), mean", "no game ended at an attention score"),
    "decide_gas_av": _m("gas", "gas of the one-element check of attention times values (every row of [p | v] "
                        "sent, its root rebuilt, FloatStep), mean", "no game ended at attention times values"),
    "decide_gas_mms": _m("gas", "gas of the one-element check of a block matmul of two canvas rows (both opened, "
                         "FloatStep), mean", "no game ended at one"),
    "decide_gas_mmp": _m("gas", "gas of the one-element check of a block matmul by a committed data column "
                         "(FloatStep), mean", "no game ended at one"),
    "decide_gas_tr": _m("gas", "gas of the one-element check of a block transpose (a second row opened, exact), "
                        "mean", "no game ended at one"),
    "decide_gas_axpy": _m("gas", "gas of the one-element check of c1 l + c2 r (an SGD update, momentum or weight "
                          "decay; OperatorStep), mean", "no game ended at one"),
    "decide_gas_axpyp": _m("gas", "gas of the one-element check of the cross-entropy's logit gradient (a committed "
                           "one-hot row opened; OperatorStep), mean", "no game ended at one"),
    "decide_gas_reluw": _m("gas", "gas of the one-element check of a block ReLU (exact), mean",
                           "no game ended at one"),
    "decide_gas_relug": _m("gas", "gas of the one-element check of ReLU's backward (exact), mean",
                           "no game ended at one"),
    "prove_gas": _m("gas", "gas of the check of the challenger's own element, run once the claimant's was out of "
                    "bound (OperatorGame.vy's PROVE phase), mean", "no game reached that check"),
    "two_liar_games": _m("count", "extra games between two liars wrong at the same element of one operator "
                         "(op_players.twin_liars), each twin as claimant in turn"),
    "nobody_won": _m("count", "two-liar games the contract ended with no winner: both bonds forfeit, the claim "
                     "slashed (target: every two-liar game)"),
    "two_liar_gas": _m("gas", "gas of a two-liar dispute (bisection, both elements' checks), mean",
                       "no two-liar game was played"),
    "stake_to_winner": _m("fraction", "share of the lying provider's stake the escrow paid the honest watcher",
                          "no run had an honest watcher win"),
}

_BY_TASK_PREFIX: dict[str, dict[str, MetricInfo]] = {
    "freivalds.": _FREIVALDS,
    "inference.": _INFERENCE,
    "pol.": _POL,
    "replication.": _REPLICATION,
    "spotcheck.": _REPLICATION,
    "synthetic.": _SYNTHETIC,
    "market.hybrid": _HYBRID,
    "market.": _MARKET,
    "dispute.": _DISPUTE,
}


def _with_suffix(name: str, table: Mapping[str, MetricInfo]) -> MetricInfo | None:
    """``detected_ours`` -> ``detected`` for the setting ``ours`` (per-setting PoL metrics)."""
    for base, info in table.items():
        if name.startswith(base + "_"):
            setting = name[len(base) + 1:]
            return MetricInfo(info.unit, f"{info.meaning} (verifier setting '{setting}')", info.nan)
    return None


def metric_info(name: str, task: str | None = None, task_class: Any = None) -> MetricInfo | None:
    """The unit and meaning of metric ``name`` of ``task`` (None if unknown).

    Args:
        name: the metric.
        task: the registered task name (its family decides which table applies).
        task_class: the task class, whose own ``metric_info`` mapping wins.

    Example:
        >>> metric_info("cost_per_correct", "market.run").unit
        'USD'
    """
    own = getattr(task_class, "metric_info", None)
    if isinstance(own, Mapping) and name in own:
        return own[name]
    tables = [t for prefix, t in _BY_TASK_PREFIX.items() if task and task.startswith(prefix)]
    if task is None:
        tables = list(_BY_TASK_PREFIX.values())
    for table in tables:
        if name in table:
            return table[name]
    for pattern, make in _SEGMENT_PATTERNS:
        m = pattern.fullmatch(name)
        if m:
            return make(m)
    if task is None or task.startswith("pol."):
        # Only PoL names metrics per verifier setting (``detected_ours``); elsewhere a prefix
        # match would give a metric another one's meaning.
        info = _with_suffix(name, _POL)
        if info is not None:
            return info
    return None


def task_metric_infos(task: str) -> dict[str, MetricInfo | None]:
    """Every metric the registered ``task`` declares, with its info (None where none is known)."""
    from vcompute.experiment.tasks import TASKS

    cls = TASKS.get(task)
    return {m: metric_info(m, task, cls) for m in (getattr(cls, "metrics", None) or ())}
