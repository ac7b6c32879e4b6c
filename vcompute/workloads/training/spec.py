"""Training jobs: the hyperparameters a consumer fixes, seeds, model layout, state bytes.

A training job's spec holds every hyperparameter (they are part of the job
id, so a proof-of-learning transcript can commit to them and a verifier
can check them instead of taking them on faith). The training *state* is a
flat, ordered mapping ``name -> float32 array`` (parameters in torch
layout, then ``momentum/<name>`` buffers) that both the torch and the JAX
backend read and write, so a checkpoint is framework-neutral bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompute.core.types import Job
from vcompute.workloads.training.data import DATASETS, INPUT_SIDE, N_CLASSES, Dataset, load_dataset

__all__ = [
    "TrainSpec",
    "Seeds",
    "MODELS",
    "FRAMEWORKS",
    "derive_seeds",
    "make_training_job",
    "spec_of",
    "dataset_of",
    "param_shapes",
    "init_state",
    "encode_state",
    "decode_state",
    "StateFormatError",
    "flat_params",
]

#: Model architectures every backend implements.
MODELS = ("mlp", "cnn")
#: Training backends.
FRAMEWORKS = ("torch", "jax")

_MAGIC = b"VCPOLCK1"


@dataclass(frozen=True)
class TrainSpec:
    """Hyperparameters of a training job (SGD with momentum, cross-entropy).

    Attributes:
        framework: ``torch`` or ``jax``.
        model: ``mlp`` (64-hidden-10) or ``cnn`` (two 3x3 convolutions + linear).
        dataset: ``digits`` or ``synthetic``.
        hidden: hidden width of the MLP.
        lr: learning rate.
        momentum: heavy-ball momentum.
        weight_decay: L2 coefficient added to the gradient.
        batch_size: examples per step.
        steps: total optimizer steps.
        checkpoint_every: ``k``: steps between committed checkpoints.
        aug_noise: std of the seeded Gaussian input noise (0 disables it).
        seed: the consumer's seed; per-provider seeds derive from it.

    Example:
        >>> TrainSpec(steps=40, checkpoint_every=4).n_segments
        10
    """

    framework: str = "torch"
    model: str = "mlp"
    dataset: str = "digits"
    hidden: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 32
    steps: int = 200
    checkpoint_every: int = 2
    aug_noise: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise ValueError(f"unknown framework {self.framework!r}; known: {', '.join(FRAMEWORKS)}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(MODELS)}")
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known: {', '.join(DATASETS)}")
        for name in ("hidden", "batch_size", "steps", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.steps % self.checkpoint_every:
            raise ValueError(f"steps ({self.steps}) must be a multiple of checkpoint_every "
                             f"({self.checkpoint_every}) so every segment has k steps")
        for name in ("lr", "momentum", "weight_decay", "aug_noise"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")

    @property
    def n_segments(self) -> int:
        """Number of segments ``steps / checkpoint_every``."""
        return self.steps // self.checkpoint_every

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the job spec)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error.

        Raises:
            ValueError: on unknown keys or invalid values.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        extra = set(d) - known
        if extra:
            raise ValueError(f"unknown training hyperparameters {sorted(extra)}; known: {sorted(known)}")
        return cls(**dict(d))


@dataclass(frozen=True)
class Seeds:
    """The seeds one provider's training run uses.

    Attributes:
        init: parameter initialisation.
        data: batch order.
        aug: augmentation noise.
    """

    init: int
    data: int
    aug: int

    def to_dict(self) -> dict[str, int]:
        """JSON form."""
        return dataclasses.asdict(self)


def derive_seeds(job_id: str, provider: str) -> Seeds:
    """Seeds bound to the job and the provider: a copied transcript starts wrong.

    Example:
        >>> derive_seeds("j", "a") == derive_seeds("j", "b")
        False
    """
    h = hashlib.sha256(f"vcompute-pol-seeds:{job_id}:{provider}".encode()).digest()
    a, b, c = struct.unpack("<QQQ", h[:24])
    return Seeds(int(a >> 1), int(b >> 1), int(c >> 1))


def make_training_job(spec: TrainSpec | None = None, **overrides: Any) -> Job:
    """A ``training`` job whose spec is ``spec`` (with ``overrides``) and inputs the dataset.

    Example:
        >>> job = make_training_job(dataset="synthetic", steps=4, checkpoint_every=2)
        >>> job.kind, job.spec["steps"]
        ('training', 4)
    """
    spec = dataclasses.replace(spec or TrainSpec(), **overrides)
    data = load_dataset(spec.dataset, seed=spec.seed)
    return Job("training", spec.to_dict(), {"x": data.x, "y": data.y})


def spec_of(job: Job) -> TrainSpec:
    """The :class:`TrainSpec` of a training job.

    Raises:
        ValueError: if ``job`` is not a valid training job.
    """
    if job.kind != "training":
        raise ValueError(f"expected a 'training' job, got {job.kind!r}")
    return TrainSpec.from_dict(job.spec)


def dataset_of(job: Job) -> Dataset:
    """The job's dataset (its ``x`` and ``y`` inputs).

    Raises:
        ValueError: if the job has no ``x``/``y`` inputs.
    """
    if "x" not in job.inputs or "y" not in job.inputs:
        raise ValueError("training job has no 'x' and 'y' inputs")
    return Dataset(np.asarray(job.inputs["x"]), np.asarray(job.inputs["y"]), job.spec.get("dataset", "custom"))


def param_shapes(spec: TrainSpec) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes (torch layout) of the spec's model, in order."""
    d = INPUT_SIDE * INPUT_SIDE
    if spec.model == "mlp":
        h = spec.hidden
        return {"fc1.weight": (h, d), "fc1.bias": (h,), "fc2.weight": (N_CLASSES, h), "fc2.bias": (N_CLASSES,)}
    return {"conv1.weight": (8, 1, 3, 3), "conv1.bias": (8,), "conv2.weight": (16, 8, 3, 3),
            "conv2.bias": (16,), "fc.weight": (N_CLASSES, 16 * 4 * 4), "fc.bias": (N_CLASSES,)}


def _fan_in(name: str, shapes: Mapping[str, tuple[int, ...]]) -> int:
    w = shapes[name.rsplit(".", 1)[0] + ".weight"]
    return int(np.prod(w[1:]))


def init_state(spec: TrainSpec, init_seed: int) -> dict[str, np.ndarray]:
    """Initial training state: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` parameters, zero momentum.

    Drawn in numpy from ``init_seed`` so every framework and machine starts
    from the same bytes (torch's default bound, without its global RNG).
    """
    shapes = param_shapes(spec)
    state: dict[str, np.ndarray] = {}
    for i, (name, shape) in enumerate(shapes.items()):
        bound = 1.0 / np.sqrt(_fan_in(name, shapes))
        state[name] = np.random.default_rng([int(init_seed), i]).uniform(-bound, bound, shape).astype(np.float32)
    for name, shape in shapes.items():
        state["momentum/" + name] = np.zeros(shape, np.float32)
    return state


def flat_params(state: Mapping[str, np.ndarray]) -> np.ndarray:
    """All parameters (not momentum) as one float64 vector, in state order."""
    parts = [np.asarray(v, np.float64).ravel() for k, v in state.items() if not k.startswith("momentum/")]
    return np.concatenate(parts) if parts else np.zeros(0)


class StateFormatError(ValueError):
    """Checkpoint bytes that do not decode to a training state."""


def encode_state(step: int, state: Mapping[str, np.ndarray]) -> bytes:
    """Lossless, deterministic bytes of a checkpoint (step + little-endian float32 arrays).

    Example:
        >>> s = {"w": np.ones(2, np.float32)}
        >>> decode_state(encode_state(3, s))[0]
        3
    """
    layout = [[k, list(np.shape(v))] for k, v in state.items()]
    header = json.dumps({"step": int(step), "arrays": layout}, separators=(",", ":")).encode()
    body = b"".join(np.ascontiguousarray(v, dtype="<f4").tobytes() for v in state.values())
    return _MAGIC + struct.pack("<I", len(header)) + header + body


def decode_state(data: bytes) -> tuple[int, dict[str, np.ndarray]]:
    """Inverse of :func:`encode_state`.

    Raises:
        StateFormatError: on truncated or malformed bytes (never anything else).
    """
    try:
        if not isinstance(data, (bytes, bytearray)) or data[:8] != _MAGIC:
            raise StateFormatError("not a checkpoint (bad magic bytes)")
        (hlen,) = struct.unpack("<I", data[8:12])
        header = json.loads(bytes(data[12:12 + hlen]))
        step, layout = int(header["step"]), header["arrays"]
        off = 12 + hlen
        state: dict[str, np.ndarray] = {}
        for name, shape in layout:
            shape = tuple(int(s) for s in shape)
            if any(s < 0 for s in shape):
                raise StateFormatError(f"negative dimension in {name}")
            nbytes = 4 * int(np.prod(shape))
            if off + nbytes > len(data):
                raise StateFormatError(f"checkpoint truncated inside array {name!r}")
            state[str(name)] = np.frombuffer(bytes(data[off:off + nbytes]), "<f4").reshape(shape).astype(np.float32)
            off += nbytes
        if off != len(data):
            raise StateFormatError(f"{len(data) - off} trailing bytes after the last array")
        return step, state
    except StateFormatError:
        raise
    except Exception as e:
        raise StateFormatError(f"malformed checkpoint: {type(e).__name__}: {e}") from None
