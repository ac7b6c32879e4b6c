"""The prefill trace a provider returns for a sampled-glue check: every intermediate tensor of one forward pass.

The trace of an LM (:class:`~vcompute.workloads.lm.TransformerLM`, float32)
over ``T`` tokens is a dict of float32 arrays, one per named tensor of
:data:`TRACE_SHAPES` (``L`` layers, width ``d``, MLP width ``f``, vocab ``V``):

- ``x`` ``[L+1, T, d]``: the residual stream (``x[0]`` the embeddings, ``x[i+1]`` block ``i``'s output);
- per block: ``ln1``, ``qkv`` ``[L, T, 3d]``, ``attn`` (heads concatenated, before the projection),
  ``attn_out``, ``mid`` (``x + attn_out``), ``ln2``, ``fc`` ``[L, T, f]``, ``gelu`` ``[L, T, f]``, ``mlp_out``;
- ``hidden`` ``[T, d]`` (after the final LayerNorm) and ``logits`` ``[T, V]``.

:func:`trace_prefill` computes it honestly, with the same operations in the
same order as :meth:`TransformerLM.run`; its ``glue`` argument replaces the
non-linear pieces, which is how the tests build real cheating providers (a
cheaper GELU, a LayerNorm wrong on some rows, a short attention window, a
skipped block) whose every other tensor is computed honestly from the lie.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["TRACE_KEYS", "trace_shapes", "trace_prefill"]

#: The tensors of a trace, in forward order.
TRACE_KEYS = ("x", "ln1", "qkv", "attn", "attn_out", "mid", "ln2", "fc", "gelu", "mlp_out", "hidden", "logits")


def trace_shapes(cfg: Any, T: int) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of the trace of ``T`` tokens under ``cfg`` (an :class:`LMConfig`)."""
    L, d, f = cfg.n_layers, cfg.d_model, cfg.d_ff
    per = {"ln1": d, "qkv": 3 * d, "attn": d, "attn_out": d, "mid": d, "ln2": d, "fc": f, "gelu": f, "mlp_out": d}
    shapes = {"x": (L + 1, T, d), **{k: (L, T, w) for k, w in per.items()}}
    shapes.update(hidden=(T, d), logits=(T, cfg.vocab))
    return shapes


def _attention(q, k, v, n_heads: int):
    """Causal attention of ``[T, d]`` query/key/value rows, as :class:`TransformerLM` computes it."""
    import torch

    t, d = q.shape
    q, k, v = (z.view(1, t, n_heads, d // n_heads).transpose(1, 2) for z in (q, k, v))
    mask = torch.ones(t, t, dtype=torch.bool).tril()[None, None]
    att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d // n_heads))
    att = att.masked_fill(~mask, float("-inf")).float().softmax(dim=-1).to(v.dtype)
    return (att @ v).transpose(1, 2).reshape(t, d)


def trace_prefill(model: Any, ids: Any, *, glue: Mapping[str, Callable] | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` over ``ids`` once and record every intermediate tensor (the provider's side).

    Args:
        model: a float32 :class:`~vcompute.workloads.lm.TransformerLM`.
        ids: 1-D token ids (at most ``max_len``).
        glue: replacements of the non-linear pieces, for building cheating providers:
            ``"layer_norm"(layer, which, x, module) -> y`` (``which`` is ``"ln1"``, ``"ln2"`` or
            ``"ln_f"``; layer -1 for ``ln_f``), ``"gelu"(layer, x) -> y``,
            ``"attention"(layer, q, k, v, n_heads) -> y``, ``"block"(layer, tensors) -> tensors``
            (rewrite a block's recorded tensors, e.g. to skip it). None computes honestly.

    Returns:
        The trace: a dict of float32 numpy arrays keyed by :data:`TRACE_KEYS`.

    Raises:
        TypeError: if ``model`` is not a float32 TransformerLM.
        ValueError: for malformed ``ids``.

    Example:
        >>> from vcompute.workloads.lm import LMConfig, TransformerLM
        >>> m = TransformerLM(LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=16))
        >>> trace_prefill(m, [256, 1, 2])["qkv"].shape
        (1, 3, 96)
    """
    import torch

    from vcompute.workloads.lm.generation import as_prompt

    if type(model).__name__ != "TransformerLM" or model.dtype != torch.float32:
        raise TypeError("trace_prefill needs a float32 torch TransformerLM (the glue check is calibrated at float32)")
    cfg = model.cfg
    ids_np = as_prompt(ids, cfg.vocab, "ids")
    if len(ids_np) > cfg.max_len:
        raise ValueError(f"ids has {len(ids_np)} tokens; the model's max_len is {cfg.max_len}")
    g = dict(glue or {})
    ln = g.get("layer_norm", lambda layer, which, x, mod: mod(x))
    gelu = g.get("gelu", lambda layer, x: torch.nn.functional.gelu(x, approximate="tanh"))
    attention = g.get("attention", lambda layer, q, k, v, h: _attention(q, k, v, h))
    rec: dict[str, list] = {k: [] for k in TRACE_KEYS}
    T, d = len(ids_np), cfg.d_model
    with torch.no_grad():
        t = torch.from_numpy(ids_np)
        x = model.wte(t) + model.wpe(torch.arange(T))
        rec["x"].append(x)
        for i, blk in enumerate(model.blocks):
            a = ln(i, "ln1", x, blk.ln_1)
            qkv = blk.c_attn(a)
            y = attention(i, *qkv.split(d, dim=-1), cfg.n_heads)
            o = blk.attn_proj(y)
            mid = x + o
            a2 = ln(i, "ln2", mid, blk.ln_2)
            fc = blk.c_fc(a2)
            gl = gelu(i, fc)
            mo = blk.mlp_proj(gl)
            out = mid + mo
            tensors = {"ln1": a, "qkv": qkv, "attn": y, "attn_out": o, "mid": mid, "ln2": a2, "fc": fc,
                       "gelu": gl, "mlp_out": mo, "out": out}
            if "block" in g:
                tensors = g["block"](i, tensors)
            for k, v in tensors.items():
                rec["x" if k == "out" else k].append(v)
            x = tensors["out"]
        hidden = ln(-1, "ln_f", x, model.ln_f)
        logits = hidden @ model.wte.weight.T
    out = {k: torch.stack(v).numpy() for k, v in rec.items() if k not in ("hidden", "logits")}
    out["hidden"], out["logits"] = hidden.numpy(), logits.numpy()
    return {k: np.ascontiguousarray(out[k], dtype=np.float32) for k in TRACE_KEYS}
