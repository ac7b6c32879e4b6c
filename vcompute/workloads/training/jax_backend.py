"""The JAX/optax training backend: the same models and SGD(+momentum) loop as torch.

Parameters keep torch's layout (``out x in`` weights, ``OIHW`` kernels) so
a checkpoint means the same thing in both frameworks. Imported only when a
JAX training job runs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vcompute.workloads.training.data import Dataset, augment, batch_indices
from vcompute.workloads.training.spec import TrainSpec, param_shapes

__all__ = ["forward", "make_transform", "make_step", "run_steps", "to_optax", "from_optax"]


def forward(model: str, params: Mapping[str, Any], x: Any) -> Any:
    """Logits of ``x`` (``(batch, 64)``) under ``model`` (``mlp`` or ``cnn``)."""
    if model == "mlp":
        h = jax.nn.relu(x @ params["fc1.weight"].T + params["fc1.bias"])
        return h @ params["fc2.weight"].T + params["fc2.bias"]
    dn = ("NCHW", "OIHW", "NCHW")
    h = x.reshape(-1, 1, 8, 8)
    h = jax.lax.conv_general_dilated(h, params["conv1.weight"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
    h = jax.nn.relu(h + params["conv1.bias"][None, :, None, None])
    h = jax.lax.conv_general_dilated(h, params["conv2.weight"], (2, 2), ((1, 1), (1, 1)), dimension_numbers=dn)
    h = jax.nn.relu(h + params["conv2.bias"][None, :, None, None])
    return h.reshape(h.shape[0], -1) @ params["fc.weight"].T + params["fc.bias"]


def make_transform(spec: TrainSpec) -> optax.GradientTransformation:
    """optax's equivalent of ``torch.optim.SGD(lr, momentum, weight_decay)``."""
    return optax.chain(optax.add_decayed_weights(spec.weight_decay),
                       optax.sgd(spec.lr, momentum=spec.momentum or None))


@functools.lru_cache(maxsize=32)
def make_step(model: str, lr: float, momentum: float, weight_decay: float):
    """A jitted ``(params, opt_state, x, y) -> (params, opt_state, loss)`` for these hyperparameters."""
    tx = optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(lr, momentum=momentum or None))

    def loss_fn(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(forward(model, params, x), y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def to_optax(spec: TrainSpec, state: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], Any]:
    """``(params, opt_state)`` for optax from a framework-neutral state."""
    names = list(param_shapes(spec))
    params = {n: jnp.asarray(np.asarray(state[n], np.float32)) for n in names}
    opt_state = make_transform(spec).init(params)
    if spec.momentum > 0:
        trace = {n: jnp.asarray(np.asarray(state["momentum/" + n], np.float32)) for n in names}
        opt_state = optax.tree_utils.tree_set(opt_state, trace=trace)
    return params, opt_state


def from_optax(spec: TrainSpec, params: Mapping[str, Any], opt_state: Any) -> dict[str, np.ndarray]:
    """The framework-neutral state of optax ``params`` and ``opt_state`` (copies)."""
    names = list(param_shapes(spec))
    out = {n: np.array(params[n], np.float32) for n in names}
    trace = optax.tree_utils.tree_get(opt_state, "trace") if spec.momentum > 0 else None
    for n in names:
        out["momentum/" + n] = np.zeros_like(out[n]) if trace is None else np.array(trace[n], np.float32)
    return out


def run_steps(spec: TrainSpec, state: Mapping[str, np.ndarray], start: int, n_steps: int, data: Dataset,
              *, data_seed: int, aug_seed: int) -> dict[str, np.ndarray]:
    """Train ``n_steps`` steps from ``state`` at step ``start``; return the new state.

    Same batches and augmentation as the torch backend's ``run_steps``.
    """
    step = make_step(spec.model, float(spec.lr), float(spec.momentum), float(spec.weight_decay))
    params, opt_state = to_optax(spec, state)
    for s in range(start, start + n_steps):
        idx = batch_indices(s, n=len(data), batch_size=spec.batch_size, data_seed=data_seed)
        xb = augment(data.x[idx], s, aug_seed=aug_seed, noise=spec.aug_noise)
        params, opt_state, _ = step(params, opt_state, xb, data.y[idx].astype(np.int32))
    return from_optax(spec, params, opt_state)
