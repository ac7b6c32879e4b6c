"""Provers that cheat at proof-of-learning: the known spoofs, as real computations.

Each adversary is ``(job, provider, rng, **params) -> Spoof``: a signed claim,
the transcript it will open, and its cost as a fraction of honest training
(gradient evaluations, counted). Several steal the final model of an honest
"victim" provider who trained the same job.

- ``replay``: copies another provider's transcript and re-signs it.
- ``interpolate``: checkpoints on the straight line from init to a stolen model.
- ``truncate``: trains the first ``trained_fraction`` of the segments, then
  interpolates to the stolen model.
- ``hparam_lie``: trains with cheaper hyperparameters (smaller batches, larger
  learning rate) than the job's; declares what it used (``declare='used'``)
  or the job's (``declare='job'``).
- ``data_substitution``: trains on relabelled data while committing the job's dataset.
- ``zhang``: Zhang et al. (S&P 2022): crafts a synthetic batch for every step so
  that SGD on it walks from the initialisation to the stolen model; commits
  the crafted dataset.
- ``fang``: Fang et al. (EuroS&P 2023): a few honestly trained decoy segments per
  epoch carry the largest updates (so top-Q replays only them); every other
  segment is a small fabricated step towards the stolen model.
- ``fang_hparams``: Fang et al.'s use of uncommitted hyperparameters: declares a
  tiny learning rate and many steps so that straight-line steps to the stolen
  model stay within an absolute ``delta``.
- ``swap_final``: trains honestly, then replaces checkpoint ``C - depth + 1`` by
  another model (the victim's) and trains the last ``depth - 1`` segments
  honestly from it, declaring the one broken segment's update like its
  neighbour's (so top-Q never picks it). ``depth = 1`` swaps the final model.
- ``low_precision``: trains every step under fp16 or bf16 autocast and claims
  the job's fp32 training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcompute.core.types import Claim, Job
from vcompute.workloads.training.pol.prover import build_transcript, prove, sign_claim
from vcompute.workloads.training.pol.transcript import Transcript
from vcompute.workloads.training.data import batch_indices
from vcompute.workloads.training.spec import (
    Dataset,
    TrainSpec,
    dataset_of,
    decode_state,
    derive_seeds,
    init_state,
    param_shapes,
    spec_of,
)

__all__ = ["Spoof", "ADVERSARIES", "run_adversary"]


@dataclass
class Spoof:
    """What an adversary hands in.

    Attributes:
        claim: the signed claim.
        transcript: the transcript it opens on challenge.
        cost_fraction: gradient evaluations spent, as a fraction of honest training.
        info: attack-specific facts (distance to the stolen model, ...).
    """

    claim: Claim
    transcript: Transcript
    cost_fraction: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def _finish(job: Job, provider: str, states, *, cost: float, info=None, **kw) -> Spoof:
    tr = build_transcript(job, provider, states, **kw)
    return Spoof(sign_claim(job, provider, tr), tr, cost, dict(info or {}))


def _steal(job: Job, victim: str) -> dict[str, np.ndarray]:
    """The victim's final model (the attacker's prize)."""
    _, tr = prove(job, victim)
    return decode_state(tr.checkpoints[-1])[1]


def _line(a: dict, b: dict, t: float) -> dict:
    return {n: (a[n] + t * (b[n] - a[n])).astype(np.float32) for n in a}


def _with_momentum(spec: TrainSpec, prev: dict, new: dict) -> dict:
    """Give a fabricated state the momentum buffer one SGD step from ``prev`` would have."""
    out = dict(new)
    for n in param_shapes(spec):
        out["momentum/" + n] = ((prev[n] - new[n]) / max(spec.lr, 1e-12)).astype(np.float32)
    return out


def _train(spec: TrainSpec, state, start, n, data, seeds):
    from vcompute.workloads.training import backend

    return backend(spec.framework).run_steps(spec, state, start, n, data, data_seed=seeds.data, aug_seed=seeds.aug)


def honest(job: Job, provider: str, rng: np.random.Generator) -> Spoof:
    """An honest prover (the control row)."""
    claim, tr = prove(job, provider)
    return Spoof(claim, tr, 1.0)


def replay(job: Job, provider: str, rng: np.random.Generator, *, victim: str = "victim") -> Spoof:
    """Re-sign another provider's transcript under ``provider``'s name."""
    _, tr = prove(job, victim)
    header = dict(tr.header, provider=provider)
    spoof = Transcript(header, list(tr.checkpoints), dataset=tr.dataset)
    return Spoof(sign_claim(job, provider, spoof), spoof, 0.0)


def interpolate(job: Job, provider: str, rng: np.random.Generator, *, victim: str = "victim") -> Spoof:
    """Checkpoints on the line from the (correct, seeded) init to the stolen model."""
    spec, seeds = spec_of(job), derive_seeds(job.id, provider)
    w0, stolen = init_state(spec, seeds.init), _steal(job, victim)
    C = spec.n_segments
    states = [w0]
    for j in range(1, C + 1):
        states.append(_with_momentum(spec, states[-1], _line(w0, stolen, j / C)))
    d = dataset_of(job)
    return _finish(job, provider, states, cost=0.0, seeds=seeds, dataset=(d.x, d.y))


def truncate(job: Job, provider: str, rng: np.random.Generator, *, trained_fraction: float = 0.5,
             victim: str = "victim") -> Spoof:
    """Train the first ``trained_fraction`` of the segments honestly, fabricate the rest."""
    spec, seeds, data = spec_of(job), derive_seeds(job.id, provider), dataset_of(job)
    C, k = spec.n_segments, spec.checkpoint_every
    cut = int(round(trained_fraction * C))
    stolen = _steal(job, victim)
    states = [init_state(spec, seeds.init)]
    for j in range(cut):
        states.append(_train(spec, states[-1], j * k, k, data, seeds))
    mid = states[-1]
    for j in range(cut + 1, C + 1):
        states.append(_with_momentum(spec, states[-1], _line(mid, stolen, (j - cut) / (C - cut))))
    return _finish(job, provider, states, cost=cut / C, seeds=seeds, dataset=(data.x, data.y),
                   info={"fabricated_fraction": 1 - cut / C})


def hparam_lie(job: Job, provider: str, rng: np.random.Generator, *, batch_fraction: float = 0.25,
               lr_scale: float = 2.0, declare: str = "used") -> Spoof:
    """Train with ``batch_size * batch_fraction`` and ``lr * lr_scale`` instead of the job's values."""
    spec, data = spec_of(job), dataset_of(job)
    used = dataclasses.replace(spec, batch_size=max(1, int(spec.batch_size * batch_fraction)), lr=spec.lr * lr_scale)
    seeds = derive_seeds(job.id, provider)
    states = [init_state(used, seeds.init)]
    k = used.checkpoint_every
    for j in range(used.n_segments):
        states.append(_train(used, states[-1], j * k, k, data, seeds))
    tr = build_transcript(job, provider, states, seeds=seeds, dataset=(data.x, data.y))
    if declare == "used":  # what a reference verifier would read and believe
        from vcompute.workloads.training.data import batch_order_root

        tr = Transcript(dict(tr.header, hparams=used.to_dict(), batch_order_root=batch_order_root(
            used.steps, n=len(data), batch_size=used.batch_size, data_seed=seeds.data)),
            tr.checkpoints, dataset=tr.dataset)
    elif declare != "job":
        raise ValueError("declare must be 'used' or 'job'")
    return Spoof(sign_claim(job, provider, tr), tr, used.batch_size / spec.batch_size)


def data_substitution(job: Job, provider: str, rng: np.random.Generator, *, relabel: float = 1.0) -> Spoof:
    """Train on the job's inputs with a fraction ``relabel`` of labels permuted, committing the job's data."""
    spec, data, seeds = spec_of(job), dataset_of(job), derive_seeds(job.id, provider)
    y = data.y.copy()
    sel = np.random.default_rng(seeds.data ^ 0xBAD).random(len(y)) < relabel
    y[sel] = (y[sel] + 1) % 10
    fake = Dataset(data.x, y, "substituted")
    states = [init_state(spec, seeds.init)]
    k = spec.checkpoint_every
    for j in range(spec.n_segments):
        states.append(_train(spec, states[-1], j * k, k, fake, seeds))
    return _finish(job, provider, states, cost=1.0, seeds=seeds, dataset=(data.x, data.y))


def fang(job: Job, provider: str, rng: np.random.Generator, *, decoys_per_epoch: int = 2,
         victim: str = "victim") -> Spoof:
    """Decoy segments trained honestly carry the big updates; tiny fabricated steps do the rest."""
    spec, data, seeds = spec_of(job), dataset_of(job), derive_seeds(job.id, provider)
    C, k = spec.n_segments, spec.checkpoint_every
    group = max(1, (len(data) // spec.batch_size) // k)  # the reference ranks updates per epoch
    decoys = set()
    for s in range(0, C, group):
        decoys.update(range(s, min(s + decoys_per_epoch, C)))
    from vcompute.workloads.training.pol.transcript import update_metrics
    from vcompute.workloads.training.spec import flat_params

    stolen = _steal(job, victim)
    states = [init_state(spec, seeds.init)]
    fabricated_left = C - len(decoys)
    cap = None  # per group: half the smallest decoy update, in every metric
    for j in range(C):
        if j in decoys:
            states.append(_train(spec, states[-1], j * k, k, data, seeds))
            m = np.array(update_metrics(flat_params(states[-2]), flat_params(states[-1])))
            cap = m if (j % group == 0 or cap is None) else np.minimum(cap, m)
            continue
        prev = states[-1]
        step = _line(prev, stolen, 1.0 / fabricated_left)
        m = np.array(update_metrics(flat_params(prev), flat_params(step)))
        scale = 1.0 if cap is None else float(min(1.0, np.min(0.5 * cap / np.maximum(m, 1e-30))))
        states.append(_with_momentum(spec, prev, _line(prev, stolen, scale / fabricated_left)))
        fabricated_left -= 1
    gap = float(np.linalg.norm(flat_params(states[-1]) - flat_params(stolen)) /
                max(np.linalg.norm(flat_params(stolen) - flat_params(states[0])), 1e-30))
    return _finish(job, provider, states, cost=len(decoys) / C, seeds=seeds, dataset=(data.x, data.y),
                   info={"fabricated_fraction": 1 - len(decoys) / C, "relative_gap_to_stolen": gap})


def fang_hparams(job: Job, provider: str, rng: np.random.Generator, *, declared_lr: float = 1e-6,
                 max_step: float = 0.015, victim: str = "victim") -> Spoof:
    """Fang et al.'s lever on uncommitted hyperparameters: declare a learning rate so small that
    a replay barely moves, and enough steps that every fabricated segment (a straight line from
    the init to the stolen model) is shorter than ``max_step`` (below an absolute ``delta``)."""
    from vcompute.workloads.training.spec import flat_params

    spec, data, seeds = spec_of(job), dataset_of(job), derive_seeds(job.id, provider)
    w0, stolen = init_state(spec, seeds.init), _steal(job, victim)
    dist = float(np.linalg.norm(flat_params(stolen) - flat_params(w0)))
    C = max(spec.n_segments, int(np.ceil(dist / max_step)))
    declared = dataclasses.replace(spec, lr=declared_lr, momentum=0.0, steps=C * spec.checkpoint_every)
    zero = {n: np.zeros_like(v) for n, v in w0.items() if n.startswith("momentum/")}
    states = [{**_line(w0, stolen, j / C), **zero} for j in range(C + 1)]
    return _finish(job, provider, states, cost=0.0, seeds=seeds, dataset=(data.x, data.y), declared_spec=declared,
                   info={"relative_gap_to_stolen": 0.0, "declared_steps": declared.steps})


def zhang(job: Job, provider: str, rng: np.random.Generator, *, iters: int = 30, victim: str = "victim",
          craft_lr: float = 0.1) -> Spoof:
    """Craft each step's batch so that SGD on it moves towards the stolen model (torch).

    The spoofer runs real SGD on its crafted batches and records the states
    it actually reaches, so its transcript replays exactly on the crafted
    dataset; what gives it away is that the dataset is not the job's.
    """
    import torch
    from torch.func import functional_call

    from vcompute.workloads.training import torch_backend as tb
    from vcompute.workloads.training.data import augment

    spec, seeds = spec_of(job), derive_seeds(job.id, provider)
    T, B, k = spec.steps, spec.batch_size, spec.checkpoint_every
    n = T * B  # one epoch: every step gets its own crafted examples
    w0, stolen = init_state(spec, seeds.init), _steal(job, victim)
    names = list(param_shapes(spec))
    gen = np.random.default_rng(seeds.data ^ 0x2A)
    x_craft = np.zeros((n, 64), np.float32)
    y_craft = gen.integers(0, 10, n).astype(np.int64)
    module = tb.build_model(spec)
    opt = tb.make_optimizer(spec, module)
    tb.load_state(spec, w0, module, opt)
    states, grads = [w0], 0
    for s in range(T):
        idx = batch_indices(s, n=n, batch_size=B, data_seed=seeds.data)
        cur = tb.read_state(spec, module, opt)
        target = _line(w0, stolen, (s + 1) / T)
        need = {p: (cur[p] - target[p]) / spec.lr - spec.momentum * cur["momentum/" + p] - spec.weight_decay * cur[p]
                for p in names}
        need_t = {p: torch.from_numpy(v.astype(np.float32)) for p, v in need.items()}
        params = {p: torch.from_numpy(cur[p]) for p in names}
        z = torch.from_numpy(0.5 + 0.1 * gen.standard_normal((B, 64)).astype(np.float32)).requires_grad_(True)
        yb = torch.from_numpy(y_craft[idx])
        adam = torch.optim.Adam([z], lr=craft_lr)
        for _ in range(iters):
            ps = {p: v.clone().requires_grad_(True) for p, v in params.items()}
            loss = torch.nn.functional.cross_entropy(functional_call(module, ps, (z,)), yb)
            g = torch.autograd.grad(loss, list(ps.values()), create_graph=True)
            mismatch = sum(((gi - need_t[p]) ** 2).sum() for gi, p in zip(g, names))
            adam.zero_grad()
            mismatch.backward()
            adam.step()
            grads += 2  # a gradient and a gradient of it
        noise = augment(np.zeros((B, 64), np.float32), s, aug_seed=seeds.aug, noise=spec.aug_noise)
        x_craft[idx] = z.detach().numpy() - noise  # the replay adds this noise back
        xb = torch.from_numpy(augment(x_craft[idx], s, aug_seed=seeds.aug, noise=spec.aug_noise))
        tb.training_step(module, opt, xb, yb)
        grads += 1
        if (s + 1) % k == 0:
            states.append(tb.read_state(spec, module, opt))
    crafted = Dataset(x_craft, y_craft, "crafted")
    spoof = _finish(job, provider, states, cost=grads / T, seeds=seeds, dataset=(crafted.x, crafted.y))
    from vcompute.workloads.training.data import batch_order_root
    from vcompute.workloads.training.spec import flat_params

    tr = spoof.transcript
    tr = Transcript(dict(tr.header, dataset_hash=crafted.hash, dataset_size=n, batch_order_root=batch_order_root(
        T, n=n, batch_size=B, data_seed=seeds.data)), tr.checkpoints, dataset=tr.dataset)
    gap = float(np.linalg.norm(flat_params(states[-1]) - flat_params(stolen)) /
                max(np.linalg.norm(flat_params(stolen) - flat_params(w0)), 1e-30))
    return Spoof(sign_claim(job, provider, tr), tr, spoof.cost_fraction, {"relative_gap_to_stolen": gap})


def swap_final(job: Job, provider: str, rng: np.random.Generator, *, depth: int = 1,
               victim: str = "victim", blend: float = 1.0) -> Spoof:
    """Train honestly, swap checkpoint ``C - depth + 1`` for another model, lie about the break.

    The swapped model is ``blend`` of the way from the prover's own honest
    checkpoint to the victim's final model (``blend = 1``: the victim's
    model; small: a model close to the prover's own, like a small patch).
    Segments after the break are trained honestly from the swapped model, so
    only segment ``C - depth`` fails to reproduce, and its declared update
    sizes are copied from the segment before it.
    """
    spec, seeds, data = spec_of(job), derive_seeds(job.id, provider), dataset_of(job)
    C, k = spec.n_segments, spec.checkpoint_every
    depth = int(depth)
    if not 1 <= depth <= C:
        raise ValueError(f"depth must be in 1..{C} (the number of segments), got {depth}")
    brk = C - depth  # the segment that does not reproduce
    states = [init_state(spec, seeds.init)]
    for j in range(brk):
        states.append(_train(spec, states[-1], j * k, k, data, seeds))
    other = _steal(job, victim)
    if blend != 1.0:
        own = _train(spec, states[-1], brk * k, k, data, seeds)
        other = _line(own, other, float(blend))
    states.append(other)
    for j in range(brk + 1, C):
        states.append(_train(spec, states[-1], j * k, k, data, seeds))
    tr = build_transcript(job, provider, states, seeds=seeds, dataset=(data.x, data.y))
    table = [list(m) for m in tr.header["segment_metrics"]]
    table[brk] = list(table[brk - 1] if brk > 0 else table[brk + 1])
    tr = Transcript(dict(tr.header, segment_metrics=table), tr.checkpoints, dataset=tr.dataset)
    return Spoof(sign_claim(job, provider, tr), tr, (C - 1) / C, {"broken_segment": brk, "blend": float(blend)})


def low_precision(job: Job, provider: str, rng: np.random.Generator, *, dtype: str = "float16") -> Spoof:
    """Train every step under ``dtype`` autocast (torch) and claim the job's fp32 training."""
    from vcompute.workloads.training import torch_backend as tb

    spec, seeds, data = spec_of(job), derive_seeds(job.id, provider), dataset_of(job)
    if spec.framework != "torch":
        raise ValueError("low_precision trains with torch.autocast: use a torch job")
    k = spec.checkpoint_every
    states = [init_state(spec, seeds.init)]
    for j in range(spec.n_segments):
        states.append(tb.run_steps(spec, states[-1], j * k, k, data, data_seed=seeds.data, aug_seed=seeds.aug,
                                   autocast=dtype))
    # cost: compute at half precision, counted as half an fp32 step on hardware that runs it at twice the rate
    return _finish(job, provider, states, cost=0.5, seeds=seeds, dataset=(data.x, data.y), info={"dtype": dtype})


#: Adversaries (and the honest control) by name.
ADVERSARIES: dict[str, Callable[..., Spoof]] = {
    "honest": honest, "replay": replay, "interpolate": interpolate, "truncate": truncate,
    "hparam_lie": hparam_lie, "data_substitution": data_substitution, "zhang": zhang, "fang": fang,
    "fang_hparams": fang_hparams, "swap_final": swap_final, "low_precision": low_precision,
}


def run_adversary(name: str, job: Job, provider: str = "mallory", *, rng: np.random.Generator,
                  **params: Any) -> Spoof:
    """Run the adversary called ``name`` on ``job``.

    Raises:
        ValueError: for an unknown adversary name (the message lists the known ones).
    """
    if name not in ADVERSARIES:
        raise ValueError(f"unknown PoL adversary {name!r}; known: {', '.join(ADVERSARIES)}")
    return ADVERSARIES[name](job, provider, rng, **params)
