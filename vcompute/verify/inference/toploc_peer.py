"""The peer scheme, side by side: TOPLOC proofs built and checked on our generations.

Paper: J. M. Ong et al., "TOPLOC: A Locality Sensitive Hashing Scheme for
Trustless Verifiable Inference", ICML 2025 (arxiv.org/abs/2501.16007); the
``toploc`` package (0.1.6) is its reference implementation. A TOPLOC proof is,
per chunk of ``chunk`` (32) generated tokens, a polynomial over a 16-bit
prime field interpolating the ``topk`` (128) largest-magnitude entries of the
chunk's last hidden states, as bf16 bit patterns: 258 bytes per 32 tokens.
The verifier recomputes the hidden states in one prefill pass (the same pass
as :class:`~vcompute.verify.GenerationVerifier`) and counts, over its own
top-k, exponent mismatches and mantissa differences against the polynomial.

What the adapter adds, and what it does not:

- it validates the proof's layout before the package sees it: ``toploc`` 0.1.6
  divides by the modulus it reads from the bytes, so a zero modulus kills the
  verifier's process with SIGFPE (``tests/verify/test_toploc_peer.py``);
- TOPLOC commits bf16 activations only: an fp32 job is checked here after
  rounding its activations to bf16 (what TOPLOC can do), ``bf16_cast`` in the
  verdict's details;
- like the package, it checks activations only: no token or sampler check, no
  binding of the proof to the prompt, model or provider, no signature (the
  comparison in ``benchmarks/inference.py`` shows what that misses).

``toploc`` is imported lazily; install it with ``make peers``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompute.core.types import Cost, Verdict
from vcompute.verify.base import caller_code

__all__ = ["ToplocThresholds", "ToplocPeer", "require_toploc", "toploc_activations"]


def require_toploc() -> Any:
    """The ``toploc`` module.

    Raises:
        ImportError: naming ``make peers`` (the package builds from source against our torch).
    """
    try:
        import toploc
    except Exception as e:  # a wheel built against another torch fails with OSError / ImportError
        raise ImportError("the TOPLOC peer needs the toploc package: run `make peers` (it builds toploc 0.1.6 "
                          "from source against the installed torch; its wheel does not import with torch 2.13)"
                          ) from e
    return toploc


@dataclass(frozen=True)
class ToplocThresholds:
    """Acceptance thresholds of one TOPLOC chunk (exceed any one and the chunk fails).

    Attributes:
        exp_mismatches: top-k entries whose bf16 exponent differs (of ``topk``).
        mant_err_mean: mean mantissa difference (in bf16 mantissa units) over entries with equal exponents.
        mant_err_median: median of the same.
    """

    exp_mismatches: int = 8
    mant_err_mean: float = 10.0
    mant_err_median: float = 8.0


def toploc_activations(hidden: Any, precision: str):
    """Our hidden states (bit patterns ``[n, d]`` of the job's precision) as the bf16 tensor TOPLOC takes."""
    import torch

    from vcompute.workloads.lm.proof import bits_to_float

    if precision == "bfloat16":
        return torch.from_numpy(np.ascontiguousarray(hidden).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.asarray(bits_to_float(hidden, precision), np.float32)).to(torch.bfloat16)


class ToplocPeer:
    """TOPLOC proofs over a generation's last hidden states, built and verified with the ``toploc`` package.

    Args:
        chunk: tokens per proof polynomial (TOPLOC's ``decode_batching_size``).
        topk: entries committed per chunk.
        thresholds: per-chunk acceptance thresholds.

    Raises:
        ValueError: for malformed arguments.

    Example (needs the toploc package: ``make peers``; ``tests/verify/test_toploc_peer.py`` runs it):
        >>> from vcompute.workloads.lm import LMConfig, TransformerLM, generate, cast
        >>> m = cast(TransformerLM(LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64)),
        ...          "bfloat16")
        >>> g = generate(m, [256, 72], max_new_tokens=40)
        >>> peer = ToplocPeer()
        >>> proof = peer.build(g.hidden, "bfloat16")  # doctest: +SKIP
        >>> len(proof), peer.check(m, [256, 72], g.tokens, proof).accepted  # doctest: +SKIP
        (516, True)
    """

    name = "toploc"

    def __init__(self, *, chunk: int = 32, topk: int = 128, thresholds: ToplocThresholds | None = None) -> None:
        if type(chunk) is not int or chunk < 1 or type(topk) is not int or topk < 1:
            raise ValueError(f"chunk and topk must be positive ints, got {chunk!r}, {topk!r}")
        self.chunk, self.topk = chunk, topk
        self.thresholds = thresholds or ToplocThresholds()

    @property
    def chunk_bytes(self) -> int:
        """Bytes of one chunk's proof: the 16-bit modulus and ``topk`` 16-bit coefficients."""
        return 2 + 2 * self.topk

    def build(self, hidden: Any, precision: str) -> bytes:
        """The provider's TOPLOC proof over the hidden states that produced each token.

        Args:
            hidden: bit patterns ``[n, d]`` (a :class:`~vcompute.workloads.lm.Generation`'s ``hidden``).
            precision: the job's precision (float32 activations are rounded to bf16 first).

        Raises:
            ValueError: if a chunk has fewer than ``topk`` entries.
        """
        toploc = require_toploc()
        acts = toploc_activations(hidden, precision)
        n, d = acts.shape
        last = n - (math.ceil(n / self.chunk) - 1) * self.chunk
        if last * d < self.topk:
            raise ValueError(f"the last chunk holds {last * d} activations, fewer than topk={self.topk}")
        return b"".join(toploc.build_proofs_bytes(acts, self.chunk, self.topk, skip_prefill=True))

    def _layout_problem(self, raw: bytes, n_chunks: int) -> str | None:
        if len(raw) != n_chunks * self.chunk_bytes:
            return f"toploc proof has {len(raw)} bytes; {n_chunks} chunks need {n_chunks * self.chunk_bytes}"
        for c in range(n_chunks):
            modulus = int.from_bytes(raw[c * self.chunk_bytes:c * self.chunk_bytes + 2], "big")
            if modulus < 2:  # toploc 0.1.6 computes x % modulus in C++: 0 is SIGFPE
                return f"toploc proof chunk {c} has modulus {modulus}"
        return None

    def check(self, model: Any, prompt_ids: Any, tokens: Any, proof: Any) -> Verdict:
        """Verify a TOPLOC proof of ``tokens`` by one prefill pass (activations only, as the package does).

        Args:
            model: the job's model (torch or JAX); its precision decides whether a bf16 cast is needed.
            prompt_ids: the job's prompt.
            tokens: the provider's tokens.
            proof: the provider's TOPLOC proof (bytes).

        Returns:
            The verdict; ``details`` holds each chunk's exponent mismatches and mantissa errors.

        Raises:
            TypeError, ValueError: for the caller's malformed arguments.
        """
        from vcompute.verify.inference.tokens import as_tokens
        from vcompute.verify.inference.verifier import read_proof
        from vcompute.workloads.lm.generation import as_prompt, prefill
        from vcompute.workloads.lm.weights import precision_of

        t0 = time.perf_counter()
        toploc = require_toploc()
        if type(model).__name__ not in ("TransformerLM", "JaxTransformerLM"):
            raise TypeError(f"model must be a TransformerLM or JaxTransformerLM, got {type(model).__name__}")
        prompt = as_prompt(prompt_ids, model.cfg.vocab)
        precision = precision_of(model)

        def reject(reason: str) -> Verdict:
            return Verdict.reject(reason, scheme=self.name, cost=Cost(seconds=time.perf_counter() - t0))

        toks = as_tokens(tokens, model.cfg.vocab)
        if isinstance(toks, str):
            return reject(toks)
        n = int(toks.shape[0])
        if len(prompt) + n > model.cfg.max_len:
            return reject(f"prompt + tokens exceed the model's max_len {model.cfg.max_len}")
        raw = read_proof(proof)
        if isinstance(raw, str):
            return reject(raw)
        n_chunks = math.ceil(n / self.chunk)
        problem = self._layout_problem(raw, n_chunks)
        if problem:
            return reject(problem)
        L = len(prompt)
        t_pre = time.perf_counter()
        with caller_code("the job's model (a prefill over screened tokens)"):
            hidden = prefill(model, np.concatenate([prompt, toks[:-1]])).hidden[L - 1:]
        prefill_s = time.perf_counter() - t_pre
        acts = toploc_activations(hidden, precision)
        parts = [raw[c * self.chunk_bytes:(c + 1) * self.chunk_bytes] for c in range(n_chunks)]
        try:
            results = toploc.verify_proofs_bytes(acts, parts, self.chunk, self.topk, skip_prefill=True)
        except Exception as e:  # the package's own parse errors on provider bytes
            return reject(f"toploc could not read the proof ({type(e).__name__})")
        th = self.thresholds
        rows = [(int(r.exp_mismatches), float(r.mant_err_mean), float(r.mant_err_median)) for r in results]
        bad = [c for c, (e, mean, med) in enumerate(rows)
               if not (e <= th.exp_mismatches and mean <= th.mant_err_mean and med <= th.mant_err_median)]
        details = {"chunks": rows, "bf16_cast": precision != "bfloat16", "precision": precision,
                   "proof_bytes_per_32": len(raw) * 32 / n, "prefill_seconds": prefill_s}
        cost = Cost(seconds=time.perf_counter() - t0, evidence_bytes=float(len(raw)), reexecuted_fraction=1.0)
        if bad or len(rows) != n_chunks:
            c = bad[0] if bad else len(rows)
            return Verdict.reject(f"toploc chunk {c} fails its thresholds: {rows[c] if bad else 'missing'}",
                                  scheme=self.name, details=details, cost=cost)
        return Verdict.accept(f"{n_chunks} toploc chunks within thresholds", scheme=self.name, details=details,
                              cost=cost)
