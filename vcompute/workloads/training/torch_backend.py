"""The torch training backend: models and an SGD(+momentum) loop over committed batches.

Imported only when a torch training job runs (``import vcompute.verify``
never imports torch). Parameters use the names and layouts of
:func:`vcompute.workloads.training.spec.param_shapes`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vcompute.workloads.training.data import Dataset, augment, batch_indices
from vcompute.workloads.training.spec import TrainSpec, param_shapes

__all__ = ["AUTOCAST_DTYPES", "MLP", "CNN", "build_model", "make_optimizer", "load_state", "read_state", "run_steps",
           "training_step"]


class MLP(nn.Module):
    """64 -> hidden -> 10 with ReLU.

    Args:
        hidden: hidden width.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a ``(batch, 64)`` input."""
        return self.fc2(F.relu(self.fc1(x)))


class CNN(nn.Module):
    """Two 3x3 convolutions (8 and 16 channels, the second with stride 2) and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a ``(batch, 64)`` input viewed as 8x8 images."""
        h = F.relu(self.conv1(x.reshape(-1, 1, 8, 8)))
        h = F.relu(self.conv2(h))
        return self.fc(h.flatten(1))


def build_model(spec: TrainSpec) -> nn.Module:
    """A fresh module of the spec's architecture (its initial values are overwritten by a state)."""
    return MLP(spec.hidden) if spec.model == "mlp" else CNN()


def make_optimizer(spec: TrainSpec, module: nn.Module) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` with the spec's learning rate, momentum and weight decay."""
    return torch.optim.SGD(module.parameters(), lr=spec.lr, momentum=spec.momentum,
                           weight_decay=spec.weight_decay, foreach=False)


def load_state(spec: TrainSpec, state: Mapping[str, np.ndarray], module: nn.Module,
               optimizer: torch.optim.Optimizer) -> None:
    """Write a framework-neutral state into ``module`` and ``optimizer``'s momentum buffers."""
    names = list(param_shapes(spec))
    with torch.no_grad():
        params = dict(module.named_parameters())
        for name in names:
            params[name].copy_(torch.from_numpy(np.array(state[name], np.float32)))
    if spec.momentum > 0:
        for name in names:
            optimizer.state[params[name]]["momentum_buffer"] = torch.from_numpy(
                np.array(state["momentum/" + name], np.float32))


def read_state(spec: TrainSpec, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    """The framework-neutral state of ``module`` and ``optimizer`` (copies)."""
    params = dict(module.named_parameters())
    out = {n: params[n].detach().cpu().numpy().astype(np.float32, copy=True) for n in param_shapes(spec)}
    for n in param_shapes(spec):
        buf = optimizer.state.get(params[n], {}).get("momentum_buffer")
        out["momentum/" + n] = (np.zeros_like(out[n]) if buf is None
                                else buf.detach().cpu().numpy().astype(np.float32, copy=True))
    return out


#: Cheaper precisions a provider might train at while claiming fp32 (``autocast`` of :func:`run_steps`).
AUTOCAST_DTYPES = ("float16", "bfloat16")


def training_step(module: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor,
                  yb: torch.Tensor, *, autocast: str | None = None) -> float:
    """One step: zero grads, mean cross-entropy, backward, optimizer step. Returns the loss.

    With ``autocast`` (``"float16"`` or ``"bfloat16"``) the forward pass runs
    under ``torch.autocast`` at that precision (parameters and optimizer stay
    fp32): what a provider saving time on the job's fp32 training does.
    """
    optimizer.zero_grad(set_to_none=True)
    if autocast is None:
        loss = F.cross_entropy(module(xb), yb)
    else:
        with torch.autocast(xb.device.type, dtype=getattr(torch, autocast)):
            logits = module(xb)
        loss = F.cross_entropy(logits.float(), yb)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def run_steps(spec: TrainSpec, state: Mapping[str, np.ndarray], start: int, n_steps: int, data: Dataset,
              *, data_seed: int, aug_seed: int, autocast: str | None = None) -> dict[str, np.ndarray]:
    """Train ``n_steps`` steps from ``state`` at step ``start``; return the new state.

    The batch of step ``s`` is :func:`batch_indices` of ``(data_seed, s)``
    and its augmentation noise comes from ``(aug_seed, s)``.

    Raises:
        ValueError: if ``autocast`` is not ``None`` or one of :data:`AUTOCAST_DTYPES`.
    """
    if autocast is not None and autocast not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be None or one of {', '.join(AUTOCAST_DTYPES)}, got {autocast!r}")
    module = build_model(spec)
    optimizer = make_optimizer(spec, module)
    load_state(spec, state, module, optimizer)
    x_all, y_all = torch.from_numpy(data.x), torch.from_numpy(data.y)
    for s in range(start, start + n_steps):
        idx = batch_indices(s, n=len(data), batch_size=spec.batch_size, data_seed=data_seed)
        xb = torch.from_numpy(augment(data.x[idx], s, aug_seed=aug_seed, noise=spec.aug_noise))
        training_step(module, optimizer, xb, y_all[torch.from_numpy(idx)], autocast=autocast)
    del x_all
    return read_state(spec, module, optimizer)
