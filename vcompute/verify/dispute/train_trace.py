"""Training transcripts as dispute traces: the checkpoints of linear least-squares training.

One SGD step on a batch ``(X_t, Y_t)`` (``b`` rows, ``k`` features, ``m``
targets) with learning rate ``eta`` is affine in the weights:

``W' = W - (eta / b) X^T (X W - Y) = A_t W + B_t``,  ``A_t = I - (eta / b) X^T X``,  ``B_t = (eta / b) X^T Y``.

Carrying the weights as the rows of a checkpoint ``S = [W^T | I_m]``
(``m`` x ``(k + m)``), the step is one matmul by a fixed operator,

``S' = S Op_t``,  ``Op_t = [[A_t^T, 0], [B_t^T, I_m]]``,

so a training job is a :class:`~vcompute.verify.dispute.float_trace.FloatNet`
whose layers are the step operators (committed in its ``ops_root``: the data
and the learning rate are the job), and its transcript (every checkpoint, as
a PoL transcript records them) is a float32 trace the same contract bisects
to one step and decides by one element of the checkpoint after it. This
covers models whose step is linear in the weights; a torch PoL step
(nonlinear layers, backward) is not a matmul by a fixed operator and is not
covered here (``proofs/dispute.md``, "Not covered").

Example:
    >>> net, s0 = linear_training_job(steps=3, features=24, targets=8, batch=16, eta=0.05, seed=0)
    >>> net.n_layers, s0.shape
    (3, (8, 32))
"""

from __future__ import annotations

import numpy as np

from vcompute.verify.dispute.float_trace import FloatNet

__all__ = ["initial_checkpoint", "linear_training_job", "weights_of"]


def linear_training_job(*, steps: int, features: int, targets: int, batch: int, eta: float,
                        seed: int) -> tuple[FloatNet, np.ndarray]:
    """A seeded least-squares training job: its step operators and its initial checkpoint.

    Args:
        steps: SGD steps (the trace has one more checkpoint).
        features: ``k``, the inputs of the linear model.
        targets: ``m``, its outputs; ``k + m`` must be a multiple of 8 (at most 256).
        batch: rows of data per step.
        eta: the learning rate.
        seed: the data (a planted model plus noise) and the initial weights.

    Returns:
        ``(net, s0)``: the job's operators and the checkpoint ``[W_0^T | I_m]``.

    Raises:
        ValueError: if a size is out of range or ``k + m`` is not a multiple of 8.
    """
    if min(steps, features, targets, batch) < 1 or (features + targets) % 8 or features + targets > 256:
        raise ValueError(f"steps, features, targets and batch must be positive and features + targets a multiple "
                         f"of 8 up to 256; got {steps}, {features}, {targets}, {batch}")
    if not 0 < eta < 1:
        raise ValueError(f"eta must be in (0, 1), got {eta!r}")
    rng = np.random.default_rng(seed)
    k, m = features, targets
    planted = rng.standard_normal((k, m)) / np.sqrt(k)
    ops = []
    for _ in range(steps):
        x = rng.standard_normal((batch, k))
        y = x @ planted + 0.1 * rng.standard_normal((batch, m))
        op = np.zeros((k + m, k + m))
        op[:k, :k] = (np.eye(k) - eta / batch * x.T @ x).T
        op[k:, :k] = (eta / batch * x.T @ y).T
        op[k:, k:] = np.eye(m)
        ops.append(op.astype(np.float32))
    return FloatNet(tuple(ops), rows=m), initial_checkpoint(k, m, seed=int(rng.integers(2**31)))


def initial_checkpoint(features: int, targets: int, *, seed: int) -> np.ndarray:
    """A seeded checkpoint ``[W_0^T | I_m]`` to start training from (small random weights)."""
    w0 = 0.1 * np.random.default_rng(seed).standard_normal((features, targets))
    return np.concatenate([w0.T, np.eye(targets)], axis=1).astype(np.float32)


def weights_of(checkpoint: np.ndarray, targets: int) -> np.ndarray:
    """The weights ``W`` (``k`` x ``m``) a checkpoint ``[W^T | I_m]`` carries."""
    return np.ascontiguousarray(checkpoint[:, :-targets].T)
