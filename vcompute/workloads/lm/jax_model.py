"""The same LM in JAX: a pure function of a parameter dict, with a preallocated KV cache.

Parameters keep the torch names and layouts (``Linear`` weights are
``[out, in]``), so converting either way is a copy of arrays
(:func:`to_jax`, :func:`to_torch`). Decoding writes each step's keys and
values into a cache of fixed length with ``dynamic_update_slice``, so one
compiled step serves every position.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from vcompute.workloads.lm.config import PRECISIONS, LMConfig

__all__ = ["JaxTransformerLM", "to_jax", "to_torch"]


def _jnp():
    import jax

    jax.config.update("jax_enable_x64", False)
    import jax.numpy as jnp

    return jax, jnp


def _round(y, dtype, jnp):
    """``y`` rounded once to ``dtype``, explicitly.

    Under ``jit`` XLA may keep float32 across fused bf16/fp16 ops
    (``xla_allow_excess_precision``), skipping the roundings that torch's
    kernels perform after every op; ``reduce_precision`` cannot be elided, so
    the JAX model rounds where torch does and the two agree bit for bit
    (they differed in ~40% of bf16 hidden entries without it).
    """
    import jax

    y = y.astype(jnp.float32)
    if dtype == jnp.float32:
        return y
    fi = jnp.finfo(dtype)
    r = jax.lax.reduce_precision(y, exponent_bits=fi.nexp, mantissa_bits=fi.nmant)
    if dtype == jnp.float16:
        # reduce_precision flushes float16 subnormals (|y| < 2^-14) to zero, where torch keeps them: small
        # attention weights and activations then differed and ~20% of hidden entries with them. Round those
        # to float16's subnormal grid (multiples of 2^-24, ties to even) exactly in float32 instead.
        tiny = jnp.abs(y) < fi.smallest_normal
        r = jnp.where(tiny, jnp.round(y * 2.0**24) * 2.0**-24, r)
    return r.astype(dtype)


def _layer_norm(x, w, b, jnp):
    xf = x.astype(jnp.float32)
    mu = xf.mean(-1, keepdims=True)
    var = ((xf - mu) ** 2).mean(-1, keepdims=True)
    y = (xf - mu) / jnp.sqrt(var + 1e-5) * w.astype(jnp.float32) + b.astype(jnp.float32)
    return _round(y, x.dtype, jnp)  # one rounding, as torch's LayerNorm kernel does


def _matmul(a, b, jnp):
    """``a @ b`` accumulated in float32 (rounded by the caller, once, as torch's CPU kernels do)."""
    import jax

    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST, preferred_element_type=jnp.float32)


def _add(a, b, jnp):
    return _round(a.astype(jnp.float32) + b.astype(jnp.float32), a.dtype, jnp)


def _linear(x, params, name, jnp):
    # bias added before the one rounding (torch's addmm): rounding the product first flips ~28% of bf16 outputs
    y = _matmul(x, params[f"{name}.weight"].T, jnp) + params[f"{name}.bias"].astype(jnp.float32)
    return _round(y, x.dtype, jnp)


@functools.lru_cache(maxsize=None)
def _compiled(cfg: LMConfig):
    jax, jnp = _jnp()
    h, dh = cfg.n_heads, cfg.head_dim

    def forward(params, ids, positions, key_mask, cache_k, cache_v, start):
        b, t = ids.shape
        s = key_mask.shape[1]
        x = _add(params["wte.weight"][ids], params["wpe.weight"][positions], jnp)
        dt = x.dtype
        q_slot = start + jnp.arange(t)
        causal = (jnp.arange(s)[None, :] <= q_slot[:, None])[None, None]
        self_key = (jnp.arange(s)[None, :] == q_slot[:, None])[None, None]  # padding queries stay finite
        mask = (causal & key_mask[:, None, None, :]) | self_key
        new_k, new_v = [], []
        for i in range(cfg.n_layers):
            p = f"blocks.{i}."
            y = _layer_norm(x, params[p + "ln_1.weight"], params[p + "ln_1.bias"], jnp)
            qkv = _linear(y, params, p + "c_attn", jnp)
            q, k, v = (z.reshape(b, t, h, dh).transpose(0, 2, 1, 3) for z in jnp.split(qkv, 3, axis=-1))
            ck = jax.lax.dynamic_update_slice(cache_k[i], k, (0, 0, start, 0))
            cv = jax.lax.dynamic_update_slice(cache_v[i], v, (0, 0, start, 0))
            new_k.append(ck)
            new_v.append(cv)
            att = _round(_round(_matmul(q, ck.transpose(0, 1, 3, 2), jnp), dt, jnp).astype(jnp.float32)
                         * (1.0 / math.sqrt(dh)), dt, jnp)
            att = _round(jax.nn.softmax(jnp.where(mask, att, -jnp.inf).astype(jnp.float32), axis=-1), dt, jnp)
            o = _round(_matmul(att, cv, jnp), dt, jnp).transpose(0, 2, 1, 3).reshape(b, t, -1)
            x = _add(x, _linear(o, params, p + "attn_proj", jnp), jnp)
            y = _layer_norm(x, params[p + "ln_2.weight"], params[p + "ln_2.bias"], jnp)
            fc = _linear(y, params, p + "c_fc", jnp)
            y = _round(jax.nn.gelu(fc.astype(jnp.float32), approximate=True), dt, jnp)  # one rounding, as torch
            x = _add(x, _linear(y, params, p + "mlp_proj", jnp), jnp)
        hidden = _layer_norm(x, params["ln_f.weight"], params["ln_f.bias"], jnp)
        logits = jnp.matmul(hidden.astype(jnp.float32), params["wte.weight"].astype(jnp.float32).T,
                            precision=jax.lax.Precision.HIGHEST)
        return hidden, logits, jnp.stack(new_k), jnp.stack(new_v)

    return jax.jit(forward)


class JaxTransformerLM:
    """The JAX twin of :class:`~vcompute.workloads.lm.TransformerLM`.

    Args:
        cfg: the sizes.
        params: ``name -> array`` with the torch model's names and layouts.
        precision: ``float32``, ``bfloat16`` or ``float16``: the dtype parameters are cast to.

    Raises:
        ValueError: for missing parameters or an unknown precision.
    """

    def __init__(self, cfg: LMConfig, params: dict[str, Any], *, precision: str = "float32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        _, jnp = _jnp()
        self.cfg = cfg
        self.precision = precision
        dt = getattr(jnp, precision)
        self.params = {k: jnp.asarray(v).astype(dt) for k, v in params.items()}
        want = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"}
        missing = want - set(self.params)
        if missing:
            raise ValueError(f"JaxTransformerLM params lack {sorted(missing)}")

    def empty_cache(self, batch: int, length: int):
        """Zeroed key and value caches ``[n_layers, batch, n_heads, length, head_dim]``."""
        _, jnp = _jnp()
        shape = (self.cfg.n_layers, batch, self.cfg.n_heads, length, self.cfg.head_dim)
        dt = getattr(jnp, self.precision)
        return jnp.zeros(shape, dt), jnp.zeros(shape, dt)

    def forward(self, ids, positions, key_mask, cache, start: int):
        """One pass over ``ids`` ``[B, T]`` written into ``cache`` at slot ``start``.

        Returns:
            ``(hidden [B, T, d], logits [B, T, vocab], cache)``.
        """
        _, jnp = _jnp()
        fn = _compiled(self.cfg)
        hidden, logits, ck, cv = fn(self.params, jnp.asarray(ids), jnp.asarray(positions), jnp.asarray(key_mask),
                                    cache[0], cache[1], jnp.int32(start))
        return hidden, logits, (ck, cv)

    def __call__(self, ids):
        """Logits ``[B, T, vocab]`` of ``ids`` ``[B, T]`` (no cache)."""
        ids = np.asarray(ids)
        b, t = ids.shape
        pos = np.broadcast_to(np.arange(t), (b, t))
        return self.forward(ids, pos, np.ones((b, t), bool), self.empty_cache(b, t), 0)[1]


def to_jax(model: Any) -> JaxTransformerLM:
    """The JAX model with the weights (and precision) of a torch :class:`TransformerLM`."""
    import torch

    prec = str(model.dtype).removeprefix("torch.")
    params = {k: v.detach().cpu().float().numpy() if v.dtype != torch.float32 else v.detach().cpu().numpy()
              for k, v in model.state_dict().items()}
    return JaxTransformerLM(model.cfg, params, precision=prec)


def to_torch(model: JaxTransformerLM) -> Any:
    """The torch :class:`TransformerLM` with the weights (and precision) of a JAX model."""
    import torch

    from vcompute.workloads.lm.torch_model import TransformerLM

    m = TransformerLM(model.cfg, seed=0)
    state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32).copy()) for k, v in model.params.items()}
    m.load_state_dict(state)
    return m.to(getattr(torch, model.precision))
