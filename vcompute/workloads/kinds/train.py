"""The ``train`` job kind: a short SGD training run proven by a proof-of-learning transcript.

A job is a :class:`~vcompute.workloads.training.TrainSpec` on the synthetic
dataset (:func:`~vcompute.workloads.training.make_training_job`; its jobs carry
``Job.kind == "training"``). A provider trains, commits a Merkle root over
its checkpoints (the claim) and keeps the transcript to answer the
verifier's openings; :meth:`TrainKind.challenge_channel` is that prover side.
Checked by ``"pol"`` (:class:`~vcompute.verify.pol.PoLVerifier`). Behaviours are
the PoL spoofs (``train/<name>``, ``(job, provider, rng, **params) -> Spoof``).

Example:
    >>> import numpy as np
    >>> k = TrainKind()
    >>> job = k.make_job("tiny", seed=0)
    >>> claim = k.execute(job, "honest", rng=np.random.default_rng(0), provider="p")
    >>> claim.meta["scheme"], k.challenge_channel(job, [claim]) is not None
    ('pol', True)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vcompute.core.types import Claim, Job
from vcompute.workloads.kinds.base import JobKind

__all__ = ["TrainKind"]

#: Transcripts a simulated prover keeps for its open claims (oldest dropped first).
_KEEP = 512


class TrainKind(JobKind):
    """PoL training segments: the provider trains; the verifier replays a few committed segments."""

    name = "train"
    job_kind = "training"
    #: TrainSpec overrides (synthetic data, torch MLP)
    sizes = {"tiny": {"steps": 4, "checkpoint_every": 1, "hidden": 16, "batch_size": 16},
             "small": {"steps": 16, "checkpoint_every": 2, "hidden": 32, "batch_size": 32}}
    default_size = "tiny"
    verifiers = ("pol",)
    cheats = {"random_output": "interpolate", "skip_k": "truncate", "low_precision": "low_precision"}
    backends = ("torch",)

    def __init__(self) -> None:
        self._transcripts: OrderedDict[tuple[str, str, str], Any] = OrderedDict()

    def make_job(self, size: Any = None, *, seed: int, backend: str = "torch") -> Job:
        """A training job on the synthetic dataset, seeded.

        Raises:
            ValueError: for an unknown size or a backend other than torch.
        """
        from vcompute.workloads.training import make_training_job

        name = self.resolve(size, backend)
        return make_training_job(dataset="synthetic", framework="torch", seed=int(seed) % 2**31, **self.sizes[name])

    def flops(self, job: Job) -> float:
        """``6 params`` per example and step (forward and backward)."""
        from vcompute.workloads.training import spec_of
        from vcompute.workloads.training.spec import param_shapes

        spec = spec_of(self.check_job(job))
        n_params = sum(int(np.prod(s)) for s in param_shapes(spec).values())
        return 6.0 * n_params * spec.batch_size * spec.steps

    def _claim_of(self, job: Job, behaviour: str, fn: Any, rng: np.random.Generator, provider: str,
                  params: Mapping[str, Any]) -> Claim:
        spoof = fn(job, provider, rng, **params)
        claim = spoof.claim
        self._transcripts[(job.id, provider, _exact(claim.commitment))] = spoof.transcript
        while len(self._transcripts) > _KEEP:
            self._transcripts.popitem(last=False)
        return claim

    def challenge_channel(self, job: Job, claims: Sequence[Claim]) -> Any:
        """Each claim's prover answering from the transcript it committed to (an error if it kept none)."""
        store = self._transcripts

        def channel(claim: Claim, request: Any) -> Any:
            # builtin str only: a claim's provider or commitment may be a str subclass whose
            # __str__/__eq__/__hash__ are the provider's code
            key = (job.id, _exact(getattr(claim, "provider", None)), _exact(getattr(claim, "commitment", None)))
            tr = store.get(key) if None not in key else None
            if tr is None:
                return {"error": f"provider {key[1]!r} holds no transcript for this claim"}
            try:
                return tr.open(request)
            except Exception as e:  # a prover that cannot answer says so, as a network peer would
                return {"error": f"{type(e).__name__}: {e}"}

        return channel

    def reexecute(self, job: Job, piece: Any = None) -> Any:
        """Replay a PoL segment request (``{"kind": "pol-segment", ...}``) on trusted hardware.

        Raises:
            ValueError: for a piece that is not a PoL segment.
        """
        from vcompute.workloads.training import TrainSpec, backend, dataset_of

        self.check_job(job)
        if not isinstance(piece, Mapping) or piece.get("kind") != "pol-segment":
            raise ValueError("a train job re-executes PoL segments: pass {'kind': 'pol-segment', ...}")
        spec = TrainSpec.from_dict(piece["spec"])
        data = piece.get("data") or dataset_of(job)
        return backend(piece["framework"]).run_steps(spec, piece["state"], piece["start"], piece["steps"], data,
                                                     data_seed=piece["data_seed"], aug_seed=piece["aug_seed"])


def _exact(x: Any) -> str | None:
    """A builtin copy of a str (none of a subclass's methods run), else None."""
    return str.__str__(x) if issubclass(type(x), str) else None
