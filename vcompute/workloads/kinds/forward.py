"""The ``forward`` job kind: one forward pass of a consumer's torch MLP on a seeded batch.

A job's spec names the architecture (layer widths, batch); its inputs are
the batch ``x`` and the consumer's float32 weights (trusted: the verifier
rebuilds the module from them, :func:`module_of`). A claim's output is the
model output; its evidence ``{"trace": {layer: [output per call]}}`` holds
every linear layer's output, which the whole-model Freivalds verifier
(``"model"``, :class:`~vcompute.verify.freivalds.model.job.ModelVerifier`) checks layer by layer.

Behaviours (``(job, rng, **params) -> (output, trace)``):

- ``honest``: the forward pass.
- ``random_output``: noise of the right shapes for the output and every traced
  layer, at no compute.
- ``skip_layer``: a lazy provider that skips a contiguous ``fraction`` of the
  inner dimension of one linear layer (default: the first, the largest).
- ``swap_weights``: one layer uses other weights (a stale checkpoint).
- ``low_precision``: one layer computed in bfloat16, returned as float32.

Example:
    >>> import numpy as np
    >>> k = ForwardKind()
    >>> job = k.make_job("tiny", seed=0)
    >>> claim = k.execute(job, "honest", rng=np.random.default_rng(0))
    >>> tuple(claim.output.shape), sorted(claim.evidence["trace"])
    ((4, 8), ['0', '2'])
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from vcompute.core.hashing import content_hash
from vcompute.core.types import Claim, Job
from vcompute.workloads.kinds.base import JobKind

__all__ = ["ForwardKind", "module_of", "honest", "random_output", "skip_layer", "swap_weights", "low_precision"]


class ForwardKind(JobKind):
    """Model forward passes (torch MLPs), checked by whole-model Freivalds."""

    name = "forward"
    #: (layer widths, batch)
    sizes = {"tiny": ((16, 32, 8), 4), "small": ((64, 128, 10), 8), "medium": ((256, 512, 10), 16)}
    default_size = "small"
    verifiers = ("model", "replication")
    cheats = {"random_output": "random_output", "skip_k": "skip_layer", "low_precision": "low_precision"}
    backends = ("torch",)
    #: disputes: the ReLU MLP operator by operator on OperatorGame.vy (proofs/dispute.md C12)
    dispute = "vcompute.verify.dispute.market:ForwardDispute"

    def make_job(self, size: Any = None, *, seed: int, backend: str = "torch") -> Job:
        """A forward job: an MLP with seeded weights and a seeded input batch.

        Raises:
            ValueError: for an unknown size or a backend other than torch.
        """
        name = self.resolve(size, backend)
        widths, batch = self.sizes[name]
        rng = np.random.default_rng([int(seed), 17])
        weights = {}
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            bound = 1.0 / math.sqrt(a)  # nn.Linear's default initialisation range
            weights[f"{2 * i}.weight"] = rng.uniform(-bound, bound, (b, a)).astype(np.float32)
            weights[f"{2 * i}.bias"] = rng.uniform(-bound, bound, (b,)).astype(np.float32)
        x = rng.standard_normal((batch, widths[0])).astype(np.float32)
        spec = {"arch": "mlp", "widths": list(widths), "batch": batch, "seed": int(seed), "backend": "torch"}
        # read-only: a provider holding the job object must not rewrite the model it is checked against
        for a in (x, *weights.values()):
            a.setflags(write=False)
        return Job("forward", spec, {"x": x, "weights": MappingProxyType(weights)})

    def flops(self, job: Job) -> float:
        """``2 batch in out`` summed over the linear layers."""
        s = self.check_job(job).spec
        w = s["widths"]
        return float(sum(2 * s["batch"] * a * b for a, b in zip(w[:-1], w[1:])))

    def _claim_of(self, job: Job, behaviour: str, fn: Any, rng: np.random.Generator, provider: str,
                  params: Mapping[str, Any]) -> Claim:
        out, trace = fn(job, rng, **params)
        return Claim(job_id=job.id, provider=provider, output=out, commitment=content_hash(out),
                     evidence={"trace": trace}, meta={"behaviour": behaviour})

    def reexecute(self, job: Job, piece: Any = None) -> Any:
        """The honest model output."""
        return honest(self.check_job(job), np.random.default_rng(0))[0]


def module_of(job: Job) -> Any:
    """The job's torch module, rebuilt from its spec and (trusted) weights: a new module at every call.

    Never cached on the job: providers and the verifier hold the same job object, and a provider
    that wrote into a shared module would change the model its claim is checked against.

    Raises:
        ValueError: for a job that is not a forward job.
    """
    import torch

    from vcompute.workloads.models import torch_mlp

    if not isinstance(job, Job) or job.kind != "forward" or job.spec.get("arch") != "mlp":
        raise ValueError("expected a 'forward' job of an mlp (ForwardKind.make_job)")
    m = torch_mlp(tuple(int(w) for w in job.spec["widths"]), seed=0)
    m.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in job.inputs["weights"].items()})
    return m.eval()


def input_of(job: Job) -> Any:
    """The job's input batch as a torch tensor."""
    import torch

    return torch.from_numpy(np.array(job.inputs["x"], np.float32))


def honest(job: Job, rng: np.random.Generator) -> tuple[Any, dict]:
    """The forward pass and its trace."""
    from vcompute.workloads.models import torch_provider

    return torch_provider(module_of(job), input_of(job))


def random_output(job: Job, rng: np.random.Generator) -> tuple[Any, dict]:
    """Noise shaped like the output and every layer's trace, at no compute."""
    import torch

    w, batch = job.spec["widths"], int(job.spec["batch"])
    trace = {str(2 * i): [torch.from_numpy(rng.standard_normal((batch, b)).astype(np.float32))]
             for i, b in enumerate(w[1:])}
    return trace[str(2 * (len(w) - 2))][0].clone(), trace


def skip_layer(job: Job, rng: np.random.Generator, *, layer: str = "0", fraction: float = 0.25) -> tuple[Any, dict]:
    """Skips a random contiguous ``fraction`` of one layer's inner dimension (its share of the work saved)."""
    import torch

    from vcompute.workloads.models import torch_provider

    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"skip_layer fraction must be in (0, 1], got {fraction}")
    lazy = copy.deepcopy(module_of(job))
    mod = dict(lazy.named_modules())[layer]
    k = mod.weight.shape[1]
    width = max(1, int(math.ceil(fraction * k)))
    start = int(rng.integers(0, k - width + 1))
    with torch.no_grad():
        mod.weight[:, start:start + width] = 0.0  # the same sums as never computing those terms
    return torch_provider(lazy, input_of(job))


def swap_weights(job: Job, rng: np.random.Generator, *, magnitude: float = 0.05, layer: str | None = None
                 ) -> tuple[Any, dict]:
    """One layer's weights replaced by ``W + magnitude * std(W) * noise``."""
    from vcompute.workloads.models import torch_provider

    return torch_provider(module_of(job), input_of(job), behaviour="swap_weights", rng=rng, magnitude=magnitude,
                          layer=layer)


def low_precision(job: Job, rng: np.random.Generator, *, layer: str | None = None) -> tuple[Any, dict]:
    """One layer (default the last) computed in bfloat16 and returned as float32."""
    from vcompute.workloads.models import torch_provider

    return torch_provider(module_of(job), input_of(job), behaviour="low_precision", layer=layer)
