"""A transformer LM's prefill as an operator-level trace: every operator of ``protocols/OperatorGame.vy``.

A ``generate`` job (:mod:`vcompute.workloads.lm`) starts with a prefill: the
prompt's ``T`` tokens through ``L`` pre-LN GPT-2 blocks. Here that pass is a
sequence of the contract's operators on the state ``(x, a)``, sixteen a
block and a final LayerNorm (``x`` the residual stream, ``T x d``):

======  ========================  ==================================================
#       operator                  effect
======  ========================  ==================================================
1       ``ln`` (ln_1)             ``a := ln(x)``
2-3     ``lin``, ``bias``         ``a := a W_attn + b`` (``T x 3d``: ``[q | k | v]``)
4       ``qk``                    ``a := [q_h k_h^T / sqrt(dh), causal (-inf) | v]``
5       ``softmax``               each head's row block of the scores (causal), ``v`` copied
6       ``av``                    ``a := p_h v_h`` per head (``T x d``)
7-9     ``lin``, ``bias``, resid  ``a := a W_proj + b``; ``x := x + a``
10-16   the MLP half              ``ln`` (ln_2), ``lin``, ``bias``, ``gelu``, ``lin``, ``bias``, ``resid``
last    ``ln`` (ln_f)             ``a := ln_f(x)``: the hidden states the head reads
======  ========================  ==================================================

Each operator is one game "layer" (``per_layer = 1``, a flat bisection of
``16 L + 1`` operators). The input state is ``(x0, x0)`` with ``x0 = wte[ids] +
wpe[positions]`` in float32, fixed by the job id with the operator root (the
model's weights) so a trace commitment (:meth:`OpTrace.commit`, signed for its
job and provider) binds the prompt and the model. Sizes the contract decides:
every width a multiple of 8 up to 256 (``3d``, ``H T + d``, ``d_ff``), ``T``
a multiple of 8 up to 64, ``sqrt(dh)`` a power of two (the ``1/sqrt(dh)``
scale is then exact). The tied head (``hidden wte^T``, ``vocab`` columns) is
not among the operators: its width exceeds the contract's 256 for every
configured LM.

Example:
    >>> from vcompute.workloads.lm import LMConfig
    >>> from vcompute.workloads.lm.torch_model import TransformerLM
    >>> m = TransformerLM(LMConfig(vocab=64, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=16), seed=0)
    >>> net, x0 = prefill_net(m, list(range(8)))
    >>> net.n_ops, x0.shape
    (17, (8, 32))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vcompute.verify.dispute.op_trace import (AV, BIAS, GELU, LIN, LN, QK, RESID, SOFTMAX, Operator, OpNet,
                                              OpTrace)

__all__ = ["PREFILL_OPS_PER_BLOCK", "prefill_net", "prefill_trace"]

#: Operators of one pre-LN block (the trace adds one final LayerNorm).
PREFILL_OPS_PER_BLOCK = 16


def _np(t: Any) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


def prefill_net(model: Any, ids: list[int], *, u_bits: int = 24, add_bits: int = 24, gelu_bits: int = 18,
                ln_bits: int = 12, softmax_bits: int = 18, max_dim: int = 256) -> tuple[OpNet, np.ndarray]:
    """The prefill of ``ids`` through a float32 ``TransformerLM`` as operators, and its input ``x0``.

    Args:
        model: a :class:`vcompute.workloads.lm.torch_model.TransformerLM` (float32).
        ids: the prompt's token ids (``T`` of them, a multiple of 8 up to 64).
        u_bits, add_bits, gelu_bits, ln_bits, softmax_bits: the operators' precisions and tolerances.
        max_dim: the widest row the contracts take: 256 for the checked-in build, more for a wider
            benchmark build (``vcompute.ledger.op_dispute.OpChain(max_dim=...)``).

    Returns:
        ``(net, x0)``: the job's operators (an :class:`~vcompute.verify.dispute.op_trace.OpNet` of
        ``16 L + 1``) and the input ``wte[ids] + wpe[0..T-1]``.

    Raises:
        TypeError: if ``model`` is not a float32 TransformerLM.
        ValueError: if the sizes are outside what the contract decides.
    """
    import torch

    from vcompute.workloads.lm.torch_model import TransformerLM

    if not isinstance(model, TransformerLM) or model.dtype != torch.float32:
        raise TypeError("model must be a float32 TransformerLM")
    cfg = model.cfg
    t = len(ids)
    d, h, f = cfg.d_model, cfg.n_heads, cfg.d_ff
    dh = d // h
    if not (t % 8 == 0 and 8 <= t <= 64 and t <= cfg.max_len):
        raise ValueError(f"ids must hold a multiple of 8 tokens in 8..64 (and within max_len), got {t}")
    if type(max_dim) is not int or max_dim < 8:
        raise ValueError(f"max_dim must be an int >= 8, got {max_dim!r}")
    if max(3 * d, h * t + d, f) > max_dim or d % 8 or dh % 8 or dh not in (16, 64, 256):
        raise ValueError(f"sizes d={d}, heads={h}, d_ff={f}, T={t} are outside the contract's (3d, H T + d, d_ff "
                         f"<= max_dim = {max_dim}; dh in 16, 64, 256)")
    if any(type(i) is not int or not 0 <= i < cfg.vocab for i in ids):
        raise ValueError(f"ids must be ints in 0..{cfg.vocab - 1}")
    ops: list[Operator] = []

    def ln(m) -> Operator:
        return Operator(LN, d, d, ln_bits, np.stack([_np(m.weight), _np(m.bias)]))

    for blk in model.blocks:
        ops += [ln(blk.ln_1), Operator(LIN, d, 3 * d, u_bits, _np(blk.c_attn.weight.T)),
                Operator(BIAS, 3 * d, 3 * d, add_bits, _np(blk.c_attn.bias)),
                Operator(QK, 3 * d, h * t + d, u_bits, (h, t)),
                Operator(SOFTMAX, h * t + d, h * t + d, softmax_bits, (t, True, h * t)),
                Operator(AV, h * t + d, d, u_bits, (h, t)),
                Operator(LIN, d, d, u_bits, _np(blk.attn_proj.weight.T)),
                Operator(BIAS, d, d, add_bits, _np(blk.attn_proj.bias)), Operator(RESID, d, d, add_bits),
                ln(blk.ln_2), Operator(LIN, d, f, u_bits, _np(blk.c_fc.weight.T)),
                Operator(BIAS, f, f, add_bits, _np(blk.c_fc.bias)), Operator(GELU, f, f, gelu_bits),
                Operator(LIN, f, d, u_bits, _np(blk.mlp_proj.weight.T)),
                Operator(BIAS, d, d, add_bits, _np(blk.mlp_proj.bias)), Operator(RESID, d, d, add_bits)]
    ops.append(ln(model.ln_f))
    with torch.no_grad():
        x0 = (model.wte.weight[torch.tensor(ids)] + model.wpe.weight[torch.arange(t)]).float()
    return OpNet(tuple(ops), t, max(max_dim, 256)), _np(x0)


def prefill_trace(model: Any, ids: list[int], *, machine: str = "numpy", **bits: int) -> OpTrace:
    """The honest operator-level trace of the prefill of ``ids`` (``machine``: as :func:`~.op_trace.apply_op`)."""
    net, x0 = prefill_net(model, ids, **bits)
    return OpTrace.execute(net, x0, machine=machine)
