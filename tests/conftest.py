"""Shared fixtures and settings for the vcompute test suite."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Keep BLAS/torch from oversubscribing the 2-core CI machine when xdist runs 2 workers.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

try:
    from hypothesis import settings

    settings.register_profile("ci", deadline=None, derandomize=True, max_examples=50)
    settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass

BACKENDS = ["numpy", "torch", "jax"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each array backend in turn (skipped if the framework is not installed)."""
    name = request.param
    if name != "numpy":
        pytest.importorskip(name)
    return name


@pytest.fixture
def rng():
    """A seeded generator: tests are reproducible."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module of tiny models.

    Tiny models run faster on one thread, and idle spinning threads slow a
    shared 2-core machine.
    """
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
