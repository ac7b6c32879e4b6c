"""The generation verifier: one prefill pass, token checks and activation commitments.

Given the job (model, prompt, sampling parameters, provider) and a claim
(tokens, proof), :class:`GenerationVerifier` rejects malformed evidence with
a reason, checks the proof's signature over its binding to the job and the
tokens, recomputes the last hidden states and logits of prompt + tokens in
one pass (:func:`~vcompute.workloads.lm.prefill`), then checks every token
(:mod:`vcompute.verify.inference.tokens`) and every chunk's commitment (:mod:`vcompute.verify.inference.commitment`) within the
calibrated tolerance of the job's precision (:mod:`vcompute.verify.inference.tolerance`), and
finally counts the tokens that passed only by the near-tie rule (*band uses*):
more than :func:`~vcompute.verify.inference.tokens.band_limit` allows for the
number of checked tokens is rejected too, and on a nucleus job, where the
precision calibrates an ``edge_rate``, so are more *nucleus-edge* uses (draws
from past the verifier's nucleus edge) than their own count allows
(:func:`~vcompute.verify.inference.tokens.band_count`).
"""

from __future__ import annotations

import dataclasses

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vcompute.core.types import Claim, Cost, EvidenceSpec, Job, Verdict
from vcompute.verify.base import Scheme, VerifyContext, caller_code
from vcompute.verify.inference.commitment import check_commitment
from vcompute.verify.inference.tokens import band_count, check_tokens, job_arguments, provider_tokens
from vcompute.verify.inference.tolerance import Tolerance, tolerance_for

__all__ = ["GenerationVerifier", "provider_public_key", "read_proof"]

_NAME = "generate"


def provider_public_key(provider: Any) -> bytes:
    """A provider's Ed25519 public key from a key, 32 public bytes, or a simulated agent's name.

    Raises:
        TypeError: for anything else.
    """
    from vcompute.core.signing import SigningKey, key_from_name

    if provider is None:
        return key_from_name("provider").public_bytes
    if isinstance(provider, SigningKey):
        return provider.public_bytes
    if type(provider) is bytes and len(provider) == 32:
        return provider
    if type(provider) is str and provider:
        return key_from_name(provider).public_bytes
    raise TypeError("provider must be a SigningKey, its 32 public-key bytes, or a simulated provider's name")


def read_proof(proof: Any) -> bytes | str:
    """A provider's proof as exact bytes, or the reason it is not bytes (never raises)."""
    if not isinstance(proof, (bytes, bytearray, memoryview)):
        return f"proof is a {type(proof).__name__}, not bytes"
    try:
        return bytes(memoryview(proof).cast("B"))
    except Exception as e:
        return f"proof could not be read as bytes ({type(e).__name__})"


def _flops(cfg, start: int, stop: int) -> float:
    return float(sum(cfg.flops_per_token(c + 1) for c in range(start, stop)))


class GenerationVerifier(Scheme):
    """Verifies a generation by one prefill pass: token checks plus activation commitments.

    Args:
        tolerance: a :class:`~vcompute.verify.inference.tolerance.Tolerance` for every precision, a mapping precision -> Tolerance,
            or None for the calibrated :data:`TOLERANCES`. A custom one without ``band_rate`` keeps the band-use
            count at the precision's calibrated rates (``band_rate`` and ``edge_rate``).
        sample_chunks: check only this many chunks, chosen by ``challenge_seed`` after the claim
            (the prefill then stops at the last chosen chunk); None checks all.
        activations: whether to check the activation commitments (False: tokens only).
        keys: provider name -> public key; default: the simulated agents' keys by name.

    Raises:
        TypeError, ValueError: for malformed arguments.

    Example:
        >>> from vcompute.workloads.lm import LMConfig, TransformerLM, generate
        >>> m = TransformerLM(LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64), seed=0)
        >>> g = generate(m, [256, 72], max_new_tokens=8, temperature=0.8, top_p=0.95, seed=7)
        >>> v = GenerationVerifier().check(m, [256, 72], g.tokens, g.proof, temperature=0.8, top_p=0.95, seed=7)
        >>> v.accepted
        True
    """

    name = _NAME

    def __init__(self, *, tolerance: Tolerance | Mapping[str, Tolerance] | None = None,
                 sample_chunks: int | None = None, activations: bool = True,
                 keys: Mapping[str, bytes] | None = None) -> None:
        if tolerance is not None and not isinstance(tolerance, (Tolerance, Mapping)):
            raise TypeError("tolerance must be a Tolerance, a mapping precision -> Tolerance, or None")
        if sample_chunks is not None and (type(sample_chunks) is not int or sample_chunks < 1):
            raise ValueError(f"sample_chunks must be a positive int or None, got {sample_chunks!r}")
        self.tolerance = tolerance
        self.sample_chunks = sample_chunks
        self.activations = bool(activations)
        self.keys = None if keys is None else dict(keys)

    def _tol(self, precision: str) -> Tolerance:
        """The tolerance at ``precision``; a custom one without ``band_rate`` gets the precision's calibrated rate.

        Raises:
            TypeError: if the mapping's entry for ``precision`` is not a Tolerance.
            ValueError: if ``precision`` has no calibrated tolerance (nor a band rate to default to).
        """
        if isinstance(self.tolerance, Tolerance):
            tol = self.tolerance
        elif isinstance(self.tolerance, Mapping) and precision in self.tolerance:
            tol = self.tolerance[precision]
            if not isinstance(tol, Tolerance):
                raise TypeError(f"tolerance[{precision!r}] must be a Tolerance, got {type(tol).__name__}")
        else:
            return tolerance_for(precision)
        if tol.band_rate is None:  # never silently without the band-use count
            cal = tolerance_for(precision)
            tol = dataclasses.replace(tol, band_rate=cal.band_rate,
                                      edge_rate=cal.edge_rate if tol.edge_rate is None else tol.edge_rate)
        return tol

    # -- protocol ---------------------------------------------------------------
    def replicas(self, job: Job) -> int:
        """One claim."""
        return 1

    def evidence(self, job: Job) -> EvidenceSpec:
        """The signed activation commitment (``claim.evidence["proof"]``)."""
        from vcompute.workloads.lm.proof import CHUNK

        return EvidenceSpec("generate-proof", {"chunk": CHUNK})

    def check_job(self, job: Job, ctx: VerifyContext) -> None:
        """Refuse a job that is not a ``generate`` job (the caller's misuse).

        The job's model and sampling parameters are built here too, before
        any claim is read: weights that do not match the job's model hash, or
        a malformed sampling spec, are the consumer's doing, never a provider's.

        Raises:
            ValueError: if ``job`` is not a generate job, or its weights or
                sampling parameters are malformed.
        """
        if job.kind != "generate":
            raise ValueError("GenerationVerifier.verify needs a 'generate' job (make_generate_job)")
        from vcompute.workloads.lm.job import model_of, sampling_of

        model_of(job)  # cached on the job: _check reuses it
        sampling_of(job)

    def _check(self, job: Job, claims: Sequence[Claim], ctx: VerifyContext) -> Verdict:
        """Decide on the single claim of a ``generate`` job (screened, guarded and metered by :class:`Scheme`).

        ``claims[0].output`` is the tokens, ``evidence["proof"]`` the proof;
        ``ctx.rng`` picks the chunks when ``sample_chunks`` is set.
        """
        from vcompute.workloads.lm.job import model_of, sampling_of

        claim = claims[0]
        key = (self.keys or {}).get(claim.provider) or provider_public_key(str(claim.provider) or "provider")
        sp = sampling_of(job)
        seed = int(ctx.rng.integers(2**62))
        return self.check(model_of(job), job.inputs["prompt"], claim.output, claim.evidence.get("proof"),
                          temperature=sp.temperature, top_p=sp.top_p, seed=sp.seed, challenge_seed=seed,
                          max_new_tokens=int(job.spec["max_new_tokens"]), provider=key)

    # -- convenience ------------------------------------------------------------
    def check(self, model: Any, prompt_ids: Any, tokens: Any, proof: Any, *, temperature: float = 0.0,
              top_p: float = 1.0, seed: int = 0, challenge_seed: int | None = None,
              max_new_tokens: int | None = None, provider: Any = None) -> Verdict:
        """Verify ``tokens`` and ``proof`` for generating from ``prompt_ids`` with ``model``.

        Args:
            model: the job's model (:class:`TransformerLM` or :class:`JaxTransformerLM`); its
                dtype is the precision the job claims.
            prompt_ids: the job's prompt.
            tokens: the provider's tokens.
            proof: the provider's proof.
            temperature: the job's temperature (0 = greedy).
            top_p: the job's nucleus mass.
            seed: the job's sampling seed.
            challenge_seed: the verifier's randomness, drawn after the claim (chunk sampling).
            max_new_tokens: the job's length, if the claim must have exactly that many tokens.
            provider: who must have signed (see :func:`provider_public_key`; default ``"provider"``).

        Returns:
            The :class:`~vcompute.core.Verdict`; ``details`` holds the per-check measurements, among them
            ``band_uses`` (tokens that passed only by the near-tie rule), ``edge_uses`` (those of them from
            past the verifier's nucleus edge), ``band_limit`` (how many band uses the claim may have; None where
            the precision's tolerance sets no ``band_rate``) and ``edge_limit`` (how many edge uses it may have;
            None where they are not counted on their own): :func:`~vcompute.verify.inference.tokens.band_count`;
            ``outside_uses`` (band uses from outside the verifier's own nucleus at all, reported, not counted).

        Raises:
            TypeError, ValueError: for the caller's malformed arguments (never for the provider's).
        """
        from vcompute.core.signing import verify as verify_sig
        from vcompute.workloads.lm.generation import prefill
        from vcompute.workloads.lm.proof import CHUNK, binding_digest, parse_proof, signed_message
        from vcompute.workloads.lm.weights import model_hash, precision_of

        t0 = time.perf_counter()
        cfg, prompt, sp = job_arguments(model, prompt_ids, temperature, top_p, seed, max_new_tokens)
        if challenge_seed is not None and (isinstance(challenge_seed, bool) or not isinstance(challenge_seed, int)):
            raise TypeError("challenge_seed must be an int or None")
        if self.sample_chunks is not None and challenge_seed is None:
            raise ValueError("sample_chunks needs a challenge_seed drawn after the claim")
        pub = provider_public_key(provider)
        precision = precision_of(model)

        def reject(reason: str, **details: Any) -> Verdict:
            return Verdict.reject(reason, scheme=self.name, details={"precision": precision, **details},
                                  cost=Cost(seconds=time.perf_counter() - t0))

        toks = provider_tokens(tokens, cfg, len(prompt), max_new_tokens)
        if isinstance(toks, str):
            return reject(toks)
        n = int(toks.shape[0])
        raw = read_proof(proof)
        if isinstance(raw, str):
            return reject(raw)
        parsed = parse_proof(raw, n)
        if isinstance(parsed, str):
            return reject(parsed)
        if parsed.precision != precision:
            return reject(f"proof commits {parsed.precision} activations; the job's precision is {precision}")
        binding = binding_digest(prompt=prompt, tokens=toks, model_hash=model_hash(model), temperature=sp.temperature,
                                 top_p=sp.top_p, seed=sp.seed, precision=precision, provider=pub)
        if not verify_sig(pub, signed_message(binding, parsed.header, parsed.payload), parsed.signature):
            return reject("proof signature does not bind this job (prompt, model, sampling, tokens) to the provider")

        n_chunks = math.ceil(n / CHUNK)
        chunks = list(range(n_chunks))
        if self.sample_chunks is not None and self.sample_chunks < n_chunks:
            rng = np.random.default_rng(challenge_seed)
            chunks = sorted(int(c) for c in rng.choice(n_chunks, size=self.sample_chunks, replace=False))
        stop = min(n, (chunks[-1] + 1) * CHUNK)
        L = len(prompt)
        with caller_code("the job's model (a prefill over screened tokens)"):  # its failure is never the provider's
            pre = prefill(model, np.concatenate([prompt, toks[:stop - 1]]))
        hidden, logits = pre.hidden[L - 1:], pre.logits[L - 1:]
        tol = self._tol(precision)
        tc = check_tokens(logits, toks[:stop], sp, first_position=L, atol=tol.logit_atol, mass_atol=tol.mass_atol)
        bc = band_count(tc, stop, band_rate=tol.band_rate, band_alpha=tol.band_alpha, edge_rate=tol.edge_rate,
                        edge_alpha=tol.edge_alpha, nucleus=not sp.greedy and sp.top_p < 1.0,
                        precision=precision)
        details: dict[str, Any] = {
            "precision": precision, "n_tokens": n, "checked_tokens": stop, "checked_chunks": chunks,
            "near_ties": tc.near_ties, "band_uses": tc.near_ties, "band_limit": bc.band_limit,
            "edge_uses": tc.edge_uses, "edge_limit": bc.edge_limit, "outside_uses": tc.outside_uses,
            "ambiguous": tc.ambiguous, "first_bad_token": tc.first_bad,
            "proof_bytes": len(raw), "proof_bytes_per_32": len(raw) * CHUNK / n, "challenge_seed": challenge_seed,
        }
        if self.activations:
            cc = check_commitment(parsed, hidden, rtol=tol.rtol, max_misses=tol.max_misses, chunks=chunks,
                                  max_inexact=tol.max_inexact)
            details.update(misses=list(cc.misses), inexact=list(cc.inexact), max_rel_err=list(cc.max_rel_err),
                           median_rel_err=list(cc.median_rel_err), first_bad_chunk=cc.first_bad)
        cost = Cost(flops=_flops(cfg, 0, L + stop - 1), seconds=time.perf_counter() - t0,
                    evidence_bytes=float(len(raw) + 8 * n), reexecuted_fraction=(L + stop - 1) / (L + n - 1))
        if not tc.ok:
            return Verdict.reject(f"token {tc.first_bad} is not what the job's sampler draws from the model's logits",
                                  scheme=self.name, details=details, cost=cost)
        if self.activations and not cc.ok:
            c = cc.first_bad
            i = chunks.index(c)
            what = (f"{cc.misses[i]} committed activations differ from the model's beyond {precision} tolerance "
                    f"(allowed {tol.max_misses})" if cc.misses[i] > tol.max_misses else
                    f"{cc.inexact[i]} committed activations are not bit-identical to the model's "
                    f"(allowed {tol.max_inexact} at {precision})")
            return Verdict.reject(f"chunk {c}: {what}", scheme=self.name, details=details, cost=cost)
        if not bc.ok:
            return Verdict.reject(bc.reason, scheme=self.name, details=details, cost=cost)
        return Verdict.accept(f"{n} tokens and {len(chunks)} activation chunks match the model at {precision}",
                              scheme=self.name, details=details, cost=cost)
