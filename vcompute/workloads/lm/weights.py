"""Weights of an LM: their hash (the job's model commitment), dtype, safetensors files, layer surgery.

The model hash binds the config and every parameter's name, dtype, shape and
bytes, so a torch model and the JAX model converted from it hash equal, and a
bf16 copy hashes differently from its float32 master.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from vcompute.workloads.lm.config import PRECISIONS, LMConfig

__all__ = ["model_hash", "precision_of", "raw_weights", "save", "load", "with_layers", "cast"]


def _is_torch(model: Any) -> bool:
    return type(model).__name__ == "TransformerLM" and hasattr(model, "state_dict")


def raw_weights(model: Any) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    """``name -> (dtype name, shape, little-endian bytes)`` of every parameter of a torch or JAX LM.

    Raises:
        TypeError: if ``model`` is neither a :class:`TransformerLM` nor a :class:`JaxTransformerLM`.
    """
    out: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
    if _is_torch(model):
        import torch

        for name, t in model.state_dict().items():
            t = t.detach().contiguous().cpu()
            out[name] = (str(t.dtype).removeprefix("torch."), tuple(t.shape),
                         t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return out
    if type(model).__name__ == "JaxTransformerLM":
        for name, a in model.params.items():
            a = np.asarray(a)
            out[name] = (str(a.dtype), tuple(a.shape), np.ascontiguousarray(a).tobytes())
        return out
    raise TypeError(f"expected a TransformerLM or JaxTransformerLM, got {type(model).__name__}")


def _hash_weights(model: Any) -> str:
    h = hashlib.sha256(b"vcompute-lm-weights:" + json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    for name, (dt, shape, data) in sorted(raw_weights(model).items()):
        h.update(json.dumps([name, dt, list(shape)]).encode() + b"\0")
        h.update(data)
    return h.hexdigest()


#: model -> (config, snapshot of its parameters, hash); entries die with their model.
_HASHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_INT_OF_SIZE = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


def _snapshot(model: Any) -> tuple | None:
    """What a cached hash is valid for: every parameter's exact bits (torch) or its immutable array (JAX).

    A torch parameter is compared by its *bits* against a private copy, not by ``_version`` (writes through
    ``.numpy()`` or ``.data`` do not bump it) nor by value (``-0.0 == 0.0`` and ``NaN != NaN``).
    """
    if _is_torch(model):
        import torch

        out = []
        for name, t in model.state_dict().items():
            t = t.detach().contiguous()
            out.append((name, t.dtype, tuple(t.shape), t.view(getattr(torch, _INT_OF_SIZE[t.element_size()]))))
        return tuple(out)
    import jax

    items = tuple(sorted(model.params.items()))
    if not all(isinstance(a, jax.Array) for _, a in items):
        return None  # a mutable array was put in: nothing to key on but its bytes
    return items


def _same(cached: tuple, now: tuple) -> bool:
    import torch

    if len(cached) != len(now):
        return False
    for a, b in zip(cached, now):
        if len(a) == 2:  # JAX: the same immutable arrays
            if a[0] != b[0] or a[1] is not b[1]:
                return False
        elif a[:3] != b[:3] or not torch.equal(a[3], b[3]):
            return False
    return True


def model_hash(model: Any) -> str:
    """Hex SHA-256 of the config and weights: the model commitment of a ``generate`` job.

    The hash of a model is cached and reused only while its config and every parameter's bits are
    unchanged (a bitwise comparison, much cheaper than hashing), so a model mutated in place, by any
    route, is hashed afresh.

    Example:
        >>> from vcompute.workloads.lm import LMConfig, TransformerLM
        >>> cfg = LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=16)
        >>> model_hash(TransformerLM(cfg, seed=0)) == model_hash(TransformerLM(cfg, seed=1))
        False
    """
    if not (_is_torch(model) or type(model).__name__ == "JaxTransformerLM"):
        raise TypeError(f"expected a TransformerLM or JaxTransformerLM, got {type(model).__name__}")
    cfg, snap = model.cfg, _snapshot(model)
    hit = _HASHES.get(model)
    if snap is not None and hit is not None and hit[0] == cfg and _same(hit[1], snap):
        return hit[2]
    digest = _hash_weights(model)
    if snap is not None:
        if _is_torch(model):  # private copies: the model's own tensors may change under the cache
            snap = tuple((n, dt, sh, b.clone()) for n, dt, sh, b in snap)
        _HASHES[model] = (cfg, snap, digest)
    return digest


def precision_of(model: Any) -> str:
    """The precision a model computes in (``float32``, ``bfloat16`` or ``float16``).

    Raises:
        TypeError: for something that is not an LM of this package.
        ValueError: for a dtype that is not a supported job precision.
    """
    if _is_torch(model):
        p = str(model.dtype).removeprefix("torch.")
    elif type(model).__name__ == "JaxTransformerLM":
        p = model.precision
    else:
        raise TypeError(f"expected a TransformerLM or JaxTransformerLM, got {type(model).__name__}")
    if p not in PRECISIONS:
        raise ValueError(f"model dtype {p} is not a job precision; convert it to one of {PRECISIONS}")
    return p


def save(model: Any, path: str | Path) -> None:
    """Write a torch LM's weights (and config) to a safetensors file."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"vcompute_lm_config": json.dumps(model.cfg.to_dict())})


def load(path: str | Path, *, n_layers: int | None = None) -> Any:
    """A torch :class:`TransformerLM` from a safetensors file written by :func:`save`.

    Args:
        path: the file.
        n_layers: keep only the first ``n_layers`` blocks (a smaller model of the same width).

    Raises:
        ValueError: if the file has no vcompute LM config or ``n_layers`` is out of range.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from vcompute.workloads.lm.torch_model import TransformerLM

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "vcompute_lm_config" not in meta:
        raise ValueError(f"{path} has no vcompute_lm_config metadata; was it written by vcompute.workloads.lm.save?")
    cfg = LMConfig.from_dict(json.loads(meta["vcompute_lm_config"]))
    state = load_file(str(path))
    model = TransformerLM(cfg, seed=0)
    dtype = next(iter(state.values())).dtype
    model.to(dtype).load_state_dict(state)
    return with_layers(model, n_layers) if n_layers is not None else model


def with_layers(model: Any, n_layers: int) -> Any:
    """A copy of a torch LM that keeps only its first ``n_layers`` blocks.

    Raises:
        ValueError: if ``n_layers`` is not in ``1..model.cfg.n_layers``.
    """
    import copy

    from torch import nn

    if type(n_layers) is not int or not 1 <= n_layers <= model.cfg.n_layers:
        raise ValueError(f"n_layers must be an int in 1..{model.cfg.n_layers}, got {n_layers!r}")
    m = copy.deepcopy(model)
    m.blocks = nn.ModuleList(list(m.blocks)[:n_layers])
    m.cfg = model.cfg.replace(n_layers=n_layers)
    return m


def cast(model: Any, precision: str) -> Any:
    """A copy of a torch LM in ``precision`` (``float32``, ``bfloat16`` or ``float16``).

    Raises:
        ValueError: for another precision.
    """
    import copy

    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return copy.deepcopy(model).to(getattr(torch, precision))
