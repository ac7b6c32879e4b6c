"""Proof-of-learning against honest and spoofing provers, under several verifier settings.

One run trains one transcript (honest or an adversary's) and verifies it
``trials`` times with independent challenge randomness (replays of a
segment are memoised within the run, as their result is deterministic).
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
from pydantic import Field

from vcompute.experiment.tasks.base import TaskParams

__all__ = ["PoLDetection", "PoLCalibration", "SETTINGS"]

#: Verifier settings compared in the experiments: ``ours`` (final-model rule and chain check as
#: configured), ``final_only`` (ours without the chain check), ``before`` (ours without either:
#: the scheme before the final-model rule), the top-Q / random ablations and the reference.
SETTINGS = ("ours", "final_only", "before", "topq_only", "random_only", "reference")

#: Metrics of one verifier setting, suffixed ``_<setting>`` (plain too when there is one setting).
_PER_SETTING = ("detected", "reexecuted_fraction", "bytes_fraction", "verify_s")


class PoLDetectionParams(TaskParams):
    """Parameters of :class:`PoLDetection`."""

    framework: Literal["torch", "jax"] = "torch"
    model: Literal["mlp", "cnn"] = "mlp"
    dataset: Literal["digits", "synthetic"] = "digits"
    steps: int = Field(200, ge=2, le=100000)
    checkpoint_every: int = Field(2, ge=1, description="k: steps per segment")
    batch_size: int = Field(32, ge=1)
    adversary: str = Field("honest", description="honest or a name in vcompute.workloads.training.pol.adversaries")
    adversary_params: dict[str, float | str] = Field(default_factory=dict)
    settings: list[Literal["ours", "final_only", "before", "topq_only", "random_only", "reference"]] = Field(
        default_factory=lambda: ["ours"], description="verifier settings, each applied to the same transcript")
    top_q: int = Field(1, ge=0, description="top-Q per metric (the reference uses 2)")
    random_segments: int = Field(6, ge=0, description="segments drawn at random after the commitment")
    max_segments: int | None = Field(None, ge=1, description="cap on segments opened (ours); None: no cap")
    delta: float | None = Field(None, ge=0, description="relative delta (ours); None: the calibrated DEFAULT_DELTA")
    final_segments: int = Field(1, ge=0, description="last segments always replayed (ours; the final-model rule)")
    chain_check: bool = Field(True, description="check the declared table between held checkpoints (ours)")
    anchors: int = Field(0, ge=0, description="extra checkpoints downloaded as chain-check anchors (ours)")
    reference_delta: float = Field(0.03, ge=0, description="absolute delta of the reference setting")
    trials: int = Field(20, ge=1, le=10000, description="independent verifications of the transcript")

    def model_post_init(self, __context: Any) -> None:
        from vcompute.workloads.training.pol.adversaries import ADVERSARIES

        if self.adversary not in ADVERSARIES:
            raise ValueError(f"unknown adversary {self.adversary!r}; known: {', '.join(ADVERSARIES)}")
        if self.steps % self.checkpoint_every:
            raise ValueError("steps must be a multiple of checkpoint_every")


def make_verifier(p: PoLDetectionParams, setting: str, cache: dict):
    """The verifier of ``setting`` (replays memoised in ``cache``)."""
    from vcompute.verify.pol import DEFAULT_DELTA, PoLVerifier

    if setting == "reference":
        return PoLVerifier.reference(delta=p.reference_delta, top_q=max(p.top_q, 1), replay_cache=cache)
    top, rnd = p.top_q, p.random_segments
    if setting == "topq_only":
        rnd = 0
    elif setting == "random_only":
        top = 0
    delta = DEFAULT_DELTA if p.delta is None else p.delta
    if setting in ("topq_only", "random_only"):  # ablations of the scheme before the final-model rule
        return PoLVerifier(top_q=top, random_segments=rnd, delta=delta, replay_cache=cache, final_segments=0,
                           chain_check=False)
    final = {"ours": p.final_segments, "final_only": max(p.final_segments, 1), "before": 0}[setting]
    return PoLVerifier(top_q=top, random_segments=rnd, delta=delta, replay_cache=cache, max_segments=p.max_segments,
                       final_segments=final, chain_check=p.chain_check and setting == "ours",
                       anchors=p.anchors if setting == "ours" else 0)


class PoLDetection:
    """Verifies one (honest or spoofed) transcript ``trials`` times.

    Metrics, per verifier setting ``S`` in ``settings``: ``detected_S``
    (fraction of verifications rejecting), ``reexecuted_fraction_S``,
    ``bytes_fraction_S`` (mean downloaded bytes over the full transcript's),
    ``verify_s_S`` (median); with one setting also without the suffix. Per
    run: ``cheated``, ``attack_cost`` (the prover's gradient evaluations over
    honest training's), ``prove_s``, ``gap_to_stolen``.
    """

    Params = PoLDetectionParams
    description = "PoL detection rate and verification cost against one prover behaviour"
    metrics = ("cheated", "attack_cost", "prove_s", "gap_to_stolen",
               *_PER_SETTING,
               *(f"{m}_{s}" for s in SETTINGS for m in _PER_SETTING))

    def run(self, params: PoLDetectionParams, seed: int) -> dict[str, Any]:
        """Build the job for ``seed``, run the adversary once, verify under every setting."""
        from vcompute.workloads.training.pol.adversaries import run_adversary
        from vcompute.workloads.training import TrainSpec, make_training_job

        spec = TrainSpec(framework=params.framework, model=params.model, dataset=params.dataset,
                         steps=params.steps, checkpoint_every=params.checkpoint_every,
                         batch_size=params.batch_size, seed=int(seed))
        job = make_training_job(spec)
        t = time.perf_counter()
        spoof = run_adversary(params.adversary, job, "mallory", rng=np.random.default_rng(seed),
                              **params.adversary_params)
        prove_s = time.perf_counter() - t
        cache: dict = {}
        out: dict[str, Any] = {"cheated": int(params.adversary != "honest"),
                               "attack_cost": float(spoof.cost_fraction), "prove_s": prove_s,
                               "gap_to_stolen": float(spoof.info.get("relative_gap_to_stolen", float("nan")))}
        for setting in params.settings:
            out.update(self._verify(params, setting, job, spoof, seed, cache))
        if len(params.settings) == 1:  # plain names when there is one setting
            suffix = "_" + params.settings[0]  # whole: "detected_topq_only" -> "detected"
            out.update({k[:-len(suffix)]: v for k, v in list(out.items()) if k.endswith(suffix)})
        return out

    @staticmethod
    def _verify(params, setting, job, spoof, seed, cache) -> dict[str, Any]:
        from vcompute.verify.pol import pol_context

        verifier = make_verifier(params, setting, cache)
        rejected, frac, nbytes, secs, errs = 0, [], [], [], []
        for trial in range(params.trials):
            ctx = pol_context([spoof.claim], {"mallory": spoof.transcript}, seed=seed * 100003 + trial)
            v = verifier.verify(job, [spoof.claim], ctx)
            rejected += not v.accepted
            frac.append(v.cost.reexecuted_fraction)
            nbytes.append(v.cost.evidence_bytes)
            secs.append(v.cost.seconds)
            errs.append(v.details.get("max_error", float("nan")))
        return {
            f"detected_{setting}": rejected / params.trials,
            f"reexecuted_fraction_{setting}": float(np.mean(frac)),
            f"bytes_fraction_{setting}": float(np.mean(nbytes) / spoof.transcript.nbytes),
            f"verify_s_{setting}": float(np.median(secs)),
        }


class PoLCalibrationParams(TaskParams):
    """Parameters of :class:`PoLCalibration`."""

    framework: Literal["torch", "jax"] = "torch"
    model: Literal["mlp", "cnn"] = "mlp"
    steps: int = Field(200, ge=2)
    checkpoint_every: int = Field(2, ge=1)
    segments: int = Field(10, ge=1, description="segments replayed per transcript")
    safety: float = Field(100.0, gt=0)


class PoLCalibration:
    """Honest replay error (threads, framework) against cheap-precision training (fp16/bf16 autocast).

    Metrics: per condition (``same``, ``threads``, ``cross_framework``,
    ``float16``, ``bfloat16``) the min, median and max relative error
    (``same_max``, ``float16_min``, ...); ``honest_max`` (largest honest
    error), ``cheap_min`` (smallest cheap-precision error), their ratio
    ``separation``, the ``delta`` between them
    (:func:`~vcompute.verify.pol.calibrate.calibrated_delta`), and the
    reference's absolute error under unseeded augmentation
    (``reference_abs_max``, ``reference_abs_median``).
    """

    Params = PoLCalibrationParams
    description = "honest vs cheap-precision PoL reproduction error and the delta between them"
    # calibrate() reports "unseeded_augmentation" as the reference's absolute error, not a relative one
    metrics = (*(f"{c}_{s}" for c in ("same", "threads", "cross_framework", "float16", "bfloat16")
                 for s in ("min", "median", "max")),
               "honest_max", "cheap_min", "separation", "delta", "reference_abs_max", "reference_abs_median")

    def run(self, params: PoLCalibrationParams, seed: int) -> dict[str, Any]:
        """Calibrate on one honest transcript per ``seed``; return the error statistics and delta."""
        from vcompute.verify.pol.calibrate import calibrate

        out = calibrate(frameworks=[params.framework], models=[params.model], seeds=[seed],
                        segments=params.segments, safety=params.safety, steps=params.steps,
                        checkpoint_every=params.checkpoint_every)
        m = {f"{c}_{s}": st.get(s, float("nan")) for c, st in out["relative"].items()
             for s in ("min", "median", "max")}
        cheap = out["cheap_min"]
        m.update(honest_max=out["honest_max"], cheap_min=float("nan") if cheap is None else cheap,
                 separation=out["separation"], delta=out["delta"],
                 reference_abs_max=out["reference_absolute"].get("max", float("nan")),
                 reference_abs_median=out["reference_absolute"].get("median", float("nan")))
        return m
