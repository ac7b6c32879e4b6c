"""The GPT-2-style decoder-only LM in torch.

Token and position embeddings, pre-LN blocks (causal multi-head attention,
tanh-GELU MLP), a final LayerNorm and a head tied to the token embedding.
Attention is written out (no fused kernel) so that the torch and JAX models
compute the same operations in the same order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vcompute.workloads.lm.config import LMConfig

__all__ = ["TransformerLM", "LMOutput"]


@dataclass
class LMOutput:
    """One forward pass.

    Attributes:
        hidden: last hidden states (after the final LayerNorm), ``[B, T, d_model]``.
        logits: next-token logits, ``[B, T, vocab]``.
        past: per-layer ``(keys, values)`` including this pass, for KV-cache decoding.
    """

    hidden: Any
    logits: Any
    past: list


class _Block(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.c_attn = nn.Linear(d, 3 * d)
        self.attn_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.c_fc = nn.Linear(d, cfg.d_ff)
        self.mlp_proj = nn.Linear(cfg.d_ff, d)

    def forward(self, x, mask, past):
        b, t, d = x.shape
        h = self.n_heads
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d // h))
        att = att.masked_fill(~mask, float("-inf")).float().softmax(dim=-1).to(v.dtype)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.attn_proj(y)
        x = x + self.mlp_proj(nn.functional.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x, (k, v)


class TransformerLM(nn.Module):
    """A decoder-only transformer LM (GPT-2 architecture), float32 at init.

    Convert with ``.to(torch.bfloat16)`` for a bf16 job; every pass then runs
    in that dtype (softmax and the tied head in float32, as serving stacks do).

    Args:
        cfg: the sizes.
        seed: torch seed of the random initialisation (GPT-2's: N(0, 0.02)).

    Example:
        >>> from vcompute.workloads.lm import LMConfig
        >>> m = TransformerLM(LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=16), seed=0)
        >>> m(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 300])
    """

    def __init__(self, cfg: LMConfig, *, seed: int = 0) -> None:
        if not isinstance(cfg, LMConfig):
            raise TypeError(f"TransformerLM takes an LMConfig, got {type(cfg).__name__}")
        if type(seed) is not int:
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed)
        self.wte = nn.Embedding(cfg.vocab, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=1e-5)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif "ln" in name:
                    p.fill_(1.0)
                else:
                    std = 0.02 / math.sqrt(2 * cfg.n_layers) if name.endswith("proj.weight") else 0.02
                    p.copy_(torch.randn(p.shape, generator=gen) * std)
        self.eval()

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in."""
        return self.wte.weight.dtype

    def run(self, ids, *, positions=None, key_mask=None, past=None) -> LMOutput:
        """A forward pass over ``ids`` ``[B, T]``, continuing ``past`` if given.

        Args:
            ids: token ids, int64 ``[B, T]``.
            positions: position of each token ``[B, T]`` (default ``past_len + arange(T)``).
            key_mask: bool ``[B, past_len + T]``, False for padding keys (default: all valid).
            past: the ``past`` of a previous :class:`LMOutput`.

        Returns:
            The hidden states, logits and the extended cache.
        """
        b, t = ids.shape
        s0 = 0 if past is None else past[0][0].shape[2]
        if positions is None:
            positions = torch.arange(s0, s0 + t).expand(b, t)
        x = self.wte(ids) + self.wpe(positions)
        causal = torch.ones(t, s0 + t, dtype=torch.bool).tril(diagonal=s0)
        mask = causal[None, None]
        if key_mask is not None:
            # a padding query still sees itself, so its (unused) row stays finite instead of 0/0
            self_key = torch.zeros(t, s0 + t, dtype=torch.bool)
            self_key[torch.arange(t), s0 + torch.arange(t)] = True
            mask = (mask & key_mask[:, None, None, :]) | self_key[None, None]
        present = []
        for i, blk in enumerate(self.blocks):
            x, kv = blk(x, mask, None if past is None else past[i])
            present.append(kv)
        hidden = self.ln_f(x)
        # the head runs in float32 whatever the model's dtype: bf16 logits would round ~1/256 apart and tie
        return LMOutput(hidden=hidden, logits=hidden.float() @ self.wte.weight.float().T, past=present)

    def forward(self, ids):
        """Logits ``[B, T, vocab]`` of ``ids`` ``[B, T]`` (no cache)."""
        return self.run(ids).logits
