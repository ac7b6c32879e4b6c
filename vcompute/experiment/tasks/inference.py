"""Experiments on verified LLM generation (``proofs/inference.md``).

- ``inference.calibration``: honest generations with the provider and the
  verifier on chosen backends, thread counts, batch sizes, sampling modes and
  precisions; the largest honest errors against the tolerances in force.
- ``inference.detection``: one adversary of :mod:`vcompute.workloads.lm.adversaries`
  against :class:`~vcompute.verify.GenerationVerifier`; which check caught it.
- ``inference.cost``: generation, prefill and verification seconds on one thread.
- ``inference.training``: the test model's training recipe (or the former one) from one seed; loss
  against the text's unigram entropy, and whether the model ignores its context.
- ``inference.glue_cost``: the sampled-glue check of a prefill trace against the prefill, one thread.

Models are the named sizes of :data:`~vcompute.workloads.lm.CONFIGS`, trained
for ``train_steps`` steps on the shipped text (seed 0) so that outputs have
realistic entropy; prompts are random windows of that text.
"""

from __future__ import annotations

import functools
import time
import zlib
from typing import Any, Literal

import numpy as np
from pydantic import Field

from vcompute.experiment.tasks.base import TaskParams

__all__ = ["InferenceCalibration", "InferenceDetection", "InferenceCost", "InferenceGlueCost", "InferenceTraining"]

Size = Literal["tiny", "small", "gpt2-small"]
Precision = Literal["float32", "bfloat16", "float16"]


@functools.lru_cache(maxsize=8)
def _base_model(size: str, train_steps: int):
    from vcompute.workloads.lm import TransformerLM, config_named, train_on_text

    import torch

    m = TransformerLM(config_named(size), seed=0)
    if train_steps:
        # on one thread, so every worker (whatever its thread count) trains the same weights
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            train_on_text(m, steps=train_steps, seed=0)
        finally:
            torch.set_num_threads(n)
    return m


@functools.lru_cache(maxsize=16)
def _model(size: str, train_steps: int, precision: str, backend: str):
    from vcompute.workloads.lm import cast, to_jax

    m = cast(_base_model(size, train_steps), precision)
    return to_jax(m) if backend == "jax" else m


def _prompt(rng: np.random.Generator, lo: int = 8, hi: int = 40) -> np.ndarray:
    from vcompute.workloads.lm import encode
    from vcompute.workloads.lm.train import shipped_text

    ids = encode(shipped_text(), bos=False)
    n = int(rng.integers(lo, hi + 1))
    s = int(rng.integers(0, len(ids) - n))
    return np.concatenate([[256], ids[s:s + n - 1]]).astype(np.int64)


def _mass(logits: np.ndarray, tokens: np.ndarray, sp: dict[str, float]) -> np.ndarray:
    """The nucleus mass ranked before each token under ``logits`` (what the sampler's top-p cut reads)."""
    from vcompute.verify.inference.tokens import mass_before

    s = np.asarray(logits, np.float64) / sp["temperature"]
    w = np.exp(s - s.max(axis=1, keepdims=True))
    return mass_before(s, w / w.sum(axis=1, keepdims=True), np.asarray(tokens))


def _mass_all(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Per row, the mass ranked before *every* token at ``temperature`` (ties by index, as the sampler ranks)."""
    s = np.asarray(logits, np.float64) / temperature
    w = np.exp(s - s.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    order = np.argsort(-s, axis=1, kind="stable")
    ws = np.take_along_axis(w, order, axis=1)
    out = np.empty_like(w)
    np.put_along_axis(out, order, np.cumsum(ws, axis=1) - ws, axis=1)
    return out


#: The decision set of the token rule's logits: either side's 0.99 nucleus at temperature 1, which holds the
#: argmax and every job's nucleus at temperature <= 1 and top-p <= 0.99 (a lower temperature only concentrates the
#: mass on the same ranking's head).
_DECISION_P = 0.99


def _decision_errors(prov: np.ndarray, ver: np.ndarray, sp: dict[str, float]) -> tuple[float, float]:
    """The honest errors the token rule's bounds must cover, where its decisions read them.

    Returns ``(logit, mass)``: the largest logit difference over the decision set (tokens outside it are in no
    job's nucleus and enter only through the mass), and for a sampled job the smallest ``mass_atol`` that keeps
    the verifier's nucleus bounds around the provider's nucleus: every token the provider could draw
    (``mass_p < top_p``) has ``mass_v < top_p + mass_atol``, and every token it could not has
    ``mass_v + mass_atol >= top_p`` (0.0 for a greedy job, whose rule reads no mass).
    """
    top = (_mass_all(prov, 1.0) < _DECISION_P) | (_mass_all(ver, 1.0) < _DECISION_P)
    logit = float(np.abs(np.asarray(prov, np.float64) - ver)[top].max())
    if sp["temperature"] <= 0:
        return logit, 0.0
    mp, mv = _mass_all(prov, sp["temperature"]), _mass_all(ver, sp["temperature"])
    inside = mp < sp["top_p"]
    need = np.where(inside, mv - sp["top_p"], sp["top_p"] - mv)
    return logit, max(0.0, float(need.max()))


def _sampling(mode: str) -> dict[str, float]:
    return {"temperature": 0.0, "top_p": 1.0} if mode == "greedy" else {"temperature": 0.8, "top_p": 0.95}


def _gap_mass(prov: np.ndarray, ver: np.ndarray, sp: dict[str, float], mass_atol: float | None) -> float:
    """An upper bound on the expected number of honest draws the mass bound rejects, summed over the rows.

    ``mass_needed`` is the worst gap over every token at the cut, however unlikely that token is to matter; this
    weighs each gap by its chance of deciding the draw, per row and in both directions of the rule:

    - a token of the provider's nucleus that the verifier's bound excludes (``mass_before >= top_p + mass_atol``
      on its side): the provider draws it with its nucleus probability, and the claim is then rejected;
    - a token outside the provider's nucleus that the verifier counts as certainly in (``mass_before + mass_atol
      < top_p`` on its side): the claim can fail only if its score beats the provider's draw, at most the chance
      ``p_j / (m + p_j)`` that it wins a Gumbel race against the provider's nucleus of mass ``m``.

    0.0 for a greedy job or no mass bound.
    """
    if sp["temperature"] <= 0 or mass_atol is None:
        return 0.0
    mp, mv = _mass_all(prov, sp["temperature"]), _mass_all(ver, sp["temperature"])
    s = np.asarray(prov, np.float64) / sp["temperature"]
    w = np.exp(s - s.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    inside = mp < sp["top_p"]
    m = np.where(inside, w, 0.0).sum(axis=1, keepdims=True)
    excluded = inside & (mv >= sp["top_p"] + mass_atol)  # the provider may draw it; the verifier rejects it
    forced = ~inside & (mv + mass_atol < sp["top_p"])  # the provider cannot draw it; the verifier's best may be it
    return float((np.where(excluded, w / m, 0.0) + np.where(forced, w / (m + w), 0.0)).sum())


def _edge_gap(prov: np.ndarray, ver: np.ndarray, sp: dict[str, float]) -> float:
    """The expected number of honest nucleus-edge draws, summed over the rows: per row, the chance that the provider's
    draw (from its own nucleus, with its own probabilities) is a token outside the verifier's nucleus. 0.0 for a
    greedy job or ``top_p = 1``."""
    if sp["temperature"] <= 0 or sp["top_p"] >= 1.0:
        return 0.0
    mp, mv = _mass_all(prov, sp["temperature"]), _mass_all(ver, sp["temperature"])
    s = np.asarray(prov, np.float64) / sp["temperature"]
    w = np.exp(s - s.max(axis=1, keepdims=True))
    inside = mp < sp["top_p"]
    m = np.where(inside, w, 0.0).sum(axis=1, keepdims=True)
    return float(np.where(inside & (mv >= sp["top_p"]), w / m, 0.0).sum())


class CalibrationParams(TaskParams):
    """Parameters of :class:`InferenceCalibration`."""

    size: Size = "tiny"
    train_steps: int = Field(600, ge=0, le=10_000, description="training steps on the shipped text")
    provider_backend: Literal["torch", "jax"] = "torch"
    verifier_backend: Literal["torch", "jax"] = "torch"
    threads: int = Field(1, ge=1, le=64, description="torch intra-op threads of the verifier (the provider uses 1)")
    batch: int = Field(1, ge=1, le=64, description="prompts per provider batch (left-padded)")
    mode: Literal["greedy", "sampled"] = "sampled"
    precision: Precision = "float32"
    generations: int = Field(16, ge=1, le=100_000, description="honest generations in this run")
    n_new: int = Field(64, ge=1, le=448, description="tokens per generation")


class InferenceCalibration:
    """Honest generations verified across a variant; the errors the tolerances must cover.

    Metrics: ``generations``, ``false_rejects``, ``false_reject_rate``; the
    largest honest ``max_rel_err`` (a committed entry), ``max_misses`` (per
    chunk) and ``max_logit_err`` (provider's KV-cache logits against the
    verifier's prefill), ``max_inexact`` (committed entries per chunk not bit-identical)
    and ``max_mass_err`` (the nucleus mass ranked before a sampled token, provider's
    logits against the verifier's); where the token rule reads them, ``max_logit_err_top`` (the
    logit error over either side's 0.99 nucleus at temperature 1) and ``mass_needed`` (the least
    ``mass_atol`` that keeps the verifier's nucleus bounds around the provider's nucleus), with
    ``logit_top_headroom`` and ``mass_headroom`` (tolerance over them); the tolerances in force (``rtol``, ``max_misses_allowed``,
    ``logit_atol``, ``max_inexact_allowed``, ``mass_atol``) and ``rel_headroom`` /
    ``logit_headroom`` (tolerance over the honest maximum); ``near_tie_rate`` and
    ``ambiguous_rate`` per token; ``max_band_uses`` (the most tokens of one generation that passed only by
    the near-tie rule) and ``band_limit`` (how many the band-use count allows one generation);
    ``checked_tokens``, ``band_uses``, ``edge_uses`` (the band uses from outside the verifier's nucleus
    beyond any rank flip within the band: :attr:`~vcompute.verify.inference.tokens.TokenCheck.edge_uses`) and
    ``outside_uses`` (those from outside the verifier's own nucleus at all:
    :attr:`~vcompute.verify.inference.tokens.TokenCheck.outside_uses`), summed
    over the run, with ``band_rate_bound`` and ``edge_rate_bound`` (their one-sided 95% Clopper-Pearson upper
    bounds per checked token, what ``band_rate`` and ``edge_rate`` are calibrated from) and ``edge_limit`` (how
    many edge uses the count allows one generation; nan where they are not counted apart); ``mass_gap_rate``
    (per token, an upper bound on the chance that the mass bound decides against the honest draw, in both
    directions of the rule: :func:`_gap_mass`; ``mass_needed`` bounds it only by its worst case) and
    ``edge_gap_rate`` (per token, the expected number of honest draws from outside the verifier's own nucleus,
    what ``outside_uses`` counts: the provider's chance of drawing a token its nucleus holds and the verifier's
    does not, :func:`_edge_gap`).
    """

    Params = CalibrationParams
    description = "honest generation errors across backends, threads, batch, sampling and precision"
    metrics = ("generations", "false_rejects", "false_reject_rate", "max_rel_err", "max_misses", "max_logit_err",
               "max_inexact", "max_mass_err", "max_logit_err_top", "mass_needed", "logit_top_headroom",
               "mass_headroom", "rtol", "max_misses_allowed", "logit_atol", "max_inexact_allowed",
               "mass_atol", "rel_headroom", "logit_headroom", "near_tie_rate", "ambiguous_rate", "max_band_uses",
               "band_limit", "checked_tokens", "band_uses", "edge_uses", "band_rate_bound", "edge_rate_bound",
               "edge_limit", "mass_gap_rate", "edge_gap_rate", "outside_uses")

    def run(self, params: CalibrationParams, seed: int) -> dict[str, Any]:
        """Execute one run."""
        import torch

        from vcompute.verify.inference import GenerationVerifier, tolerance_for
        from vcompute.experiment.tasks.inference_statistics import escape_bound
        from vcompute.verify.inference.tokens import band_limit
        from vcompute.workloads.lm import generate_batch, prefill

        p = params
        prov = _model(p.size, p.train_steps, p.precision, p.provider_backend)
        ver = _model(p.size, p.train_steps, p.precision, p.verifier_backend)
        # each variant its own prompts and seeds: 64 variants x 16 are 1024 distinct generations, not 16 repeated
        variant = f"{p.provider_backend},{p.verifier_backend},{p.threads},{p.batch},{p.mode},{p.precision}"
        rng = np.random.default_rng([seed, zlib.crc32(variant.encode())])
        sp = _sampling(p.mode)
        v = GenerationVerifier()
        tol = tolerance_for(p.precision)
        gap = edge_gap = 0.0
        rejects = misses = inexact = tokens = near = amb = most_near = edge = outside = 0
        rel = logit = mass = logit_top = mass_need = 0.0
        done = 0
        while done < p.generations:
            b = min(p.batch, p.generations - done)
            prompts = [_prompt(rng) for _ in range(b)]
            seeds = [int(s) for s in rng.integers(0, 2**31, size=b)]
            torch.set_num_threads(1)
            gens = generate_batch(prov, prompts, max_new_tokens=p.n_new, seed=seeds, **sp)
            torch.set_num_threads(p.threads)  # the reduction order differs from the provider's
            for pr, s, g in zip(prompts, seeds, gens):
                r = v.check(ver, pr, g.tokens, g.proof, seed=s, **sp)
                rejects += not r.accepted
                misses = max(misses, max(r.details.get("misses", [0])))
                inexact = max(inexact, max(r.details.get("inexact", [0])))
                rel = max(rel, max(r.details.get("max_rel_err", [0.0])))
                near += r.details.get("near_ties", 0)
                most_near = max(most_near, r.details.get("band_uses", 0))
                edge += r.details.get("edge_uses", 0)
                outside += r.details.get("outside_uses", 0)
                amb += r.details.get("ambiguous", 0)
                tokens += len(g.tokens)
                ref = prefill(ver, np.concatenate([pr, g.tokens[:-1]])).logits[len(pr) - 1:]
                logit = max(logit, float(np.abs(ref - g.logits).max()))
                if p.mode == "sampled":
                    mass = max(mass, float(np.abs(_mass(g.logits, g.tokens, sp) - _mass(ref, g.tokens, sp)).max()))
                d_logit, d_mass = _decision_errors(g.logits, ref, sp)
                logit_top, mass_need = max(logit_top, d_logit), max(mass_need, d_mass)
                gap += _gap_mass(g.logits, ref, sp, tol.mass_atol)
                edge_gap += _edge_gap(g.logits, ref, sp)
            done += b
        return {"generations": done, "false_rejects": rejects, "false_reject_rate": rejects / done,
                "max_rel_err": rel, "max_misses": misses, "max_logit_err": logit, "max_inexact": inexact,
                "max_mass_err": mass, "max_logit_err_top": logit_top, "mass_needed": mass_need,
                "logit_top_headroom": tol.logit_atol / max(logit_top, 1e-30),
                "mass_headroom": float("nan") if tol.mass_atol is None else tol.mass_atol / max(mass_need, 1e-30),
                "rtol": tol.rtol, "max_misses_allowed": tol.max_misses,
                "logit_atol": tol.logit_atol,
                "max_inexact_allowed": float("nan") if tol.max_inexact is None else tol.max_inexact,
                "mass_atol": float("nan") if tol.mass_atol is None else tol.mass_atol,
                "rel_headroom": tol.rtol / max(rel, 1e-30), "logit_headroom": tol.logit_atol / max(logit, 1e-30),
                "near_tie_rate": near / tokens, "ambiguous_rate": amb / tokens, "max_band_uses": most_near,
                "band_limit": float("nan") if tol.band_rate is None else band_limit(p.n_new, tol.band_rate,
                                                                                      tol.band_alpha),
                "checked_tokens": tokens, "band_uses": near, "edge_uses": edge, "outside_uses": outside,
                "band_rate_bound": escape_bound(near, tokens), "edge_rate_bound": escape_bound(edge, tokens),
                "mass_gap_rate": gap / tokens, "edge_gap_rate": edge_gap / tokens,
                "edge_limit": (float("nan") if tol.edge_rate is None or p.mode == "greedy" else
                               band_limit(p.n_new, tol.edge_rate, tol.edge_alpha))}


#: The parameter an adversary spec's ``:arg`` sets.
_ARG = {"weight_noise": ("magnitude", float), "quantised": ("kind", str), "malformed": ("kind", str),
        "low_precision": ("precision", str), "fewer_layers": ("n_layers", int), "short_context": ("window", int)}


def _adversary(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, arg = spec.partition(":")
    if not arg:
        return name, {}
    if name not in _ARG:
        raise ValueError(f"adversary {name!r} takes no ':arg' (those that do: {', '.join(_ARG)})")
    key, typ = _ARG[name]
    return name, {key: typ(arg)}


class DetectionParams(TaskParams):
    """Parameters of :class:`InferenceDetection`."""

    size: Size = "tiny"
    train_steps: int = Field(600, ge=0, le=10_000, description="training steps on the shipped text")
    adversary: str = Field("honest", description="a generate behaviour, optionally 'name:arg' (e.g. weight_noise:1e-3)")
    mode: Literal["greedy", "sampled"] = "sampled"
    precision: Precision = "float32"
    trials: int = Field(8, ge=1, le=100_000, description="jobs (prompt, seed) per run")
    n_new: int = Field(64, ge=1, le=448, description="tokens per generation")


class InferenceDetection:
    """One adversary against the generation verifier, over fresh jobs.

    Metrics: ``detected`` (fraction rejected), ``by_tokens`` / ``by_activations`` /
    ``by_evidence`` (which check rejected, as fractions of trials),
    ``tokens_changed`` (fraction of tokens differing from the honest run),
    ``median_rel_err`` (median committed-entry error, mean over trials),
    ``verify_over_generate`` (verifier seconds over honest generation seconds) and
    ``applicable`` (0, with only ``detected`` NaN and ``not_applicable`` returned, for an
    adversary that is honest work on the job: a bf16 model or bf16 weights on a bf16 job, greedy
    tokens for a greedy job).
    """

    Params = DetectionParams
    description = "detection of one generate adversary by GenerationVerifier"
    metrics = ("detected", "by_tokens", "by_activations", "by_evidence", "tokens_changed", "median_rel_err",
               "verify_over_generate", "applicable", "not_applicable")

    def run(self, params: DetectionParams, seed: int) -> dict[str, Any]:
        """Execute one run."""
        import torch

        from vcompute.verify import GenerationVerifier, VerifyContext
        from vcompute.workloads.lm import make_generate_job
        from vcompute.workloads.lm.job import GENERATE_BEHAVIOURS, run_generate

        torch.set_num_threads(1)
        name, kw = _adversary(params.adversary)
        if name not in GENERATE_BEHAVIOURS:
            raise ValueError(f"unknown adversary {name!r}; known: {', '.join(GENERATE_BEHAVIOURS)}")
        if (name in ("low_precision", "quantised") and params.precision in kw.values()
                or name == "greedy_for_sampled" and params.mode == "greedy"):
            return {"detected": float("nan"), "applicable": 0, "not_applicable":
                    f"{params.adversary} is the honest computation of a {params.precision} {params.mode} job"}
        m = _model(params.size, params.train_steps, params.precision, "torch")
        rng = np.random.default_rng(seed)
        v = GenerationVerifier()
        out = {k: 0.0 for k in self.metrics if k not in ("applicable", "not_applicable")}
        gen_s = ver_s = 0.0
        for _ in range(params.trials):
            job = make_generate_job(m, _prompt(rng), max_new_tokens=params.n_new, seed=int(rng.integers(2**31)),
                                    **_sampling(params.mode))
            t0 = time.perf_counter()
            honest = run_generate(job, "honest", rng=rng, provider="p")
            gen_s += time.perf_counter() - t0
            claim = honest if name == "honest" else run_generate(job, name, rng=rng, provider="p", **kw)
            r = v.verify(job, [claim], VerifyContext(seed=int(rng.integers(2**31))))
            ver_s += r.cost.seconds
            out["detected"] += not r.accepted
            if not r.accepted:
                key = ("by_tokens" if r.reason.startswith("token ") else
                       "by_activations" if r.reason.startswith("chunk ") else "by_evidence")
                out[key] += 1
            try:
                out["tokens_changed"] += float(np.mean(np.asarray(claim.output).reshape(-1)[:params.n_new]
                                                       != honest.output))
            except (ValueError, TypeError):
                out["tokens_changed"] += 1.0
            med = r.details.get("median_rel_err")
            out["median_rel_err"] += float(np.median(med)) if med else float("nan")
        res = {k: val / params.trials for k, val in out.items()}
        res["verify_over_generate"] = ver_s / gen_s
        res.update(applicable=1, not_applicable="")
        return res


class CostParams(TaskParams):
    """Parameters of :class:`InferenceCost`."""

    size: Size = "tiny"
    n_new: int = Field(256, ge=1, le=448, description="tokens generated")
    prompt_len: int = Field(32, ge=1, le=64, description="prompt tokens")
    mode: Literal["greedy", "sampled"] = "sampled"
    threads: int = Field(1, ge=1, le=64, description="torch intra-op threads")
    repeats: int = Field(2, ge=1, le=100, description="timings per quantity (the minimum is kept)")


class InferenceCost:
    """Seconds to generate, to prefill and to verify one generation (torch, CPU).

    Metrics: ``generate_s``, ``prefill_s``, ``verify_s`` (minimum over repeats),
    ``verify_over_generate``, ``prefill_over_generate``, ``proof_bytes_per_32``.
    """

    Params = CostParams
    description = "generation vs verification cost of one generation"
    metrics = ("generate_s", "prefill_s", "verify_s", "verify_over_generate", "prefill_over_generate",
               "proof_bytes_per_32")

    def run(self, params: CostParams, seed: int) -> dict[str, Any]:
        """Execute one run."""
        import torch

        from vcompute.verify import GenerationVerifier
        from vcompute.workloads.lm import generate, prefill

        torch.set_num_threads(params.threads)
        m = _model(params.size, 0, "float32", "torch")
        rng = np.random.default_rng(seed)
        prompt = rng.integers(0, 256, size=params.prompt_len)
        sp = _sampling(params.mode)
        gen_s = pre_s = ver_s = float("inf")
        for _ in range(params.repeats):
            t0 = time.perf_counter()
            g = generate(m, prompt, max_new_tokens=params.n_new, seed=seed, **sp)
            gen_s = min(gen_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            prefill(m, np.concatenate([prompt, g.tokens[:-1]]))
            pre_s = min(pre_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            r = GenerationVerifier().check(m, prompt, g.tokens, g.proof, seed=seed, **sp)
            ver_s = min(ver_s, time.perf_counter() - t0)
            if not r.accepted:
                raise RuntimeError(f"honest generation rejected: {r.reason}")
        return {"generate_s": gen_s, "prefill_s": pre_s, "verify_s": ver_s, "verify_over_generate": ver_s / gen_s,
                "prefill_over_generate": pre_s / gen_s, "proof_bytes_per_32": len(g.proof) * 32 / params.n_new}


class GlueCostParams(TaskParams):
    """Parameters of :class:`InferenceGlueCost`."""

    size: Size = "gpt2-small"
    n_layers: int = Field(0, ge=0, le=48, description="blocks of the model (0: the size's own)")
    tokens: int = Field(512, ge=2, le=512, description="tokens of the prefill")
    rows: int = Field(16, ge=1, le=512, description="glue rows sampled per block and op")
    rounds: int = Field(10, ge=1, le=64, description="Freivalds sign vectors per linear layer")
    batch: int = Field(4, ge=1, le=16, description="traces of the model checked together by check_many")
    repeats: int = Field(5, ge=1, le=100, description="alternated timings per quantity (the median is kept)")
    new_tokens: int = Field(8, ge=1, le=64, description="generated tokens whose logits the token check reads")


class InferenceGlueCost:
    """Seconds of the sampled-glue check of a prefill trace against the prefill itself (torch, 1 CPU thread).

    Process CPU time on one thread (torch and numba), so that a loaded machine slows every
    quantity alike; the prefill, the one-trace check and the batched check are alternated and
    the median of ``repeats`` kept (``proofs/inference-glue.md``, *Cost*).

    Metrics: ``prefill_s``, ``glue_check_s`` (:meth:`SampledGlue.check`, one trace),
    ``glue_over_prefill``, ``glue_per_trace_s`` (:meth:`SampledGlue.check_many` over ``batch``
    traces, per trace), ``glue_per_trace_over_prefill``, and ``prefill_gflops`` (the prefill's
    matmul FLOPs over its seconds: the ratios fall when a loaded machine slows the prefill's
    compute-bound matmuls more than the check, so a ratio is read with this rate beside it), and
    ``glue_token_check_s`` / ``glue_recomputed_logits`` / ``glue_logit_slack``: the token check of
    ``new_tokens`` tokens at the end of the trace (temperature 0.8, top_p 0.95: the nucleus case, which recomputes the most logits).
    """

    Params = GlueCostParams
    description = "sampled-glue check vs prefill, one trace and a batch, 1 CPU thread"
    metrics = ("prefill_s", "glue_check_s", "glue_over_prefill", "glue_per_trace_s", "glue_per_trace_over_prefill",
               "prefill_gflops", "glue_token_check_s", "glue_recomputed_logits", "glue_logit_slack")

    def run(self, params: GlueCostParams, seed: int) -> dict[str, Any]:
        """Execute one run."""
        import statistics

        import torch

        from vcompute.verify.inference.glue import SampledGlue
        from vcompute.verify.inference.glue_trace import trace_prefill
        from vcompute.workloads.lm import TransformerLM, config_named, prefill
        from vcompute.workloads.lm.sampling import SamplingParams

        torch.set_num_threads(1)
        try:  # the fused kernels on one thread too (process CPU time would count every thread anyway)
            import numba

            numba.set_num_threads(1)
        except ImportError:
            pass
        cfg = config_named(params.size)
        cfg = cfg.replace(n_layers=params.n_layers or cfg.n_layers, max_len=max(cfg.max_len, params.tokens))
        m = TransformerLM(cfg, seed=0)
        rng = np.random.default_rng(seed)
        items = []
        for _ in range(params.batch):
            ids = rng.integers(0, cfg.vocab, params.tokens)
            items.append((ids, trace_prefill(m, ids)))
        ids, tr = items[0]
        ver = SampledGlue(rows=params.rows, rounds=params.rounds)
        prefill(m, ids)
        ver.check(m, ids, tr, challenge_seed=0)  # compile / load the kernels

        def clock(fn) -> float:
            t0 = time.process_time()
            fn()
            return time.process_time() - t0

        pre, one, many = [], [], []
        for r in range(params.repeats):
            pre.append(clock(lambda: prefill(m, ids)))
            one.append(clock(lambda: ver.check(m, ids, tr, challenge_seed=seed * 1000 + r)))
            many.append(clock(lambda: ver.check_many(m, items, challenge_seed=seed * 1000 + r)) / params.batch)
        v = ver.check(m, ids, tr, challenge_seed=seed)
        if not v.accepted or not all(x.accepted for x in ver.check_many(m, items, challenge_seed=seed)):
            raise RuntimeError(f"honest trace rejected: {v.reason}")
        n = min(params.new_tokens, params.tokens - 1)
        st = ver._run(m, [(ids, tr)], challenge_seed=seed)[0]
        rows = slice(params.tokens - n, params.tokens)
        toks = tr["logits"][rows].argmax(axis=1)
        sp = SamplingParams(0.8, 0.95, seed)
        tok = []
        for _ in range(params.repeats):
            tok.append(clock(lambda: ver.token_check(m, st.h_ref[rows], st.tr["hidden"][rows], st.tr["logits"][rows],
                                                     toks, sp, params.tokens - n + 1)))
        _, slack, recomputed = ver.token_check(m, st.h_ref[rows], st.tr["hidden"][rows], st.tr["logits"][rows], toks,
                                               sp, params.tokens - n + 1)
        p, c, b = (statistics.median(x) for x in (pre, one, many))
        T, d = params.tokens, cfg.d_model
        flops = cfg.n_layers * (2 * T * (4 * d * d + 2 * d * cfg.d_ff) + 4 * T * T * d) + 2 * T * d * cfg.vocab
        return {"prefill_s": p, "glue_check_s": c, "glue_over_prefill": c / p, "glue_per_trace_s": b,
                "glue_per_trace_over_prefill": b / p, "prefill_gflops": flops / p / 1e9,
                "glue_token_check_s": statistics.median(tok), "glue_recomputed_logits": recomputed,
                "glue_logit_slack": float(slack.max())}


#: The recipes :class:`InferenceTraining` compares: the shipped one and the former (plateau-prone) one.
_RECIPES = {"shipped": {}, "former": {"seq_len": 64, "batch": 16, "lr": 3e-3, "schedule": "constant"}}


class TrainingParams(TaskParams):
    """Parameters of :class:`InferenceTraining`."""

    size: Size = "tiny"
    train_steps: int = Field(600, ge=1, le=10_000, description="training steps on the shipped text")
    recipe: Literal["shipped", "former"] = Field("shipped", description="the recipe of train_on_text or the "
                                                 "former one (constant 3e-3, 16 windows of 64 tokens)")
    threads: int = Field(1, ge=1, le=64, description="torch intra-op threads of the training")


class InferenceTraining:
    """Train the LM from one seed (its initialisation and its windows) and say whether it left the plateau.

    Metrics: ``final_loss`` (mean training loss of the last 10 steps), ``loss_at_150`` (of steps 141-150),
    ``eval_loss`` (mean cross-entropy over the text's 128-token windows at stride 64), ``unigram_entropy``
    (of the text's characters: the loss of a model that ignores its context), ``embedding_cosine`` (mean
    pairwise cosine of the text's characters' embeddings), ``greedy_distinct`` (fewest distinct tokens in
    the 48-token greedy continuations of three prompts) and ``train_cpu_s``.
    """

    Params = TrainingParams
    description = "the tiny LM's training: loss against the unigram plateau"
    metrics = ("final_loss", "loss_at_150", "eval_loss", "unigram_entropy", "embedding_cosine", "greedy_distinct",
               "train_cpu_s")

    def run(self, params: TrainingParams, seed: int) -> dict[str, Any]:
        """Execute one run."""
        import torch

        from vcompute.workloads.lm import TransformerLM, config_named, encode, generate, train_on_text
        from vcompute.workloads.lm.train import shipped_text

        torch.set_num_threads(params.threads)
        m = TransformerLM(config_named(params.size), seed=seed)
        t0 = time.process_time()
        losses = train_on_text(m, steps=params.train_steps, seed=seed, **_RECIPES[params.recipe])
        cpu = time.process_time() - t0
        ids = encode(shipped_text())
        p = np.bincount(ids[1:])
        p = p[p > 0] / p.sum()
        data = torch.from_numpy(ids)
        chars = torch.from_numpy(np.unique(ids[1:]))
        with torch.no_grad():
            ev = [float(torch.nn.functional.cross_entropy(m(data[s:s + 128][None])[0], data[s + 1:s + 129]))
                  for s in range(0, len(ids) - 129, 64)]
            w = m.wte.weight[chars]
            w = w / w.norm(dim=1, keepdim=True)
            c = (w @ w.T).sum() - len(chars)
        distinct = min(len(set(int(t) for t in generate(m, encode(t), max_new_tokens=48).tokens))
                       for t in ("The keeper", "the lamp", "At night"))
        return {"final_loss": float(np.mean(losses[-10:])),
                "loss_at_150": float(np.mean(losses[140:150])) if len(losses) >= 150 else float("nan"),
                "eval_loss": float(np.mean(ev)), "unigram_entropy": float(-(p * np.log(p)).sum()),
                "embedding_cosine": float(c) / (len(chars) * (len(chars) - 1)), "greedy_distinct": distinct,
                "train_cpu_s": cpu}
