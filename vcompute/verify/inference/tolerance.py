"""Calibrated tolerances of the generation checks, one set per job precision.

The numbers come from honest runs spanning torch and JAX, 1 and 2 threads,
batch 1 and 8, KV-cache decoding by the provider against the verifier's
prefill, greedy and sampled (``experiments/inference-calibration.toml``,
whose measured maxima ``proofs/inference.md`` cites). Each bound is the
largest honest value times a safety factor, rounded up.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Tolerance", "TOLERANCES", "tolerance_for"]


@dataclass(frozen=True)
class Tolerance:
    """Bounds an honest generation stays within.

    Attributes:
        rtol: relative error of one committed hidden-state entry.
        max_misses: committed entries per chunk allowed to miss (near-ties at the top-k cut).
        logit_atol: absolute difference of one logit between provider and verifier.
        max_inexact: committed entries per chunk allowed to differ at all (by even one unit in the last
            place); None: no such limit. At bf16 honest implementations agree bit for bit on almost every
            entry, while a perturbed model moves many entries by an ulp or two, inside ``rtol``.
        mass_atol: absolute difference, between provider and verifier, of the probability mass ranked
            before a sampled token (its nucleus position); None: only the worst case implied by
            ``logit_atol`` bounds it (a factor ``e^(2 logit_atol / T)``, which at bf16 would admit every token
            into a 0.95 nucleus).
        band_rate: the calibrated honest *band-use* rate per token (tokens that pass only by the near-tie
            rule: the claimed token differs from the verifier's own argmax / replayed draw); None: the
            precision's calibrated rate (the verifiers never drop the count). A claim of ``n`` checked tokens may
            make at most
            :func:`~vcompute.verify.inference.tokens.band_limit` ``(n, band_rate, band_alpha)`` of them.
        band_alpha: the false-reject probability per generation the band-use count may add for an honest
            provider whose band-use rate is at most ``band_rate``.
        edge_rate: the calibrated honest rate, per token of a nucleus job (sampled, ``top_p < 1``), of
            *nucleus-edge* uses (band uses whose token lies outside the verifier's own nucleus beyond any rank
            flip within the band); where set, a nucleus job's edge uses are also counted on their own, at most
            ``band_limit(n, edge_rate, edge_alpha)`` (:func:`~vcompute.verify.inference.tokens.band_count`);
            None: only the band-use count.
        edge_alpha: the false-reject probability per generation the nucleus-edge count may add (the two counts
            together: at most ``band_alpha + edge_alpha``).

    Raises:
        TypeError: for a ``band_rate`` or ``edge_rate`` that is not a number (nor None).
        ValueError: for a negative bound, a ``band_rate`` or ``edge_rate`` outside ``[0, 1)`` or a ``band_alpha``
            or ``edge_alpha`` outside ``(0, 1)``.
    """

    rtol: float
    max_misses: int
    logit_atol: float
    max_inexact: int | None = None
    mass_atol: float | None = None
    band_rate: float | None = None
    band_alpha: float = 1e-3
    edge_rate: float | None = None
    edge_alpha: float = 5e-4

    def __post_init__(self) -> None:
        if not (self.rtol >= 0 and self.logit_atol >= 0 and self.max_misses >= 0):
            raise ValueError(f"tolerances must be non-negative, got {self}")
        if self.max_inexact is not None and self.max_inexact < 0 or self.mass_atol is not None and self.mass_atol < 0:
            raise ValueError(f"tolerances must be non-negative, got {self}")
        for name in ("band_rate", "edge_rate"):
            r = getattr(self, name)
            if r is None:
                continue
            if not isinstance(r, (int, float)):
                raise TypeError(f"{name} must be a float in [0, 1) or None, got {type(r).__name__}")
            if isinstance(r, bool) or not 0.0 <= r < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {r!r}")
        for name in ("band_alpha", "edge_alpha"):
            a = getattr(self, name)
            if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 < a < 1.0:
                raise ValueError(f"{name} must lie in (0, 1), got {a!r}")


#: Per precision (proofs/inference.md): float32 entries differ by <= 7.8e-7 relative and logits by <= 3.8e-6
#: over 512 honest generations (torch vs JAX, KV cache vs prefill, batch 8, 2 threads). bfloat16 over 1024, once
#: the JAX model rounds where torch does: entries by <= 1 ulp (0.0078), at most 2 of 120 committed entries per chunk
#: not bit-identical on the former 150-step model (9 in a probe), logits by <= 0.0103 and the nucleus mass before a token by <= 5.8e-4
#: (before: 1.6%, 6 misses, 0.036). float16 over 512, once the JAX model rounds float16 subnormals as torch
#: does: entries by <= 0.0011 (about 1 ulp), at most 1 miss and 4 of 120 entries per chunk not bit-identical,
#: logits by <= 0.00166 and the nucleus mass by <= 9.6e-5 (experiments/inference-calibration.toml, float16 rows).
#: ``max_inexact`` was recalibrated on the retrained (600-step) tiny LM, whose sharper activations make a one-ulp
#: torch/XLA difference flip more committed entries: at most 28 (bf16) and 45 (fp16) of 120 per chunk over 512
#: honest generations each (torch-torch: 16 and 10); the allowance is that maximum times 1.6, rounded up to a
#: multiple of 8 (48 and 72; was 16, which rejected 10 and 94 of 512 honest generations with JAX on one side).
#: On the former model, band uses (tokens passing only by the near-tie rule): none in 1.1e5 honest float32 and 1.1e5 bfloat16
#: tokens, none in 3.3e4 float16 ones; ``band_rate`` is the one-sided 95% upper bound (3 / tokens), rounded up,
#: and ``band_alpha`` 1e-3: a 32-token claim may then use the band on no token, a 34- to 1490-token one on one
#: (proofs/inference.md, *The band-use count*).
#: ``logit_atol`` and ``mass_atol`` were re-derived on the retrained model from the errors the token rule reads
#: (``max_logit_err_top``: either side's 0.99 nucleus; ``mass_needed``: the least mass tolerance that keeps the
#: verifier's nucleus bounds around the provider's), over the 1,536 generations of
#: experiments/inference-calibration.toml: bf16 logits 0.061 (torch KV cache against torch prefill, greedy) and
#: nucleus 0.0108, fp16 0.0065 and 0.0112; each bound is that maximum times 1.6, rounded up: bf16 ``logit_atol``
#: 0.1 (was 0.025, below the honest 0.061) and ``mass_atol`` 0.018 (was 0.005), fp16 ``logit_atol`` 0.011
#: (was 0.01) and ``mass_atol`` 0.018 (was 0.002). A wider logit band admits no more band uses by an honest
#: provider (a band use is a token other than the verifier's own choice, whatever the band); what it admits
#: for a cheat, the band-use count bounds (proofs/inference.md, *Tolerances*). ``band_rate`` too was re-derived
#: there: honest band uses in the 32,768 tokens of each precision's 512 generations were 0 (fp32), 3 (bf16) and
#: 6 (fp16), one on each of 9 variants, all but one (fp16 torch -> torch, 2 threads, batch 8) with JAX
#: on one side (the former model: none in 1.1e5 tokens); the rate is the one-sided 95%
#: Poisson upper bound, rounded up: bf16 2.4e-4 (was 3e-5) and fp16 3.7e-4 (was 1e-4), so a 32- or 64-token
#: 16-bit claim may use the band on one token (was none at bf16 for 32 tokens).
#: Session 11 (experiments/inference-edge.toml: 3,136 honest sampled bf16 generations, 200,704 tokens, across
#: torch / JAX, threads and batch): 0 nucleus-edge uses (band uses from outside the verifier's nucleus beyond any
#: rank flip within the band), so bf16 ``edge_rate`` is the one-sided 95% bound 1.49e-5 rounded up to 1.5e-5 and
#: a 32-token bf16 nucleus claim may make none (``edge_alpha`` 5e-4); 10 band uses in all (bound 8.5e-5, inside
#: 2.4e-4). The same run rejected one honest generation (JAX provider, torch verifier on 2 threads, batch 1) on
#: the bit-exactness count: 49 of 120 committed entries not bit-identical in a chunk, over the allowance of 48
#: (the former calibration's maximum was 28 in 512 generations). bf16 ``max_inexact`` is now 56, the least
#: multiple of 8 above that maximum (a margin of 7 entries, thin: proofs/inference.md, *Tolerances*). The usual
#: 1.6x (80) would admit the worst chunks of ``weight_noise:1e-2`` (69) and ``quantised:int8`` (77), whose bf16
#: rejections rest on this count, and 1.3x (64) an altered prompt whose tokens are the honest ones (57 and 59 on
#: the test suite's model): at bf16 the honest torch/XLA tail and the small cheats now sit 49 vs 57 apart.
#: At 56 that run rejected none of the 3,136. Its largest ``mass_needed`` was 0.0235, above ``mass_atol``, but the
#: chance that the mass bound decides against an honest draw (``mass_gap_rate``, both directions) summed to 0.015
#: expected draws in 200,704 tokens (7.7e-8 per token), so ``mass_atol`` stays 0.018.
#: Session 12 re-ran that config on another box of the same kind (other CPU kernels: its largest not-bit-identical
#: count per chunk was 30, not 49, its ``mass_needed`` 0.0146, not 0.0235) with the landed code of session 11 and
#: with this session's: **2 nucleus-edge uses** in the same 200,704 tokens, both honest draws whose mass ranked
#: before them sat a hair past the cut on the verifier's side (0.9502 against the provider's 0.9498), and 14 band
#: uses. Session 11's 0 came from its own box. Pooled, 2 in 401,408 honest tokens bound the rate at 1.57e-5, so
#: bf16 ``edge_rate`` is **1.6e-5** (this box alone: 3.14e-5). With it ``k_E(n) = 0`` only up to 31 tokens, so a
#: 32-token bf16 claim may now make one edge use, as many as its band uses: the edge count no longer adds a
#: rejection at 32 tokens (proofs/inference.md, *The nucleus-edge count*).
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(rtol=2e-5, max_misses=3, logit_atol=1e-4, band_rate=3e-5),
    "bfloat16": Tolerance(rtol=0.02, max_misses=6, logit_atol=0.1, max_inexact=56, mass_atol=0.018, band_rate=2.4e-4,
                          edge_rate=1.6e-5),
    "float16": Tolerance(rtol=0.005, max_misses=6, logit_atol=0.011, max_inexact=72, mass_atol=0.018, band_rate=3.7e-4),
}


def tolerance_for(precision: str) -> Tolerance:
    """The calibrated :class:`Tolerance` of ``precision``.

    Raises:
        ValueError: for a precision without one.
    """
    if precision not in TOLERANCES:
        raise ValueError(f"no calibrated tolerance for precision {precision!r}; known: {', '.join(TOLERANCES)}")
    return TOLERANCES[precision]
