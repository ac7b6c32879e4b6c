"""Wrap a user's own training loop so it writes a PoL transcript.

torch (in the style of Opacus' ``make_private``)::

    module, optimizer, loader = make_provable(module=model, optimizer=opt, job=job, provider="alice")
    for xb, yb in loader:
        optimizer.zero_grad(); F.cross_entropy(module(xb), yb).backward(); optimizer.step()
    claim, transcript = optimizer.finish()

JAX: :func:`provable_step` wraps a step function ``(params, opt_state, x, y) -> (params, opt_state, loss)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from vcompute.core.types import Claim, Job
from vcompute.workloads.training.pol.prover import TranscriptRecorder
from vcompute.workloads.training.pol.transcript import Transcript
from vcompute.workloads.training.data import augment, batch_indices
from vcompute.workloads.training.spec import dataset_of, param_shapes

__all__ = ["make_provable", "ProvableOptimizer", "provable_step", "ProvableStep", "committed_batches"]


def committed_batches(rec: TranscriptRecorder) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """``(x, y, step)`` of every step in the committed order, with the seeded augmentation applied."""
    data, spec = dataset_of(rec.job), rec.spec
    for s in range(spec.steps):
        idx = batch_indices(s, n=len(data), batch_size=spec.batch_size, data_seed=rec.seeds.data)
        yield augment(data.x[idx], s, aug_seed=rec.seeds.aug, noise=spec.aug_noise), data.y[idx], s


class ProvableOptimizer:
    """A torch optimizer that records a checkpoint every ``k`` of its steps.

    Behaves like the wrapped optimizer (attribute access is forwarded).

    Args:
        optimizer: the wrapped ``torch.optim.SGD``.
        module: the module it optimises.
        recorder: the transcript recorder.
    """

    def __init__(self, optimizer: Any, module: Any, recorder: TranscriptRecorder) -> None:
        self._opt, self._module, self._rec, self.steps_taken = optimizer, module, recorder, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._opt, name)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forwarded to the wrapped optimizer."""
        self._opt.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable | None = None) -> Any:
        """One optimizer step; records the state when a checkpoint is due.

        Raises:
            RuntimeError: if called more often than the job's ``steps``.
        """
        from vcompute.workloads.training.torch_backend import read_state

        if self.steps_taken >= self._rec.spec.steps:
            raise RuntimeError(f"the job has {self._rec.spec.steps} steps; stop training and call finish()")
        out = self._opt.step(closure)
        self.steps_taken += 1
        if self._rec.expects_checkpoint(self.steps_taken):
            self._rec.record(self.steps_taken, read_state(self._rec.spec, self._module, self._opt))
        return out

    def finish(self, key: Any | None = None) -> tuple[Claim, Transcript]:
        """Commit and sign the transcript (see :meth:`TranscriptRecorder.finish`)."""
        return self._rec.finish(key)


def make_provable(*, module: Any, optimizer: Any, job: Job, provider: str) -> tuple[Any, ProvableOptimizer, Any]:
    """Make a torch training loop write a PoL transcript.

    Args:
        module: a ``torch.nn.Module`` with the job's parameter names and shapes.
        optimizer: ``torch.optim.SGD`` over ``module.parameters()``.
        job: the training job.
        provider: the provider's name.

    Returns:
        ``(module, optimizer, data_loader)``: the module loaded with the
        committed initialisation, a recording optimizer, and an iterable of
        ``(x, y)`` tensors in the committed batch order with seeded augmentation.

    Raises:
        ValueError: if the module's parameters or the optimizer's hyperparameters
            differ from the job's.

    Notes:
        The transcript verifies only if the loop is the job's: mean
        cross-entropy, one ``optimizer.step()`` per batch of the returned
        loader, no other changes to parameters or optimizer state. The
        module's initial values are overwritten by the committed seeded init.
    """
    from vcompute.workloads.training.torch_backend import load_state

    rec = TranscriptRecorder(job, provider)
    spec = rec.spec
    shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    if shapes != param_shapes(spec):
        raise ValueError(f"module parameters {shapes} differ from the job's model {param_shapes(spec)}")
    g = optimizer.param_groups[0]
    want = {"lr": spec.lr, "momentum": spec.momentum, "weight_decay": spec.weight_decay}
    got = {k: g.get(k) for k in want}
    if len(optimizer.param_groups) != 1 or got != want:
        raise ValueError(f"optimizer hyperparameters {got} differ from the job's {want}; build it with "
                         "vcompute.workloads.training.torch_backend.make_optimizer")
    init = rec.initial_state()
    load_state(spec, init, module, optimizer)
    rec.record(0, init)

    class _Loader:
        def __len__(self) -> int:
            return spec.steps

        def __iter__(self):
            import torch

            for x, y, _ in committed_batches(rec):
                yield torch.from_numpy(x), torch.from_numpy(y)

    return module, ProvableOptimizer(optimizer, module, rec), _Loader()


class ProvableStep:
    """A JAX step function that records a checkpoint every ``k`` calls.

    Args:
        step_fn: ``(params, opt_state, x, y) -> (params, opt_state, loss)`` built with
            :func:`vcompute.workloads.training.jax_backend.make_transform` of the job's spec.
        job: the training job.
        provider: the provider's name.
    """

    def __init__(self, step_fn: Callable, job: Job, provider: str) -> None:
        self.step_fn, self.rec, self.steps_taken = step_fn, TranscriptRecorder(job, provider), 0

    def init(self) -> tuple[Any, Any]:
        """``(params, opt_state)`` at the committed initialisation (records checkpoint 0)."""
        from vcompute.workloads.training.jax_backend import to_optax

        state = self.rec.initial_state()
        if not self.rec.states:
            self.rec.record(0, state)
        return to_optax(self.rec.spec, state)

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(x, y)`` of every step in the committed order (labels as int32)."""
        for x, y, _ in committed_batches(self.rec):
            yield x, y.astype(np.int32)

    def __call__(self, params: Any, opt_state: Any, x: Any, y: Any) -> tuple[Any, Any, Any]:
        """Run the wrapped step; record the state when a checkpoint is due."""
        from vcompute.workloads.training.jax_backend import from_optax

        params, opt_state, loss = self.step_fn(params, opt_state, x, y)
        self.steps_taken += 1
        if self.rec.expects_checkpoint(self.steps_taken):
            self.rec.record(self.steps_taken, from_optax(self.rec.spec, params, opt_state))
        return params, opt_state, loss

    def finish(self, key: Any | None = None) -> tuple[Claim, Transcript]:
        """Commit and sign the transcript."""
        return self.rec.finish(key)


def provable_step(step_fn: Callable, job: Job, provider: str) -> ProvableStep:
    """Wrap a JAX step function so it writes a PoL transcript (see :class:`ProvableStep`).

    Example:
        >>> from vcompute.workloads.training import make_training_job
        >>> from vcompute.workloads.training.jax_backend import make_step
        >>> job = make_training_job(framework="jax", dataset="synthetic", steps=4, checkpoint_every=2)
        >>> s = job.spec
        >>> step = provable_step(make_step(s["model"], s["lr"], s["momentum"], s["weight_decay"]), job, "alice")
        >>> params, opt_state = step.init()
        >>> for x, y in step.batches():
        ...     params, opt_state, _ = step(params, opt_state, x, y)
        >>> claim, transcript = step.finish()
        >>> len(transcript.checkpoints)
        3
    """
    return ProvableStep(step_fn, job, provider)
