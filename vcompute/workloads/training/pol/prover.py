"""The prover side: record checkpoints while training, commit, sign, answer challenges.

:class:`TranscriptRecorder` is framework-neutral: it takes training states
(``name -> array``) every ``k`` steps. :func:`prove` runs an honest
training job through a backend and records it; :func:`make_provable`
(torch) and :func:`provable_step` (JAX) wrap a user's own loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vcompute.core.hashing import content_hash
from vcompute.core.types import Claim, Job
from vcompute.workloads.training.pol.transcript import HEADER_VERSION, Transcript, checkpoint_digest, update_metrics
from vcompute.workloads.training.data import batch_order_root
from vcompute.workloads.training.spec import (
    Seeds,
    TrainSpec,
    dataset_of,
    derive_seeds,
    encode_state,
    flat_params,
    init_state,
    param_shapes,
    spec_of,
)

__all__ = ["TranscriptRecorder", "build_transcript", "sign_claim", "prove", "challenge_channel"]


def build_transcript(job: Job, provider: str, states: Sequence[Mapping[str, np.ndarray]], *,
                     seeds: Seeds | None = None, header_overrides: Mapping[str, Any] | None = None,
                     dataset: tuple[np.ndarray, np.ndarray] | None = None,
                     declared_spec: TrainSpec | None = None) -> Transcript:
    """A transcript from the training states at steps ``0, k, 2k, ...``.

    Args:
        job: the training job.
        provider: the provider's name (bound into the header).
        states: ``C + 1`` states, checkpoint ``j`` after ``j * k`` steps.
        seeds: the seeds used; defaults to :func:`derive_seeds` of job and provider.
        header_overrides: header fields to replace (adversaries use this to lie).
        dataset: the data the prover would ship on request (reference-style verifiers).
        declared_spec: hyperparameters to declare instead of the job's (adversaries only:
            a verifier that binds hyperparameters rejects any difference).

    Raises:
        ValueError: if the number of states does not match the (declared) spec.
    """
    spec = declared_spec or spec_of(job)
    seeds = seeds or derive_seeds(job.id, provider)
    if len(states) != spec.n_segments + 1:
        raise ValueError(f"expected {spec.n_segments + 1} checkpoints (steps/k + 1), got {len(states)}")
    k = spec.checkpoint_every
    ckpts = [encode_state(j * k, s) for j, s in enumerate(states)]
    params = [flat_params(s) for s in states]
    data = dataset_of(job)
    header = {
        "version": HEADER_VERSION,
        "job_id": job.id,
        "provider": provider,
        "framework": spec.framework,
        "hparams": spec.to_dict(),
        "seeds": seeds.to_dict(),
        "dataset_hash": data.hash,
        "dataset_size": len(data),
        "batch_order_root": batch_order_root(spec.steps, n=len(data), batch_size=spec.batch_size,
                                             data_seed=seeds.data),
        "checkpoint_every": k,
        "steps": spec.steps,
        "n_checkpoints": len(ckpts),
        # 7 significant digits: the verifier compares with rtol 1e-6, and the header stays small
        "segment_metrics": [[float(f"{m:.7g}") for m in update_metrics(params[j], params[j + 1])]
                            for j in range(len(params) - 1)],
        "layout": [[name, list(np.shape(v))] for name, v in states[0].items()],
    }
    header.update(header_overrides or {})
    return Transcript(header, ckpts, dataset=dataset)


def sign_claim(job: Job, provider: str, transcript: Transcript, key: Any | None = None) -> Claim:
    """The claim for ``transcript``: commitment = Merkle root, signed by ``key``.

    ``key`` defaults to :func:`vcompute.core.signing.key_from_name` of the
    provider (a simulated agent's key).
    """
    from vcompute.core.signing import key_from_name

    key = key or key_from_name(provider)
    final = checkpoint_digest(transcript.checkpoints[-1]).hex()
    claim = Claim(job_id=job.id, provider=provider, commitment=transcript.root.hex(),
                  evidence=transcript.commitment_evidence(),
                  meta={"scheme": "pol", "final_checkpoint": final, "n_leaves": transcript.n_leaves})
    return Claim(job_id=claim.job_id, provider=provider, commitment=claim.commitment,
                 evidence=claim.evidence, meta=claim.meta, signature=key.sign(claim.signing_payload()))


class TranscriptRecorder:
    """Collects the checkpoints of one training run and commits them.

    Args:
        job: the training job being run.
        provider: the provider's name.
        seeds: the seeds the run uses (default: derived from job and provider).

    Example:
        >>> from vcompute.workloads.training import make_training_job, init_state, spec_of
        >>> job = make_training_job(dataset="synthetic", steps=2, checkpoint_every=2)
        >>> rec = TranscriptRecorder(job, "alice")
        >>> rec.expects_checkpoint(0)
        True
    """

    def __init__(self, job: Job, provider: str, *, seeds: Seeds | None = None) -> None:
        self.job = job
        self.spec: TrainSpec = spec_of(job)
        self.provider = provider
        self.seeds = seeds or derive_seeds(job.id, provider)
        self.states: list[dict[str, np.ndarray]] = []

    def initial_state(self) -> dict[str, np.ndarray]:
        """The state training must start from (seeded initialisation, zero momentum)."""
        return init_state(self.spec, self.seeds.init)

    def expects_checkpoint(self, step: int) -> bool:
        """Whether ``step`` (steps completed) is a checkpoint step."""
        return step % self.spec.checkpoint_every == 0 and step <= self.spec.steps

    def record(self, step: int, state: Mapping[str, np.ndarray]) -> None:
        """Record the state after ``step`` steps (must be the next checkpoint in order).

        Raises:
            ValueError: if ``step`` is not the next expected checkpoint.
        """
        want = len(self.states) * self.spec.checkpoint_every
        if step != want:
            raise ValueError(f"checkpoint at step {step} recorded out of order; expected step {want}")
        shapes = param_shapes(self.spec)
        for n, shp in shapes.items():
            if tuple(np.shape(state[n])) != shp:
                raise ValueError(f"parameter {n} has shape {np.shape(state[n])}, the job's model has {shp}")
        self.states.append({k: np.array(v, np.float32, copy=True) for k, v in state.items()})

    @property
    def done(self) -> bool:
        """Whether every checkpoint has been recorded."""
        return len(self.states) == self.spec.n_segments + 1

    def finish(self, key: Any | None = None) -> tuple[Claim, Transcript]:
        """Commit and sign; returns the claim and the lossless transcript.

        Raises:
            RuntimeError: if training stopped before the last checkpoint.
        """
        if not self.done:
            raise RuntimeError(f"recorded {len(self.states)} of {self.spec.n_segments + 1} checkpoints; "
                               "finish training before committing")
        data = dataset_of(self.job)
        tr = build_transcript(self.job, self.provider, self.states, seeds=self.seeds, dataset=(data.x, data.y))
        return sign_claim(self.job, self.provider, tr, key), tr


def prove(job: Job, provider: str = "provider", *, key: Any | None = None) -> tuple[Claim, Transcript]:
    """Train ``job`` honestly on its framework's backend and return ``(claim, transcript)``.

    Example:
        >>> from vcompute.workloads.training import make_training_job
        >>> job = make_training_job(dataset="synthetic", steps=4, checkpoint_every=2)
        >>> claim, tr = prove(job, "alice")
        >>> len(tr.checkpoints)
        3
    """
    from vcompute.workloads.training import backend

    rec = TranscriptRecorder(job, provider)
    spec, data = rec.spec, dataset_of(job)
    run = backend(spec.framework).run_steps
    state = rec.initial_state()
    rec.record(0, state)
    k = spec.checkpoint_every
    for j in range(spec.n_segments):
        state = run(spec, state, j * k, k, data, data_seed=rec.seeds.data, aug_seed=rec.seeds.aug)
        rec.record((j + 1) * k, state)
    return rec.finish(key)


def challenge_channel(transcripts: Mapping[str, Transcript]) -> Callable[[Claim, Any], Any]:
    """A :data:`~vcompute.verify.base.ChallengeFn` answering from each provider's transcript.

    A provider that cannot answer returns an ``{"error": ...}`` response
    (which the verifier rejects), as a real network peer would.
    """
    def channel(claim: Claim, request: Any) -> Any:
        tr = transcripts.get(claim.provider)
        if tr is None:
            return {"error": f"provider {claim.provider!r} is not reachable"}
        try:
            return tr.open(request)
        except Exception as e:
            return {"error": f"{type(e).__name__}: {e}"}

    return channel
