"""Small torch and JAX models for whole-model verification, and the providers that run them.

Models: an MLP and a pre-norm transformer block, each in torch (``nn.Module``)
and in JAX (a pure function of a parameter dict). A provider runs a model
and returns ``(output, trace)``, the trace holding the output of every
linear layer (torch: each ``nn.Linear``/``nn.Conv2d`` call, by module name;
JAX: each ``dot_general``/``conv_general_dilated`` evaluation, by index).
Behaviours: ``honest``; ``swap_weights`` (one layer uses other weights:
``W + magnitude * std(W) * noise``, a stale or substituted checkpoint);
``low_precision`` (one layer computed in bfloat16, returned as float32).

The JAX side evaluates the function's jaxpr with an interpreter that hands
every linear equation to a callback (:func:`~vcompute.workloads.jaxpr_eval.eval_jaxpr_layers`,
loops once per iteration, the branch a ``cond`` takes), which is also how the
verifier checks it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from vcompute.workloads.jaxpr_eval import LAYER_PRIMITIVES, eval_jaxpr_layers

__all__ = ["torch_mlp", "torch_transformer_block", "jax_mlp", "jax_transformer_block", "torch_provider",
           "torch_linear_layers",
           "jax_provider", "eval_jaxpr_layers", "LAYER_PRIMITIVES", "MODEL_BEHAVIOURS"]

#: Behaviours of :func:`torch_provider` / :func:`jax_provider` (deprecated as a list of provider
#: behaviours: the registry is :data:`vcompute.workloads.kinds.behaviours.BEHAVIOURS`, ``forward/<name>``).
MODEL_BEHAVIOURS = ("honest", "swap_weights", "low_precision")


# -- torch models -----------------------------------------------------------
def torch_mlp(sizes: tuple[int, ...] = (784, 1024, 1024, 10), *, seed: int) -> Any:
    """A ReLU MLP ``nn.Sequential`` with the given layer sizes (float32, eval mode).

    Args:
        sizes: input, hidden..., output widths.
        seed: torch seed of the initialisation.

    Returns:
        The module.

    Example:
        >>> m = torch_mlp((4, 8, 2), seed=0)
        >>> len([x for x in m if type(x).__name__ == "Linear"])
        2
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def torch_transformer_block(d_model: int = 256, n_heads: int = 4, d_ff: int = 1024, *, seed: int) -> Any:
    """A pre-norm transformer block (attention + GELU MLP) built from ``nn.Linear`` layers.

    Args:
        d_model: model width; n_heads: attention heads; d_ff: MLP width.
        seed: torch seed of the initialisation.

    Returns:
        The module; input and output are ``(batch, seq, d_model)``.

    Example:
        >>> import torch
        >>> blk = torch_transformer_block(16, 2, 32, seed=0)
        >>> tuple(blk(torch.zeros(1, 3, 16)).shape)
        (1, 3, 16)
    """
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
            self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model) for _ in range(4))
            self.fc1, self.fc2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)

        def forward(self, x: Any) -> Any:
            bsz, seq, _ = x.shape
            h = self.ln1(x)
            split = lambda t: t.view(bsz, seq, n_heads, d_model // n_heads).transpose(1, 2)  # noqa: E731
            att = torch.softmax(split(self.q(h)) @ split(self.k(h)).transpose(-1, -2)
                                / math.sqrt(d_model // n_heads), dim=-1)
            x = x + self.o((att @ split(self.v(h))).transpose(1, 2).reshape(bsz, seq, d_model))
            return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))

    torch.manual_seed(seed)
    return Block().eval()


def torch_linear_layers(module: Any) -> dict[str, Any]:
    """The submodules traced (and verified) as linear layers, by name.

    They are the ``nn.Linear`` and ``nn.Conv2d`` modules that compute as
    those classes do: a subclass that overrides ``forward`` (or
    ``_conv_forward``), or an instance whose ``forward`` was replaced,
    computes something else and is treated as glue.

    Example:
        >>> list(torch_linear_layers(torch_mlp((4, 8, 2), seed=0)))
        ['0', '2']
    """
    from torch import nn

    out = {}
    for n, m in module.named_modules():
        if "forward" in m.__dict__:
            continue
        if isinstance(m, nn.Linear) and type(m).forward is nn.Linear.forward:
            out[n] = m
        elif (isinstance(m, nn.Conv2d) and type(m).forward is nn.Conv2d.forward
              and type(m)._conv_forward is nn.Conv2d._conv_forward):
            out[n] = m
    return out


def torch_provider(module: Any, *inputs: Any, behaviour: str = "honest", layer: str | None = None,
                   magnitude: float = 0.01, rng: np.random.Generator | None = None) -> tuple[Any, dict[str, list]]:
    """Run ``module`` as a provider and return ``(output, trace)``.

    Args:
        module: a torch module.
        *inputs: its inputs.
        behaviour: one of :data:`MODEL_BEHAVIOURS`.
        layer: the module name the cheat applies to (default: the last linear layer).
        magnitude: relative size of the substituted weights' change (``swap_weights``).
        rng: randomness of the cheat.

    Returns:
        The output and a dict mapping each linear layer's name to the list of
        its outputs (one per call; each a copy taken when the layer returns, so
        in-place operations later in the forward pass do not change it).

    Raises:
        ValueError: for an unknown behaviour or layer.
    """
    import torch

    if behaviour not in MODEL_BEHAVIOURS:
        raise ValueError(f"unknown model behaviour {behaviour!r}; known: {', '.join(MODEL_BEHAVIOURS)}")
    layers = torch_linear_layers(module)
    if not layers:
        raise ValueError("the module has no nn.Linear or nn.Conv2d layers to trace")
    target = layer or list(layers)[-1]
    if target not in layers:
        raise ValueError(f"no linear layer named {target!r}; layers: {', '.join(layers)}")
    rng = rng or np.random.default_rng(0)
    trace: dict[str, list] = {n: [] for n in layers}
    patched: dict[str, Any] = {}

    def recorder(name: str, mod: Any, call: Callable) -> Callable:
        def fwd(*args: Any, **kwargs: Any) -> Any:
            y = call(mod, args[0] if args else kwargs["input"])
            trace[name].append(y.detach().clone())  # a value, not a view a later in-place op overwrites
            return y

        return fwd

    mod = layers[target]
    try:
        if behaviour == "swap_weights":
            w = mod.weight.detach()
            noise = torch.from_numpy(rng.standard_normal(tuple(w.shape)).astype(np.float32)).to(w.dtype)
            patched["w"] = mod.weight.data
            mod.weight.data = w + magnitude * float(w.float().std()) * noise
        for n, m in layers.items():
            lazy = behaviour == "low_precision" and m is mod
            m.forward = recorder(n, m, _bf16_call if lazy else type(m).forward)
        with torch.no_grad():
            out = module(*inputs)
    finally:
        for m in layers.values():
            m.__dict__.pop("forward", None)
        if "w" in patched:
            mod.weight.data = patched["w"]
    return out, trace


def _bf16_call(mod: Any, x: Any) -> Any:
    import torch
    import torch.nn.functional as F

    bf = torch.bfloat16
    b = None if mod.bias is None else mod.bias.to(bf)
    if isinstance(mod, torch.nn.Linear):
        y = F.linear(x.to(bf), mod.weight.to(bf), b)
    else:
        y = mod._conv_forward(x.to(bf), mod.weight.to(bf), b)
    return y.to(x.dtype)


# -- JAX models -------------------------------------------------------------
def jax_mlp(sizes: tuple[int, ...] = (784, 1024, 1024, 10), *, seed: int) -> tuple[Callable, dict]:
    """A ReLU MLP as ``(fn, params)`` with ``fn(params, x)``.

    Args:
        sizes: input, hidden..., output widths.
        seed: seed of the initialisation.

    Returns:
        The function and its float32 parameters.

    Example:
        >>> fn, p = jax_mlp((4, 8, 2), seed=0)
        >>> fn(p, np.zeros((3, 4), np.float32)).shape
        (3, 2)
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"w{i}"] = jnp.asarray((rng.standard_normal((a, b)) / math.sqrt(a)).astype(np.float32))
        params[f"b{i}"] = jnp.asarray(np.zeros(b, np.float32))
    depth = len(sizes) - 1

    def fn(p: dict, x: Any) -> Any:
        for i in range(depth):
            x = x @ p[f"w{i}"] + p[f"b{i}"]
            if i < depth - 1:
                x = jax.nn.relu(x)
        return x

    return fn, params


def jax_transformer_block(d_model: int = 256, n_heads: int = 4, d_ff: int = 1024, *,
                          seed: int) -> tuple[Callable, dict]:
    """The transformer block of :func:`torch_transformer_block` in JAX, as ``(fn, params)``.

    Args:
        d_model, n_heads, d_ff: sizes.
        seed: seed of the initialisation.

    Returns:
        ``fn(params, x)`` on ``(batch, seq, d_model)`` and its parameters.

    Example:
        >>> fn, p = jax_transformer_block(16, 2, 32, seed=0)
        >>> fn(p, np.zeros((1, 3, 16), np.float32)).shape
        (1, 3, 16)
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    shapes = {"q": (d_model, d_model), "k": (d_model, d_model), "v": (d_model, d_model),
              "o": (d_model, d_model), "fc1": (d_model, d_ff), "fc2": (d_ff, d_model)}
    params = {n: jnp.asarray((rng.standard_normal(s) / math.sqrt(s[0])).astype(np.float32))
              for n, s in shapes.items()}
    dh = d_model // n_heads

    def ln(x: Any) -> Any:
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)

    def fn(p: dict, x: Any) -> Any:
        bsz, seq, _ = x.shape
        h = ln(x)
        split = lambda t: t.reshape(bsz, seq, n_heads, dh).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (split(h @ p[n]) for n in ("q", "k", "v"))
        att = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh), axis=-1)
        x = x + (att @ v).transpose(0, 2, 1, 3).reshape(bsz, seq, d_model) @ p["o"]
        return x + jax.nn.gelu(ln(x) @ p["fc1"]) @ p["fc2"]

    return fn, params


def jax_provider(fn: Callable, *args: Any, behaviour: str = "honest", layer: int | None = None,
                 magnitude: float = 0.01, rng: np.random.Generator | None = None) -> tuple[Any, list]:
    """Run a JAX function as a provider and return ``(output, trace)``.

    Args:
        fn: the model function; *args: its arguments.
        behaviour: one of :data:`MODEL_BEHAVIOURS`.
        layer: index of the linear equation the cheat applies to (default: the last).
        magnitude: relative size of the substituted weights' change (``swap_weights``).
        rng: randomness of the cheat.

    Returns:
        The output and the list of every linear equation's output.

    Raises:
        ValueError: for an unknown behaviour.
    """
    import jax.numpy as jnp

    if behaviour not in MODEL_BEHAVIOURS:
        raise ValueError(f"unknown model behaviour {behaviour!r}; known: {', '.join(MODEL_BEHAVIOURS)}")
    rng = rng or np.random.default_rng(0)
    if layer is None and behaviour != "honest":
        n_layers = [0]
        eval_jaxpr_layers(fn, args, lambda i, nm, ins, p, compute: (n_layers.__setitem__(0, i + 1), compute())[1])
        layer = n_layers[0] - 1
    trace: list = []

    def on_layer(i: int, name: str, ins: list, params: dict, compute: Callable) -> Any:
        if i == layer and behaviour == "swap_weights":
            w = ins[1]
            noise = jnp.asarray(rng.standard_normal(tuple(w.shape)).astype(np.float32)).astype(w.dtype)
            ins = [ins[0], w + magnitude * jnp.std(w.astype(jnp.float32)).astype(w.dtype) * noise]
            out = _bind(name, ins, params)
        elif i == layer and behaviour == "low_precision":
            out = _bind(name, [x.astype(jnp.bfloat16) for x in ins],
                        {**params, "preferred_element_type": None}).astype(ins[0].dtype)
        else:
            out = compute()
        trace.append(out)
        return out

    out = eval_jaxpr_layers(fn, args, on_layer)
    return out, trace


def _bind(name: str, ins: list, params: dict) -> Any:
    from jax import lax

    prim = lax.dot_general_p if name == "dot_general" else lax.conv_general_dilated_p
    return prim.bind(*ins, **params)
