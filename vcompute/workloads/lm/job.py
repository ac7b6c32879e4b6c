"""The ``generate`` job kind: a prompt, a model commitment, sampling parameters and a length.

A job's spec holds the model config and hash, the precision, the sampling
parameters and ``max_new_tokens``; its inputs are the prompt and the
float32 master weights (a bf16 or fp16 job casts them, exactly). A claim
carries the tokens as ``output`` and the proof as ``evidence["proof"]``.
Provider behaviours are ``(job, rng, *, key, **params) -> Generation``,
registered as ``generate/<name>`` in
:data:`~vcompute.workloads.kinds.behaviours.BEHAVIOURS`; :func:`run_generate` runs
one and returns the signed claim.

Example:
    >>> import numpy as np
    >>> from vcompute.workloads.lm import LMConfig, TransformerLM
    >>> m = TransformerLM(LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64), seed=0)
    >>> job = make_generate_job(m, [256, 72], max_new_tokens=8, temperature=0.8, top_p=0.9, seed=3)
    >>> claim = run_generate(job, "honest", rng=np.random.default_rng(0), provider="p1")
    >>> claim.output.shape, job.kind
    ((8,), 'generate')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vcompute.core.hashing import content_hash
from vcompute.core.types import Claim, Job
from vcompute.workloads.lm.config import LMConfig
from vcompute.workloads.lm.sampling import SamplingParams

__all__ = ["make_generate_job", "model_of", "sampling_of", "prompt_of", "run_generate", "GENERATE_BEHAVIOURS"]

#: Deprecated list of the generate kind's provider behaviours (module:attr paths); the registry is
#: :data:`~vcompute.workloads.kinds.behaviours.BEHAVIOURS` (``generate/<name>``).
GENERATE_BEHAVIOURS = {
    "honest": "vcompute.workloads.lm.adversaries:honest",
    "other_model": "vcompute.workloads.lm.adversaries:other_model",
    "fewer_layers": "vcompute.workloads.lm.adversaries:fewer_layers",
    "weight_noise": "vcompute.workloads.lm.adversaries:weight_noise",
    "quantised": "vcompute.workloads.lm.adversaries:quantised",
    "low_precision": "vcompute.workloads.lm.adversaries:low_precision",
    "prompt_altered": "vcompute.workloads.lm.adversaries:prompt_altered",
    "prompt_truncated": "vcompute.workloads.lm.adversaries:prompt_truncated",
    "short_context": "vcompute.workloads.lm.adversaries:short_context",
    "other_seed": "vcompute.workloads.lm.adversaries:other_seed",
    "other_temperature": "vcompute.workloads.lm.adversaries:other_temperature",
    "other_top_p": "vcompute.workloads.lm.adversaries:other_top_p",
    "greedy_for_sampled": "vcompute.workloads.lm.adversaries:greedy_for_sampled",
    "draft_model": "vcompute.workloads.lm.adversaries:draft_model",
    "other_prompt_replay": "vcompute.workloads.lm.adversaries:other_prompt_replay",
    "token_replaced": "vcompute.workloads.lm.adversaries:token_replaced",
    "extended_short_run": "vcompute.workloads.lm.adversaries:extended_short_run",
    "malformed": "vcompute.workloads.lm.adversaries:malformed",
}


def make_generate_job(model: Any, prompt_ids: Any, *, max_new_tokens: int, temperature: float = 0.0,
                      top_p: float = 1.0, seed: int = 0) -> Job:
    """A ``generate`` job for ``model`` (torch) on ``prompt_ids``.

    Raises:
        TypeError, ValueError: for malformed arguments.
    """
    from vcompute.workloads.lm.generation import _check_new_tokens, as_prompt
    from vcompute.workloads.lm.weights import model_hash, precision_of

    if type(model).__name__ != "TransformerLM":
        raise TypeError(f"make_generate_job takes a torch TransformerLM, got {type(model).__name__}")
    prompt = as_prompt(prompt_ids, model.cfg.vocab)
    n = _check_new_tokens(max_new_tokens, model.cfg, len(prompt))
    sp = SamplingParams(temperature, top_p, seed)
    spec = {"config": model.cfg.to_dict(), "model_hash": model_hash(model), "precision": precision_of(model),
            "max_new_tokens": n, "prompt_len": len(prompt), **sp.to_dict()}
    weights = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    return Job("generate", spec, {"prompt": prompt, "weights": weights})


def _check_job(job: Job) -> None:
    if not isinstance(job, Job) or job.kind != "generate":
        raise ValueError("expected a 'generate' job (make_generate_job)")


def model_of(job: Job, backend: str = "torch") -> Any:
    """The job's model on ``backend`` (``torch`` or ``jax``) at the job's precision.

    Raises:
        ValueError: for another job kind, another backend, or weights that do not match the job's hash.
    """
    from vcompute.workloads.lm.weights import model_hash

    _check_job(job)
    cfg = LMConfig.from_dict(dict(job.spec["config"]))
    cache = job.__dict__.setdefault("_lm_models", {})
    if backend in cache:
        return cache[backend]
    if backend == "torch":
        import torch

        from vcompute.workloads.lm.torch_model import TransformerLM

        m = TransformerLM(cfg, seed=0)
        m.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32).copy()) for k, v in job.inputs["weights"].items()})
        m = m.to(getattr(torch, job.spec["precision"]))
    elif backend == "jax":
        from vcompute.workloads.lm.jax_model import JaxTransformerLM

        m = JaxTransformerLM(cfg, dict(job.inputs["weights"]), precision=job.spec["precision"])
    else:
        raise ValueError(f"backend must be 'torch' or 'jax', got {backend!r}")
    if model_hash(m) != job.spec["model_hash"]:
        raise ValueError("the job's weights do not match its model hash")
    cache[backend] = m
    return m


def sampling_of(job: Job) -> SamplingParams:
    """The job's sampling parameters."""
    _check_job(job)
    return SamplingParams(job.spec["temperature"], job.spec["top_p"], job.spec["seed"])


def prompt_of(job: Job) -> np.ndarray:
    """The job's prompt (int64)."""
    _check_job(job)
    return np.asarray(job.inputs["prompt"], dtype=np.int64)


def run_generate(job: Job, behaviour: str = "honest", *, rng: np.random.Generator, provider: str = "provider",
                 key=None, **params: Any) -> Claim:
    """Run ``job`` as ``provider`` with the named behaviour and return its claim.

    Args:
        job: a ``generate`` job.
        behaviour: a name in :data:`GENERATE_BEHAVIOURS`.
        rng: the provider's randomness.
        provider: the provider's name (its simulated key is derived from it unless ``key`` is given).
        key: the provider's signing key.
        **params: behaviour parameters.

    Raises:
        ValueError: for an unknown behaviour.
    """
    from vcompute.core.signing import key_from_name
    from vcompute.workloads.kinds.behaviours import BEHAVIOURS

    _check_job(job)
    if type(behaviour) is not str or f"generate/{behaviour}" not in BEHAVIOURS:
        raise ValueError(f"unknown generate behaviour {behaviour!r}; known: "
                         f"{', '.join(BEHAVIOURS.of_kind('generate'))}")
    gen = BEHAVIOURS.of("generate", behaviour)(job, rng, key=key or key_from_name(provider), **params)
    out = gen.tokens
    commitment = content_hash(out) if isinstance(out, np.ndarray) and out.dtype.kind in "iuf" else None
    return Claim(job_id=job.id, provider=provider, output=out, commitment=commitment,
                 evidence={"proof": gen.proof}, meta={"behaviour": behaviour})
