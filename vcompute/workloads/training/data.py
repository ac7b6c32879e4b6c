"""Datasets, seeded batch order and seeded augmentation for training jobs.

Everything here is numpy: the batch indices and the augmentation noise of
every step are pure functions of committed seeds, so torch and JAX see the
same bytes and a verifier can recompute them without trusting the prover.
scikit-learn (for the digits dataset, shipped inside the package: no
download) is imported only when that dataset is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcompute.core.hashing import content_hash
from vcompute.core.merkle import MerkleTree

__all__ = [
    "Dataset",
    "DATASETS",
    "load_dataset",
    "digits",
    "synthetic",
    "batch_indices",
    "batch_order_root",
    "augment",
    "INPUT_SIDE",
    "N_CLASSES",
]

#: Inputs are 64 features, viewable as one 8x8 image (digits' native shape).
INPUT_SIDE = 8
#: Both datasets have ten classes.
N_CLASSES = 10


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset held in numpy.

    Attributes:
        x: ``(n, 64)`` float32 inputs in roughly ``[0, 1]``.
        y: ``(n,)`` int64 labels in ``[0, 10)``.
        name: where it came from.
    """

    x: np.ndarray
    y: np.ndarray
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.x.shape[1] != INPUT_SIDE * INPUT_SIDE:
            raise ValueError(f"dataset inputs must be (n, 64), got {self.x.shape}")
        if self.y.shape != (self.x.shape[0],):
            raise ValueError(f"labels must be ({self.x.shape[0]},), got {self.y.shape}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def hash(self) -> str:
        """Content hash binding inputs and labels (what a transcript commits)."""
        return content_hash({"x": self.x, "y": self.y})


def digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 images), scaled to ``[0, 1]``.

    Raises:
        ImportError: if scikit-learn is missing (``pip install vcompute[learn]``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the digits dataset needs scikit-learn: pip install 'vcompute[learn]'") from e
    d = load_digits()
    return Dataset(np.ascontiguousarray(d.data / 16.0, dtype=np.float32),
                   np.ascontiguousarray(d.target, dtype=np.int64), "digits")


def synthetic(n: int = 1024, *, seed: int = 0) -> Dataset:
    """Ten Gaussian clusters in 64 dimensions (seeded; class means on a sphere).

    Example:
        >>> synthetic(32, seed=1).x.shape
        (32, 64)
    """
    rng = np.random.default_rng([seed, 0x5EED])
    means = rng.standard_normal((N_CLASSES, 64))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    y = rng.integers(0, N_CLASSES, size=n)
    x = 0.5 + 0.25 * means[y] + 0.15 * rng.standard_normal((n, 64))
    return Dataset(x.astype(np.float32), y.astype(np.int64), f"synthetic-{n}-{seed}")


#: Built-in datasets by name.
DATASETS = ("digits", "synthetic")


def load_dataset(name: str, *, seed: int = 0) -> Dataset:
    """The dataset called ``name`` (``digits`` or ``synthetic``).

    Raises:
        ValueError: for an unknown name.
    """
    if name == "digits":
        return digits()
    if name == "synthetic":
        return synthetic(1024, seed=seed)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def batch_indices(step: int, *, n: int, batch_size: int, data_seed: int) -> np.ndarray:
    """Indices of the examples in training step ``step``.

    Each epoch is a fresh permutation seeded by ``(data_seed, epoch)``; the
    incomplete last batch of an epoch is dropped so every step has the same
    shape (and re-execution compiles once).

    Example:
        >>> batch_indices(0, n=10, batch_size=4, data_seed=0).shape
        (4,)
    """
    per_epoch = n // batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size {batch_size} exceeds the dataset size {n}")
    epoch, pos = divmod(int(step), per_epoch)
    perm = np.random.default_rng([int(data_seed), epoch]).permutation(n)
    return perm[pos * batch_size:(pos + 1) * batch_size].astype(np.int64)


def batch_order_root(steps: int, *, n: int, batch_size: int, data_seed: int) -> str:
    """Hex Merkle root over the batch indices of steps ``0..steps-1``.

    Leaf ``s`` is the little-endian int64 bytes of step ``s``'s indices, so
    a transcript's commitment binds the exact order the prover used.
    """
    leaves = [batch_indices(s, n=n, batch_size=batch_size, data_seed=data_seed).astype("<i8").tobytes()
              for s in range(steps)]
    return MerkleTree(leaves).root.hex()


def augment(x: np.ndarray, step: int, *, aug_seed: int, noise: float) -> np.ndarray:
    """Seeded augmentation of one batch: additive Gaussian noise of std ``noise``.

    The noise of step ``step`` comes from ``(aug_seed, step)`` alone, so an
    honest replay reproduces it bit for bit; a reference-style prover that
    draws it from fresh entropy makes honest replays diverge.
    """
    if noise <= 0:
        return x
    rng = np.random.default_rng([int(aug_seed), int(step), 0xA06])
    return (x + noise * rng.standard_normal(x.shape)).astype(np.float32)
