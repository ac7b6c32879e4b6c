"""The ``generate`` job kind: LM text generation with an activation-commitment proof (:mod:`vcompute.workloads.lm`).

A job is a prompt for the consumer's model, sampling parameters and a
length (:func:`~vcompute.workloads.lm.job.make_generate_job`); a claim carries
the tokens and ``evidence["proof"]``, checked by one prefill pass
(``"generate"``, :class:`~vcompute.verify.inference.GenerationVerifier`).
Behaviours are the LM adversaries (``generate/<name>``,
:mod:`vcompute.workloads.lm.adversaries`).

Example:
    >>> import numpy as np
    >>> k = GenerateKind()
    >>> job = k.make_job("tiny", seed=0)
    >>> k.execute(job, "honest", rng=np.random.default_rng(0), provider="p").output.shape
    (16,)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from vcompute.core.types import Claim, Job
from vcompute.workloads.kinds.base import JobKind

__all__ = ["GenerateKind"]

_MODELS: dict[str, Any] = {}


class GenerateKind(JobKind):
    """Sampled LM generation, checked by a prefill pass over the committed activations."""

    name = "generate"
    #: (model config, prompt length, new tokens)
    sizes = {"tiny": ({"vocab": 300, "d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 64, "max_len": 64}, 8, 16),
             "small": ({"vocab": 300, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "max_len": 128},
                       16, 16)}
    default_size = "tiny"
    verifiers = ("generate",)
    cheats = {"random_output": "other_prompt_replay", "skip_k": "fewer_layers", "low_precision": "low_precision"}
    backends = ("torch",)

    def make_job(self, size: Any = None, *, seed: int, backend: str = "torch") -> Job:
        """A generate job for the consumer's model of ``size`` (fixed weights) on a seeded prompt.

        Raises:
            ValueError: for an unknown size or a backend other than torch.
        """
        from vcompute.workloads.lm.job import make_generate_job

        name = self.resolve(size, backend)
        cfg, prompt_len, new = self.sizes[name]
        model = _model(name, cfg)
        prompt = np.random.default_rng([int(seed), 23]).integers(0, 256, prompt_len)
        job = make_generate_job(model, prompt, max_new_tokens=new, temperature=0.8, top_p=0.9, seed=int(seed))
        # the job's arrays are views of the model every job of this size shares: a provider holding the
        # job that wrote into them would rewrite the consumer's model for this job and every later one
        inputs = {k: _owned(v) for k, v in job.inputs.items() if k != "weights"}
        inputs["weights"] = MappingProxyType({k: _owned(v) for k, v in job.inputs["weights"].items()})
        return Job(job.kind, dict(job.spec), inputs)

    def flops(self, job: Job) -> float:
        """``2 params`` per token of the prompt and the generation (the forward passes)."""
        s = self.check_job(job).spec
        n_params = sum(int(np.prod(np.shape(w))) for w in job.inputs["weights"].values())
        return 2.0 * n_params * (int(s["prompt_len"]) + int(s["max_new_tokens"]))

    def _claim_of(self, job: Job, behaviour: str, fn: Any, rng: np.random.Generator, provider: str,
                  params: Mapping[str, Any]) -> Claim:
        from vcompute.workloads.lm.job import run_generate

        return run_generate(job, behaviour, rng=rng, provider=provider, **params)


def _model(name: str, cfg: Mapping[str, Any]) -> Any:
    """The consumer's model of a named size (seeded once; every job of the size uses it)."""
    if name not in _MODELS:
        from vcompute.workloads.lm import LMConfig, TransformerLM

        _MODELS[name] = TransformerLM(LMConfig(**cfg), seed=0)
    return _MODELS[name]


def _owned(a: Any) -> np.ndarray:
    """A read-only copy of ``a`` that shares no memory."""
    out = np.array(a, copy=True)
    out.setflags(write=False)
    return out
