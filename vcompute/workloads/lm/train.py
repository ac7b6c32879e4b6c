"""A short training run on a shipped text, so a random LM's outputs get realistic entropy.

The text (``data/lighthouse.txt``, a few KB written for this project and
dedicated to the public domain) is encoded by the byte tokenizer; training
is next-token cross-entropy with AdamW on random windows, seeded.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from vcompute.workloads.lm.tokenizer import encode

__all__ = ["shipped_text", "train_on_text"]


def shipped_text() -> str:
    """The short public-domain text shipped with the package."""
    return resources.files("vcompute.workloads.lm").joinpath("data/lighthouse.txt").read_text(encoding="utf-8")


def train_on_text(model, text: str | None = None, *, steps: int = 100, seq_len: int = 64, batch: int = 16,
                  lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Train a float32 torch LM in place for ``steps`` steps on ``text`` (default: :func:`shipped_text`).

    Args:
        model: a float32 :class:`~vcompute.workloads.lm.TransformerLM`.
        text: the training text.
        steps: optimiser steps.
        seq_len: window length (at most ``max_len``).
        batch: windows per step.
        lr: AdamW learning rate.
        seed: seeds the windows.

    Returns:
        The loss of every step.

    Raises:
        ValueError: if the text is shorter than one window or ``seq_len`` exceeds ``max_len``.
    """
    import torch

    ids = encode(text if text is not None else shipped_text())
    if seq_len + 1 > len(ids) or seq_len > model.cfg.max_len:
        raise ValueError(f"seq_len {seq_len} needs a text longer than it and at most max_len {model.cfg.max_len}")
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    data = torch.from_numpy(ids)
    losses = []
    model.train()
    for _ in range(steps):
        starts = rng.integers(0, len(ids) - seq_len - 1, size=batch)
        x = torch.stack([data[s:s + seq_len] for s in starts])
        y = torch.stack([data[s + 1:s + seq_len + 1] for s in starts])
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, model.cfg.vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
