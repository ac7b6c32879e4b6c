"""Escape statistics of one generate adversary: thousands of short jobs, with a 95% bound.

``inference.statistics`` runs ``trials`` fresh jobs (prompt, sampling seed)
of one adversary against :class:`~vcompute.verify.GenerationVerifier`, spread
round-robin over the (precision, mode) variants where the adversary is not
honest work, and reports the escapes with their one-sided 95% Clopper-Pearson
upper bound (0 escapes in n bound the escape rate by ``1 - 0.05^(1/n)``,
about ``3/n``). Each job also gets an honest generation (batched ``batch``
prompts at a time, so the baseline costs a fraction of the adversary's own
run) to say whether the adversary's tokens changed: a sampling cheat whose
tokens happen to equal the honest ones *is* the honest claim (its commitments
are the true model's), so such an escape is counted apart
(``escapes_same_tokens``) and the bound is reported over the jobs whose
tokens changed too. ``honest`` as the adversary measures false rejects.

Short generations (32 tokens: one committed chunk) on the tiny model make
3,000 jobs per adversary affordable (``experiments/inference-statistics.toml``).
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Literal

import numpy as np
from pydantic import Field

from vcompute.experiment.tasks.base import TaskParams
from vcompute.experiment.tasks.inference import Precision, Size, _adversary, _model, _prompt, _sampling

__all__ = ["InferenceStatistics", "StatisticsParams", "escape_bound", "not_applicable"]


def escape_bound(escapes: int, n: int, confidence: float = 0.95) -> float:
    """The one-sided Clopper-Pearson upper bound on an escape rate after ``escapes`` in ``n`` trials.

    Args:
        escapes: trials the verifier accepted.
        n: trials.
        confidence: the bound's confidence level.

    Returns:
        The rate p with ``P(X <= escapes | n, p) = 1 - confidence`` (1.0 for ``escapes == n``; NaN for ``n == 0``).

    Example:
        >>> round(escape_bound(0, 3000), 6)  # the rule of three: about 3 / n
        0.000998
    """
    if n <= 0:
        return float("nan")
    if escapes >= n:
        return 1.0
    alpha = 1.0 - confidence
    if escapes == 0:
        return 1.0 - alpha ** (1.0 / n)

    def cdf(p: float) -> float:
        lp, lq = math.log(p), math.log1p(-p)
        terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
                 for i in range(escapes + 1)]
        top = max(terms)
        return math.exp(top) * sum(math.exp(t - top) for t in terms)

    lo, hi = escapes / n, 1.0
    for _ in range(100):  # cdf falls in p: bisect to well below any printed digit
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > alpha else (lo, mid)
    return hi


#: Weight changes below this (per tensor, ``||dW|| / (std(W) sqrt(numel))``) are far inside the tolerance:
#: a tenth of the smallest weight noise ``experiments/inference-noise.toml`` measures (1e-4).
BELOW_TOLERANCE = 1e-5


def not_applicable(name: str, kw: dict[str, Any], precision: str, mode: str, model: Any) -> str:
    """Why adversary ``name`` is honest work on a job, or within its tolerance (empty when neither).

    A model cast to the job's own precision is the job's model; greedy tokens
    are a greedy job's tokens; weights rounded to a format that holds them
    exactly (or all but a few subnormals: bf16 weights in float16) are the
    job's weights, or move them by less than :data:`BELOW_TOLERANCE`.
    """
    if name == "low_precision" and kw["precision"] == precision:
        return f"low_precision:{precision} is the honest computation of a {precision} job"
    if name == "greedy_for_sampled" and mode == "greedy":
        return "greedy tokens are the honest tokens of a greedy job"
    if name == "quantised" and kw["kind"] != "int8":
        import torch

        kind = getattr(torch, kw["kind"])
        changed = total = 0
        worst = 0.0
        with torch.no_grad():
            for w in model.parameters():
                d = w.to(kind).to(w.dtype).float() - w.float()
                changed += int((d != 0).sum())
                total += w.numel()
                if w.numel() > 1:
                    worst = max(worst, float(d.norm() / (w.float().std() * w.numel() ** 0.5)))
        if worst < BELOW_TOLERANCE:
            return (f"quantised:{kw['kind']} changes {changed} of {total} {precision} weights by {worst:.1e} x std "
                    f"(below tolerance; 0 changed: exact)")
    return ""


class StatisticsParams(TaskParams):
    """Parameters of :class:`InferenceStatistics`."""

    size: Size = "tiny"
    train_steps: int = Field(600, ge=0, le=10_000, description="training steps on the shipped text")
    adversary: str = Field("honest", description="a generate behaviour, optionally 'name:arg' (e.g. weight_noise:1e-2)")
    precisions: tuple[Precision, ...] = Field(("float32", "bfloat16"), min_length=1, description="job precisions")
    modes: tuple[Literal["greedy", "sampled"], ...] = Field(("greedy", "sampled"), min_length=1,
                                                            description="sampling modes (sampled: T=0.8, top-p 0.95)")
    trials: int = Field(3000, ge=1, le=1_000_000, description="jobs, round-robin over the applicable variants")
    n_new: int = Field(32, ge=1, le=448, description="tokens per generation")
    batch: int = Field(16, ge=1, le=64, description="prompts per batched honest baseline generation")


class InferenceStatistics:
    """Escapes of one adversary over many jobs, with the 95% upper bound on its escape rate.

    Metrics: ``n`` (jobs run), ``escapes`` (accepted), ``escape_bound`` (one-sided 95%
    Clopper-Pearson upper bound on the escape rate), ``detected`` (rejected / n),
    ``n_changed`` (jobs whose tokens differ from the honest generation), ``escapes_same_tokens``
    (escapes whose tokens equal the honest ones), ``escape_bound_changed`` (the bound over the
    ``n_changed`` jobs), ``by_tokens`` / ``by_activations`` / ``by_band`` / ``by_evidence`` (which check
    rejected, fractions of n; ``by_band``: the band-use count, checked last), ``by_inexact`` (the part of
    ``by_activations`` that rests on the bit-exactness count ``max_inexact`` alone), ``min_inexact`` (over
    the jobs whose committed chunks were checked, the fewest not-bit-identical entries of a job's worst chunk:
    how far the adversary sits above the allowance), ``band_uses`` (tokens that
    passed only by the near-tie rule, over every job whose tokens were checked) and ``band_use_rate`` (per
    checked token), ``band_hist`` (``uses:jobs`` over the jobs that passed every check but the count),
    ``tokens_changed`` (share of tokens differing from honest),
    ``variants`` (the precision/mode pairs run), ``escapes_by_variant`` (``escapes/jobs`` per pair), ``applicable`` and ``not_applicable`` (why the
    variants left out are honest work; ``applicable`` 0 and ``detected`` NaN when none is left).
    """

    Params = StatisticsParams
    description = "escapes of one generate adversary over thousands of jobs, with a 95% upper bound"
    metrics = ("n", "escapes", "escape_bound", "detected", "n_changed", "escapes_same_tokens", "escape_bound_changed",
               "by_tokens", "by_activations", "by_inexact", "min_inexact", "by_band", "by_evidence", "tokens_changed", "variants",
               "escapes_by_variant", "band_uses", "band_use_rate", "band_hist", "applicable", "not_applicable")

    def run(self, params: StatisticsParams, seed: int) -> dict[str, Any]:
        """Execute one run."""
        import torch

        from vcompute.core.hashing import content_hash
        from vcompute.core.signing import key_from_name
        from vcompute.core.types import Claim
        from vcompute.verify import GenerationVerifier, VerifyContext
        from vcompute.workloads.lm import generate_batch, make_generate_job
        from vcompute.workloads.lm.job import GENERATE_BEHAVIOURS, run_generate

        torch.set_num_threads(1)
        p = params
        name, kw = _adversary(p.adversary)
        if name not in GENERATE_BEHAVIOURS:
            raise ValueError(f"unknown adversary {name!r}; known: {', '.join(GENERATE_BEHAVIOURS)}")
        variants, skipped = [], []
        for prec in p.precisions:
            for mode in p.modes:
                why = not_applicable(name, kw, prec, mode, _model(p.size, p.train_steps, prec, "torch"))
                (skipped if why else variants).append(why or (prec, mode))
        res: dict[str, Any] = {"not_applicable": "; ".join(dict.fromkeys(skipped)),
                               "variants": " ".join(f"{a}/{b}" for a, b in variants)}
        if not variants:
            return {**res, "detected": float("nan"), "applicable": 0}
        key = key_from_name("p")
        v = GenerationVerifier()
        rng = np.random.default_rng([seed, zlib.crc32(p.adversary.encode())])
        n = esc = same = changed = esc_changed = 0
        by = {"by_tokens": 0, "by_activations": 0, "by_band": 0, "by_evidence": 0}
        by_inexact = 0
        min_inexact = None
        band_uses = band_tokens = 0
        hist: dict[int, int] = {}  # band uses -> jobs, over the jobs that passed every check but the count
        tok_changed = 0.0
        counts = [p.trials // len(variants) + (i < p.trials % len(variants)) for i in range(len(variants))]
        per_variant = []
        for (prec, mode), count in zip(variants, counts):
            esc_before = esc
            m = _model(p.size, p.train_steps, prec, "torch")
            sp = _sampling(mode)
            for start in range(0, count, p.batch):
                b = min(p.batch, count - start)
                prompts = [_prompt(rng) for _ in range(b)]
                seeds = [int(s) for s in rng.integers(0, 2**31, size=b)]
                gens = generate_batch(m, prompts, max_new_tokens=p.n_new, seed=seeds, key=key, **sp)
                for pr, s, g in zip(prompts, seeds, gens):
                    job = make_generate_job(m, pr, max_new_tokens=p.n_new, seed=s, **sp)
                    if name == "honest":
                        claim = Claim(job_id=job.id, provider="p", output=g.tokens, commitment=content_hash(g.tokens),
                                      evidence={"proof": g.proof})
                    else:
                        claim = run_generate(job, name, rng=rng, provider="p", key=key, **kw)
                    r = v.verify(job, [claim], VerifyContext(seed=int(rng.integers(2**31))))
                    if r.details.get("inexact"):
                        worst = max(int(x) for x in r.details["inexact"])
                        min_inexact = worst if min_inexact is None else min(min_inexact, worst)
                    if "band_uses" in r.details:
                        band_uses += int(r.details["band_uses"])
                        band_tokens += int(r.details["checked_tokens"])
                    if r.accepted or r.reason.startswith("near-tie band:"):
                        u = int(r.details["band_uses"])
                        hist[u] = hist.get(u, 0) + 1
                    out = np.asarray(claim.output)
                    same_tokens = out.shape == g.tokens.shape and bool(np.array_equal(out, g.tokens))
                    try:
                        tok_changed += float(np.mean(out.reshape(-1)[:p.n_new] != g.tokens))
                    except (ValueError, TypeError):
                        tok_changed += 1.0
                    n += 1
                    changed += not same_tokens
                    if r.accepted:
                        esc += 1
                        same += same_tokens
                        esc_changed += not same_tokens
                    else:
                        by["by_tokens" if r.reason.startswith("token ") else
                           "by_activations" if r.reason.startswith("chunk ") else
                           "by_band" if r.reason.startswith("near-tie band:") else "by_evidence"] += 1
                        by_inexact += r.reason.startswith("chunk ") and "not bit-identical" in r.reason
            per_variant.append(f"{prec}/{mode} {esc - esc_before}/{count}")
        res.update({"n": n, "escapes": esc, "escape_bound": escape_bound(esc, n), "detected": 1 - esc / n,
                    "n_changed": changed, "escapes_same_tokens": same,
                    "escape_bound_changed": escape_bound(esc_changed, changed),
                    "tokens_changed": tok_changed / n, "escapes_by_variant": ", ".join(per_variant), "applicable": 1,
                    "band_uses": band_uses, "band_use_rate": band_uses / band_tokens if band_tokens else float("nan"),
                    "band_hist": " ".join(f"{u}:{hist[u]}" for u in sorted(hist)),
                    "by_inexact": by_inexact / n,
                    "min_inexact": float("nan") if min_inexact is None else min_inexact,
                    **{k: c / n for k, c in by.items()}})
        return res
