"""A decoder-only LM workload (GPT-2 architecture) in torch and JAX, and the ``generate`` job kind.

``LMConfig``, the tokenizer, the sampler and the proof format need numpy
only; ``TransformerLM`` imports torch and ``JaxTransformerLM`` JAX when first
used.

Example:
    >>> from vcompute.workloads.lm import LMConfig, TransformerLM, generate
    >>> m = TransformerLM(LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64), seed=0)
    >>> generate(m, [256, 104], max_new_tokens=4).tokens.dtype
    dtype('int64')
"""

from __future__ import annotations

import importlib
from typing import Any

from vcompute.workloads.lm.config import CONFIGS, PRECISIONS, LMConfig, config_named
from vcompute.workloads.lm.sampling import SamplingParams, sample
from vcompute.workloads.lm.tokenizer import BOS, EOS, decode, encode

_LAZY = {
    "TransformerLM": "vcompute.workloads.lm.torch_model",
    "LMOutput": "vcompute.workloads.lm.torch_model",
    "JaxTransformerLM": "vcompute.workloads.lm.jax_model",
    "to_jax": "vcompute.workloads.lm.jax_model",
    "to_torch": "vcompute.workloads.lm.jax_model",
    "Generation": "vcompute.workloads.lm.generation",
    "Prefill": "vcompute.workloads.lm.generation",
    "generate": "vcompute.workloads.lm.generation",
    "generate_batch": "vcompute.workloads.lm.generation",
    "prefill": "vcompute.workloads.lm.generation",
    "model_hash": "vcompute.workloads.lm.weights",
    "precision_of": "vcompute.workloads.lm.weights",
    "save": "vcompute.workloads.lm.weights",
    "load": "vcompute.workloads.lm.weights",
    "with_layers": "vcompute.workloads.lm.weights",
    "cast": "vcompute.workloads.lm.weights",
    "train_on_text": "vcompute.workloads.lm.train",
    "make_generate_job": "vcompute.workloads.lm.job",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vcompute.workloads.lm' has no attribute {name!r}")


__all__ = ["BOS", "CONFIGS", "EOS", "PRECISIONS", "LMConfig", "SamplingParams", "config_named", "decode", "encode",
           "sample", *_LAZY]
