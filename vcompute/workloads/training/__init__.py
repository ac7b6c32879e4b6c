"""Training workloads: datasets, seeded loaders and augmentation, torch and JAX loops.

``import vcompute.workloads.training`` needs numpy only; the framework
backends load through :func:`backend` when a job runs.

Example:
    >>> from vcompute.workloads.training import TrainSpec, make_training_job
    >>> job = make_training_job(TrainSpec(dataset="synthetic", steps=4, checkpoint_every=2))
    >>> job.spec["framework"]
    'torch'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from vcompute.workloads.training.data import (
    Dataset,
    augment,
    batch_indices,
    batch_order_root,
    digits,
    load_dataset,
    synthetic,
)
from vcompute.workloads.training.spec import (
    FRAMEWORKS,
    MODELS,
    Seeds,
    StateFormatError,
    TrainSpec,
    dataset_of,
    decode_state,
    derive_seeds,
    encode_state,
    flat_params,
    init_state,
    make_training_job,
    param_shapes,
    spec_of,
)

__all__ = [
    "Dataset", "FRAMEWORKS", "MODELS", "Seeds", "StateFormatError", "TrainSpec", "augment", "backend",
    "batch_indices", "batch_order_root", "dataset_of", "decode_state", "derive_seeds", "digits",
    "encode_state", "flat_params", "init_state", "load_dataset", "make_training_job", "param_shapes",
    "spec_of", "synthetic",
]


def backend(framework: str) -> ModuleType:
    """The training backend module for ``framework`` (``torch`` or ``jax``), imported now.

    Each backend has ``run_steps(spec, state, start, n_steps, data, *, data_seed, aug_seed)``.

    Raises:
        ValueError: for an unknown framework.
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    return importlib.import_module(f"vcompute.workloads.training.{framework}_backend")
