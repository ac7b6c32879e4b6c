"""A short training run on a shipped text, so a random LM's outputs get realistic entropy.

The text (``data/lighthouse.txt``, a few KB written for this project and
dedicated to the public domain) is encoded by the byte tokenizer; training
is next-token cross-entropy with AdamW on random windows, seeded.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np

from vcompute.workloads.lm.tokenizer import encode

__all__ = ["RECIPE", "lr_at", "shipped_text", "train_on_text"]


def shipped_text() -> str:
    """The short public-domain text shipped with the package."""
    return resources.files("vcompute.workloads.lm").joinpath("data/lighthouse.txt").read_text(encoding="utf-8")


#: The recipe's defaults (see :func:`train_on_text`); ``proofs/inference.md`` states what it reaches.
RECIPE = {"steps": 600, "seq_len": 128, "batch": 8, "lr": 1.5e-3, "warmup_fraction": 1 / 6, "final_lr_fraction": 0.1}


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based): linear warmup, then cosine decay to ``lr / 10``.

    Example:
        >>> lr_at(0, 600, 1e-3, 100), lr_at(99, 600, 1e-3, 100), round(lr_at(599, 600, 1e-3, 100), 6)
        (1e-05, 0.001, 0.0001)
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup - 1)
    lo = RECIPE["final_lr_fraction"]
    return lr * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def train_on_text(model, text: str | None = None, *, steps: int = 600, seq_len: int = 128, batch: int = 8,
                  lr: float = 1.5e-3, warmup: int | None = None, schedule: str = "warmup_cosine",
                  seed: int = 0) -> list[float]:
    """Train a float32 torch LM in place for ``steps`` steps on ``text`` (default: :func:`shipped_text`).

    The recipe: AdamW (no weight decay), peak learning rate ``lr`` reached by a linear warmup over
    ``warmup`` steps (default ``steps // 6``), then cosine decay to ``lr / 10``; ``batch`` random
    windows of ``seq_len`` tokens per step. The former recipe (a constant 3e-3 from the first step,
    64-token windows) parked the tiny LM on the unigram plateau (loss about the text's character
    entropy, 2.97 nats; greedy output all spaces) for about 200 steps on one machine and not on
    another; a peak of 3e-3 even with the warmup still lingers there for ~150 steps on some seeds.
    At 1.5e-3 with the warmup every seed tried follows the same curve and leaves the plateau by step
    ~100 (``proofs/inference.md``). Windows of 128 tokens train the position embeddings that the
    experiments' prompts plus generations use.

    Args:
        model: a float32 :class:`~vcompute.workloads.lm.TransformerLM`.
        text: the training text.
        steps: optimiser steps.
        seq_len: window length (at most ``max_len``).
        batch: windows per step.
        lr: peak AdamW learning rate.
        warmup: warmup steps (default ``steps // 6``).
        schedule: ``"warmup_cosine"`` (the recipe) or ``"constant"`` (``lr`` at every step, no warmup: the
            former recipe, kept to reproduce its plateau).
        seed: seeds the windows.

    Returns:
        The loss of every step.

    Raises:
        ValueError: if the text is shorter than one window, ``seq_len`` exceeds ``max_len`` or
            ``warmup`` is negative, or ``schedule`` is unknown.
    """
    import torch

    ids = encode(text if text is not None else shipped_text())
    if seq_len + 1 > len(ids) or seq_len > model.cfg.max_len:
        raise ValueError(f"seq_len {seq_len} needs a text longer than it and at most max_len {model.cfg.max_len}")
    warmup = int(steps * RECIPE["warmup_fraction"]) if warmup is None else warmup
    if type(warmup) is not int or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")
    if schedule not in ("warmup_cosine", "constant"):
        raise ValueError(f"schedule must be 'warmup_cosine' or 'constant', got {schedule!r}")
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    data = torch.from_numpy(ids)
    losses = []
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup) if schedule == "warmup_cosine" else lr
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
