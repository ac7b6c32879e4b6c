"""The shape of a decoder-only LM (GPT-2 architecture) and its named sizes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["LMConfig", "CONFIGS", "PRECISIONS", "config_named"]

#: Job precisions a generation can claim (the dtype of weights and activations).
PRECISIONS = ("float32", "bfloat16", "float16")


def _positive_int(name: str, v: Any) -> int:
    if type(v) is not int:
        raise TypeError(f"LMConfig.{name} must be an int, got {type(v).__name__}")
    if v <= 0:
        raise ValueError(f"LMConfig.{name} must be positive, got {v}")
    return v


@dataclass(frozen=True)
class LMConfig:
    """Sizes of a GPT-2-style decoder-only transformer.

    Attributes:
        vocab: vocabulary size (the byte tokenizer needs >= 258).
        d_model: width of the residual stream.
        n_layers: number of transformer blocks.
        n_heads: attention heads (must divide ``d_model``).
        d_ff: hidden width of each MLP.
        max_len: longest sequence (prompt + generated tokens).

    Raises:
        TypeError: if a size is not an int.
        ValueError: if a size is not positive or ``n_heads`` does not divide ``d_model``.

    Example:
        >>> LMConfig(vocab=512, d_model=64, n_layers=2, n_heads=4, d_ff=256, max_len=128).head_dim
        16
    """

    vocab: int = 512
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 512
    max_len: int = 512

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _positive_int(f.name, getattr(self, f.name))
        if self.d_model % self.n_heads:
            raise ValueError(f"LMConfig.n_heads={self.n_heads} must divide d_model={self.d_model}")
        if self.vocab > 2**20 or 32 * self.d_model >= 65521:
            raise ValueError("LMConfig needs vocab <= 2**20 (sampler counters) and d_model < 2047 "
                             "(a chunk's flat indices must stay below the 16-bit commitment field)")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, int]:
        """The config as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LMConfig:
        """The config from :meth:`to_dict` output.

        Raises:
            ValueError: naming unknown keys.
        """
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown LMConfig keys {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> LMConfig:
        """A copy with ``changes`` applied (e.g. ``n_layers=2``)."""
        return dataclasses.replace(self, **changes)

    def flops_per_token(self, context: int) -> float:
        """Multiply-adds x 2 of one token's forward pass at ``context`` tokens of attention."""
        d, f, L = self.d_model, self.d_ff, self.n_layers
        per_layer = 2 * (3 * d * d + d * d + 2 * d * f) + 4 * context * d
        return float(L * per_layer + 2 * d * self.vocab)


#: Named sizes: ``tiny`` for tests, ``small`` (d=256, 4 layers), ``gpt2-small`` (d=768, 12 layers, 12 heads).
CONFIGS: dict[str, LMConfig] = {
    "tiny": LMConfig(vocab=512, d_model=64, n_layers=2, n_heads=4, d_ff=256, max_len=512),
    "small": LMConfig(vocab=512, d_model=256, n_layers=4, n_heads=4, d_ff=1024, max_len=512),
    "gpt2-small": LMConfig(vocab=512, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_len=512),
}


def config_named(name: str) -> LMConfig:
    """The config called ``name`` in :data:`CONFIGS`.

    Raises:
        ValueError: naming the known sizes.
    """
    if name not in CONFIGS:
        raise ValueError(f"unknown LM size {name!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[name]
