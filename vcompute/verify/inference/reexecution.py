"""The baseline: re-execute the generation, bitwise or with tolerance.

``bitwise`` regenerates the tokens on the verifier's hardware (a full
KV-cache generation) and requires the same tokens: simple and strong, but
an honest provider on another backend is rejected wherever a near-tie falls
the other way, and it costs a whole generation. ``tolerance`` recomputes the
logits in one prefill pass over the provider's tokens and applies the token
checks of :mod:`.tokens` alone: no false rejects, but a model perturbed too
little to flip a draw (or a cheaper model that agrees on the tokens) passes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vcompute.core.types import Cost, Verdict
from vcompute.verify.base import caller_code
from vcompute.verify.inference.tokens import check_tokens, job_arguments, provider_tokens
from vcompute.verify.inference.tolerance import tolerance_for

__all__ = ["Reexecution"]


class Reexecution:
    """Re-execution of a generation job.

    Args:
        mode: ``"bitwise"`` (regenerate, tokens must be identical) or ``"tolerance"``
            (prefill, every token must pass the near-tie rule).

    Raises:
        ValueError: for another mode.

    Example:
        >>> from vcompute.workloads.lm import LMConfig, TransformerLM, generate
        >>> m = TransformerLM(LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64), seed=0)
        >>> g = generate(m, [256, 72], max_new_tokens=6)
        >>> Reexecution(mode="bitwise").check(m, [256, 72], g.tokens).accepted
        True
    """

    name = "generate-reexecution"

    def __init__(self, *, mode: str = "tolerance") -> None:
        if mode not in ("bitwise", "tolerance"):
            raise ValueError(f"mode must be 'bitwise' or 'tolerance', got {mode!r}")
        self.mode = mode

    def check(self, model: Any, prompt_ids: Any, tokens: Any, proof: Any = None, *, temperature: float = 0.0,
              top_p: float = 1.0, seed: int = 0, challenge_seed: int | None = None,
              max_new_tokens: int | None = None, provider: Any = None) -> Verdict:
        """Verify ``tokens`` by re-execution (``proof``, ``challenge_seed``, ``provider`` are not used).

        Raises:
            TypeError, ValueError: for the caller's malformed arguments.
        """
        from vcompute.workloads.lm.generation import generate, prefill
        from vcompute.workloads.lm.weights import precision_of

        t0 = time.perf_counter()
        cfg, prompt, sp = job_arguments(model, prompt_ids, temperature, top_p, seed, max_new_tokens)
        toks = provider_tokens(tokens, cfg, len(prompt), max_new_tokens)
        if isinstance(toks, str):
            return Verdict.reject(toks, scheme=self.name)
        n = int(toks.shape[0])
        L = len(prompt)
        flops = float(sum(cfg.flops_per_token(c + 1) for c in range(L + n - 1)))
        if self.mode == "bitwise":
            with caller_code("the job's model (a generation)"):
                mine = generate(model, prompt, max_new_tokens=n, temperature=sp.temperature, top_p=sp.top_p,
                                seed=sp.seed)
            diff = np.flatnonzero(mine.tokens != toks)
            cost = Cost(flops=flops, seconds=time.perf_counter() - t0, evidence_bytes=8.0 * n, reexecuted_fraction=1.0)
            if diff.size:
                return Verdict.reject(f"token {int(diff[0])} differs from the re-executed generation",
                                      scheme=self.name, cost=cost, details={"first_bad_token": int(diff[0])})
            return Verdict.accept(f"{n} tokens identical to the re-execution", scheme=self.name, cost=cost)
        with caller_code("the job's model (a prefill over screened tokens)"):
            pre = prefill(model, np.concatenate([prompt, toks[:-1]]))
        tol = tolerance_for(precision_of(model))
        tc = check_tokens(pre.logits[L - 1:], toks, sp, first_position=L, atol=tol.logit_atol,
                          mass_atol=tol.mass_atol)
        cost = Cost(flops=flops, seconds=time.perf_counter() - t0, evidence_bytes=8.0 * n, reexecuted_fraction=1.0)
        details = {"first_bad_token": tc.first_bad, "near_ties": tc.near_ties, "ambiguous": tc.ambiguous}
        if not tc.ok:
            return Verdict.reject(f"token {tc.first_bad} is not what the job's sampler draws", scheme=self.name,
                                  cost=cost, details=details)
        return Verdict.accept(f"{n} tokens pass the token checks", scheme=self.name, cost=cost, details=details)
