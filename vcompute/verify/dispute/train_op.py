"""A torch PoL training step as an operator trace: checkpoints bisected to one step, that step to one operator.

The proof-of-learning workload's MLP (64 -> hidden -> 10, ReLU, mean
cross-entropy, ``torch.optim.SGD`` with momentum and weight decay;
:mod:`vcompute.workloads.training.torch_backend`) trains one step as
``P`` operators (:data:`STEP_OPS`) of :mod:`~vcompute.verify.dispute.op_block`
on one canvas ``a`` (``R`` rows by ``W`` lanes). A training job of ``L``
steps is ``L`` game layers of ``P`` operators each (``per_layer = P``), so
``OperatorGame.vy`` bisects the checkpoints first (the state after every
``P``-th operator holds the checkpoint after that step) and then the
operators of the one disputed step, whose input checkpoint is agreed.

The canvas (``b`` = batch, ``h`` = hidden, ``Xa = [X | 1 | 0]`` the batch with a ones
column, so ``[W1 | b1]`` is one block and ``F.linear``'s ``addmm`` one dot product):

========  ===========  ==================================================================
band      rows         lanes: tensor
========  ===========  ==================================================================
``S``     ``b``        ``0``: logits ``O`` -> probabilities ``P`` -> ``G = dL/dO``; ``16``: ``[H | 1]``; ``dH`` -> ``dZ``
``F``     ``h``        ``16``: ``Z^T`` -> ``H^T`` -> ``dZ^T``; ``W2^T``; ``[W1 | b1]``; its gradient
``K``     ``16``       ``16``: ``G^T``; ``[dW2 | db2]``; ``[W2 | b2]``
``V1``    ``h``        momentum of ``[W1 | b1]`` (its lanes)
``V2``    ``16``       momentum of ``[W2 | b2]`` (its lanes)
========  ===========  ==================================================================

Every operator is a float32 operation torch's own step performs (forward
``addmm``, ``threshold_backward``, ``_log_softmax_backward``, the weight
gradients' ``mm`` and ``sum``, SGD's ``add``/``mul_``/``add_``), held to
its bound, plus exact copies (transposes): the honest torch step's own
intermediates (autograd's, through ``retain_grad``) pass every operator
(``tests/verify/test_dispute_train_op.py``, many seeds), and the trace's
checkpoints are torch's, bit for bit. The ``x`` tensor is the initial
canvas, never written.

Example:
    >>> from vcompute.workloads.training.spec import TrainSpec, init_state
    >>> spec = TrainSpec(hidden=16, batch_size=16, steps=2, checkpoint_every=1)
    >>> net, a0 = TrainOpNet.random(spec, steps=2, seed=0)
    >>> net.n_layers, net.per_layer, a0.shape
    (2, 20, (80, 192))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vcompute.verify.dispute.op_block import (AXPY, AXPYP, MMP, MMS, RELUG, RELUW, TR, block_op, edge_value,
                                              unpack)
from vcompute.verify.dispute.op_trace import SOFTMAX, Operator, OpTrace, _OpList, apply_op

__all__ = ["TrainOpNet", "Layout", "STEP_OPS", "TRAIN_LYING", "torch_trace", "checkpoint_of", "canvas_of",
           "train_lying_trace", "make_train_player"]

_C = 16  # classes padded (the PoL MLP has 10)
#: The operators of one step with momentum and weight decay, by role (fewer without them).
STEP_OPS = ("fwd1", "relu", "tr_h", "fwd2", "softmax", "dlogits", "tr_g", "dw2", "db2", "tr_w2", "wd2", "mom2",
            "upd2", "dh", "relu_bwd", "tr_dz", "dw1", "wd1", "mom1", "upd1")
_FORWARD = ("fwd1", "relu", "tr_h", "fwd2")
_UPDATE = ("wd2", "mom2", "upd2", "wd1", "mom1", "upd1")
#: Lying strategies of a training trace (each lies in one operator's block unless named otherwise).
TRAIN_LYING = ("lie_forward", "lie_backward", "lie_update", "lie_edge", "lie_copy", "lie_last", "lie_several",
               "skip_relu_bwd", "x_tamper", "absent", "bad_openings")


@dataclass(frozen=True)
class Layout:
    """Where each tensor of the step lives on the canvas (see the module table)."""

    batch: int
    hidden: int
    momentum: bool
    din: int = 64
    classes: int = 10

    @property
    def d1(self) -> int:
        """Lanes of ``[W1 | b1]`` and ``Xa``: the input plus a ones lane, padded to 8."""
        return self.din + 8

    @property
    def h1(self) -> int:
        """Lanes of ``[H | 1]`` and ``[W2 | b2]``."""
        return self.hidden + 8

    @property
    def bands(self) -> dict[str, int]:
        """First row of each band."""
        b, h = self.batch, self.hidden
        out = {"S": 0, "F": b, "K": b + h}
        if self.momentum:
            out.update(V1=b + h + _C, V2=b + 2 * h + _C)
        return out

    @property
    def rows(self) -> int:
        """Rows ``R`` of the canvas."""
        return self.batch + self.hidden + _C + (self.hidden + _C if self.momentum else 0)

    @property
    def lanes(self) -> dict[str, int]:
        """First lane of each tensor."""
        b, h = self.batch, self.hidden
        return {"O": 0, "HA": 16, "DH": 16 + self.h1, "HT": 16, "W2T": 16 + b, "W1": 16 + b + _C,
                "DW1": 16 + b + _C + self.d1, "GT": 16, "DW2": 16 + b, "W2": 16 + b + self.h1}

    @property
    def width(self) -> int:
        """Lanes ``W`` of the canvas."""
        ln = self.lanes
        return max(ln["DH"] + self.hidden, ln["DW1"] + self.d1, ln["W2"] + self.h1)


def canvas_of(layout: Layout, state: dict[str, np.ndarray]) -> np.ndarray:
    """The canvas of a PoL training state (``fc1.weight`` ... and ``momentum/...``): a step's input."""
    L, B, ln = layout, layout.bands, layout.lanes
    h, d, c = L.hidden, L.din, L.classes
    a = np.zeros((L.rows, L.width), np.float32)
    a[:L.batch, ln["HA"] + h] = 1  # the ones lane of [H | 1]
    for pre, band in (("", ""), ("momentum/", "V")):
        if band and not L.momentum:
            continue
        r1, r2 = B[band + "1" if band else "F"], B[band + "2" if band else "K"]
        a[r1:r1 + h, ln["W1"]:ln["W1"] + d] = state[pre + "fc1.weight"]
        a[r1:r1 + h, ln["W1"] + d] = state[pre + "fc1.bias"]
        a[r2:r2 + c, ln["W2"]:ln["W2"] + h] = state[pre + "fc2.weight"]
        a[r2:r2 + c, ln["W2"] + h] = state[pre + "fc2.bias"]
    return a


def checkpoint_of(layout: Layout, a: np.ndarray) -> dict[str, np.ndarray]:
    """The PoL training state a step-boundary canvas holds (zero momentum when the job has none)."""
    L, B, ln = layout, layout.bands, layout.lanes
    h, d, c = L.hidden, L.din, L.classes
    out = {}
    for pre, band in (("", ""), ("momentum/", "V")):
        if band and not L.momentum:
            for k in list(out):
                out["momentum/" + k] = np.zeros_like(out[k])
            break
        r1, r2 = B[band + "1" if band else "F"], B[band + "2" if band else "K"]
        out[pre + "fc1.weight"] = a[r1:r1 + h, ln["W1"]:ln["W1"] + d].copy()
        out[pre + "fc1.bias"] = a[r1:r1 + h, ln["W1"] + d].copy()
        out[pre + "fc2.weight"] = a[r2:r2 + c, ln["W2"]:ln["W2"] + h].copy()
        out[pre + "fc2.bias"] = a[r2:r2 + c, ln["W2"] + h].copy()
    return out


def _step_ops(L: Layout, x: np.ndarray, y: np.ndarray, *, lr: float, momentum: float,
              weight_decay: float) -> list[tuple[str, Operator]]:
    """The operators of one step on batch ``(x, y)``, with their roles."""
    b, h, c = L.batch, L.hidden, L.classes
    B, ln, W, R = L.bands, L.lanes, L.width, L.rows
    xa = np.zeros((b, L.d1), np.float32)
    xa[:, :L.din], xa[:, L.din] = x, 1
    s = np.float32(-1) / np.float32(b)  # nll_loss's backward: -grad / total_weight
    go = np.zeros((b, _C), np.float32)
    go[np.arange(b), y] = s
    op = functools.partial(block_op, width=W, rows=R)
    F0, K0 = B["F"], B["K"]
    out = [("fwd1", op(MMP, r0=F0, rn=h, o=ln["HT"], m=b, al=ln["W1"], n=L.d1, param=np.ascontiguousarray(xa.T))),
           ("relu", op(RELUW, r0=F0, rn=h, o=ln["HT"], m=b, al=ln["HT"])),
           ("tr_h", op(TR, r0=0, rn=b, o=ln["HA"], m=h, rho=F0, al=ln["HT"])),
           ("fwd2", op(MMS, r0=0, rn=b, o=0, m=_C, al=ln["HA"], n=L.h1, rho=K0, be=ln["W2"])),
           ("softmax", Operator(SOFTMAX, W, W, 18, (c, False, c))),
           ("dlogits", op(AXPYP, r0=0, rn=b, o=0, m=_C, al=0, c1=1.0, c2=float(-s), t=20, param=go)),
           ("tr_g", op(TR, r0=K0, rn=_C, o=ln["GT"], m=b, rho=0, al=0)),
           ("dw2", op(MMS, r0=K0, rn=_C, o=ln["DW2"], m=h, al=ln["GT"], n=b, rho=F0, be=ln["HT"])),
           ("db2", op(MMP, r0=K0, rn=_C, o=ln["DW2"] + h, m=1, al=ln["GT"], n=b, param=np.ones((b, 1), np.float32))),
           ("tr_w2", op(TR, r0=F0, rn=h, o=ln["W2T"], m=_C, rho=K0, al=ln["W2"]))]
    for k, (rows_at, width, gl, pl, rn) in enumerate(((K0, L.h1, "DW2", "W2", _C), (F0, L.d1, "DW1", "W1", h))):
        if k == 1:
            out += [("dh", op(MMS, r0=0, rn=b, o=ln["DH"], m=h, al=0, n=_C, rho=F0, be=ln["W2T"])),
                    ("relu_bwd", op(RELUG, r0=0, rn=b, o=ln["DH"], m=h, al=ln["DH"], be=ln["HA"])),
                    ("tr_dz", op(TR, r0=F0, rn=h, o=ln["HT"], m=b, rho=0, al=ln["DH"])),
                    ("dw1", op(MMP, r0=F0, rn=h, o=ln["DW1"], m=L.d1, al=ln["HT"], n=b, param=xa))]
        n = str(2 - k)
        if weight_decay:
            out.append(("wd" + n, op(AXPY, r0=rows_at, rn=rn, o=ln[gl], m=width, al=ln[gl], c1=1.0, c2=weight_decay,
                                     rho=rows_at, be=ln[pl])))
        if momentum:
            v0 = B["V" + n]
            out.append(("mom" + n, op(AXPY, r0=v0, rn=rn, o=ln[pl], m=width, al=ln[pl], c1=momentum, c2=1.0,
                                      rho=rows_at, be=ln[gl])))
            out.append(("upd" + n, op(AXPY, r0=rows_at, rn=rn, o=ln[pl], m=width, al=ln[pl], c1=1.0, c2=-lr,
                                      rho=v0, be=ln[pl])))
        else:
            out.append(("upd" + n, op(AXPY, r0=rows_at, rn=rn, o=ln[pl], m=width, al=ln[pl], c1=1.0, c2=-lr,
                                      rho=rows_at, be=ln[gl])))
    return out


@dataclass(frozen=True)
class TrainOpNet(_OpList):
    """``L`` SGD steps of the PoL MLP as operators: one game layer a step, ``per_layer`` operators each.

    Args:
        layout: the canvas.
        batches: per step ``(x b x 64 float32, y b int labels)``, the (augmented) batch it trains on.
        lr: learning rate.
        momentum: heavy-ball momentum (0: none; its buffers then have no band).
        weight_decay: L2 coefficient added to the gradient (0: no operator for it).

    Raises:
        ValueError: on sizes out of range (``b``, ``h`` multiples of 8; canvas at most 256 x 256) or bad batches.
    """

    layout: Layout
    batches: tuple[tuple[np.ndarray, np.ndarray], ...]
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    _ops: list = field(default_factory=list, repr=False, compare=False)
    _roles: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        L = self.layout
        if L.batch % 8 or L.hidden % 8 or L.batch < 8 or L.hidden < 8 or L.rows > 256 or L.width > 256:
            raise ValueError(f"batch and hidden must be multiples of 8 with the canvas ({L.rows} x {L.width}) "
                             "at most 256 x 256")
        if bool(self.momentum) != L.momentum:
            raise ValueError("layout.momentum must say whether momentum is non-zero")
        if not self.batches:
            raise ValueError("batches must be non-empty (one a step)")
        for s, (x, y) in enumerate(self.batches):
            if (not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape != (L.batch, L.din)
                    or not np.isfinite(x).all()):
                raise ValueError(f"batches[{s}][0] must be a finite float32 ({L.batch}, {L.din}) array")
            y = np.asarray(y)
            if y.shape != (L.batch,) or y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= L.classes:
                raise ValueError(f"batches[{s}][1] must hold {L.batch} labels in 0..{L.classes - 1}")
            for role, op in _step_ops(L, x, y, lr=self.lr, momentum=self.momentum,
                                      weight_decay=self.weight_decay):
                self._ops.append(op)
                self._roles.append(role)

    @classmethod
    def from_spec(cls, spec, state: dict[str, np.ndarray], *, start: int, steps: int, data, data_seed: int,
                  aug_seed: int) -> tuple[TrainOpNet, np.ndarray]:
        """Steps ``start .. start + steps - 1`` of a PoL job (its batches and augmentation) and the input canvas.

        Args:
            spec: the job's :class:`~vcompute.workloads.training.spec.TrainSpec` (``model = "mlp"``).
            state: the checkpoint the steps start from.
            start: the first step's index.
            steps: how many steps.
            data: the job's :class:`~vcompute.workloads.training.data.Dataset`.
            data_seed: the provider's batch seed.
            aug_seed: the provider's augmentation seed.

        Raises:
            ValueError: if the spec is not the torch MLP (a JAX step's checkpoints are other bits).
        """
        from vcompute.workloads.training.data import augment, batch_indices

        if spec.model != "mlp" or spec.framework != "torch":
            raise ValueError(f"only the torch MLP's step is an operator trace, got model {spec.model!r} "
                             f"on {spec.framework!r}")
        layout = Layout(spec.batch_size, spec.hidden, spec.momentum > 0)
        batches = []
        for s in range(start, start + steps):
            idx = batch_indices(s, n=len(data), batch_size=spec.batch_size, data_seed=data_seed)
            batches.append((augment(data.x[idx], s, aug_seed=aug_seed, noise=spec.aug_noise).astype(np.float32),
                            np.asarray(data.y[idx], np.int64)))
        net = cls(layout, tuple(batches), spec.lr, spec.momentum, spec.weight_decay)
        return net, canvas_of(layout, state)

    @classmethod
    def random(cls, spec, *, steps: int, seed: int) -> tuple[TrainOpNet, np.ndarray]:
        """``steps`` steps of ``spec`` on its dataset from a seeded initial state (seeded batches)."""
        from vcompute.workloads.training.spec import init_state
        from vcompute.workloads.training.data import load_dataset

        data = load_dataset(spec.dataset, seed=seed)
        return cls.from_spec(spec, init_state(spec, seed), start=0, steps=steps, data=data, data_seed=seed,
                             aug_seed=seed + 1)

    @property
    def n_layers(self) -> int:
        """Steps of the job (the game's first level bisects their checkpoints)."""
        return len(self.batches)

    @property
    def per_layer(self) -> int:
        """Operators a step."""
        return len(self._ops) // len(self.batches)

    @property
    def rows(self) -> int:
        """Canvas rows."""
        return self.layout.rows

    def role(self, p: int) -> str:
        """Operator ``p``'s role in its step (one of :data:`STEP_OPS`)."""
        return self._roles[p - 1]

    def spec_kwargs(self) -> dict[str, float]:
        """The optimizer's hyperparameters."""
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay}


def torch_trace(net: TrainOpNet, a0: np.ndarray) -> OpTrace:
    """The honest torch trace: every block holds torch's own float32 intermediate of its step.

    Each step runs the PoL MLP's forward (``F.linear``, ``F.relu``), ``F.cross_entropy``
    and ``backward`` (logits, hidden and pre-activation gradients kept by ``retain_grad``),
    then ``torch.optim.SGD`` (``foreach=False``, as the PoL backend builds it); the
    probabilities are ``exp(log_softmax)``, what ``_log_softmax_backward`` multiplies by.
    """
    import torch
    import torch.nn.functional as F

    L = net.layout
    b, h, c = L.batch, L.hidden, L.classes
    states = []
    a = a0.copy()
    P = net.per_layer
    for s, (x, y) in enumerate(net.batches):
        ck = checkpoint_of(L, a)
        names = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
        ps = [torch.nn.Parameter(torch.from_numpy(ck[n].copy())) for n in names]
        opt = torch.optim.SGD(ps, lr=net.lr, momentum=net.momentum, weight_decay=net.weight_decay, foreach=False)
        if net.momentum:
            for p_, n in zip(ps, names):
                opt.state[p_]["momentum_buffer"] = torch.from_numpy(ck["momentum/" + n].copy())
        xt, yt = torch.from_numpy(x), torch.from_numpy(np.asarray(y, np.int64))
        z1 = F.linear(xt, ps[0], ps[1])
        hh = F.relu(z1)
        o = F.linear(hh, ps[2], ps[3])
        for t in (z1, hh, o):
            t.retain_grad()
        loss = F.cross_entropy(o, yt)
        loss.backward()
        with torch.no_grad():
            prob = torch.exp(F.log_softmax(o, dim=1)).numpy()
            grads = [p_.grad.clone() for p_ in ps]
            decayed = [g.add(p_, alpha=net.weight_decay) for g, p_ in zip(grads, ps)]
        old = [p_.detach().numpy().copy() for p_ in ps]
        opt.step()
        new = [p_.detach().numpy() for p_ in ps]
        bufs = [opt.state[p_]["momentum_buffer"].numpy() for p_ in ps] if net.momentum else None
        O = o.detach().numpy()
        G = o.grad.numpy()
        H = hh.detach().numpy()
        Z = z1.detach().numpy()

        def aug(w, bias):  # [W | b] padded to its block
            out = np.zeros((w.shape[0], w.shape[1] + 8), np.float32)
            out[:, :w.shape[1]], out[:, w.shape[1]] = w, bias
            return out

        blocks = {
            "fwd1": Z.T, "relu": H.T, "tr_h": H, "fwd2": _pad(O, (b, _C)), "dlogits": _pad(G, (b, _C)),
            "tr_g": _pad(G, (b, _C)).T, "dw2": _pad(grads[2].numpy(), (_C, h)),
            "db2": _pad(grads[3].numpy()[:, None], (_C, 1)), "tr_w2": _pad(old[2], (_C, h)).T,
            "wd2": _pad(aug(decayed[2].numpy(), decayed[3].numpy()), (_C, L.h1)),
            "upd2": _pad(aug(new[2], new[3]), (_C, L.h1)),
            "dh": hh.grad.numpy(), "relu_bwd": z1.grad.numpy(), "tr_dz": z1.grad.numpy().T,
            "dw1": aug(grads[0].numpy(), grads[1].numpy()),
            "wd1": aug(decayed[0].numpy(), decayed[1].numpy()), "upd1": aug(new[0], new[1])}
        if bufs is not None:
            blocks["mom2"] = _pad(aug(bufs[2], bufs[3]), (_C, L.h1))
            blocks["mom1"] = aug(bufs[0], bufs[1])
        for q in range(1, P + 1):
            op = net.op(s * P + q)
            role = net.role(s * P + q)
            if op.kind == SOFTMAX:
                a = apply_op(op, (a, a))[1]
                a[:b, :c] = prob
            else:
                g = unpack(op.bits)
                a = a.copy()
                a[g.r0:g.r0 + g.rn, g.o:g.o + g.m] = blocks[role]
            states.append((a0, a))
    return OpTrace(net, a0, states)


def _pad(v: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    out[:v.shape[0], :v.shape[1]] = v
    return out


def train_lying_trace(net: TrainOpNet, a0: np.ndarray, strategy: str, *, seed: int,
                      base: OpTrace | None = None) -> OpTrace:
    """A lying trace: the honest torch trace up to the lie, then computed on (numpy) from it.

    ``lie_forward`` / ``lie_backward`` / ``lie_update``: one element of one forward, backward or
    update operator's block far off (``lie_update``: the SGD step alone, every gradient right);
    ``lie_edge``: at twice its bound (one ulp for an exact one); ``lie_copy``: one element outside
    the written block (a checkpoint or activation changed in passing) one ulp off; ``lie_last``: the
    last operator; ``lie_several``: two or three operators; ``skip_relu_bwd``: ReLU's backward passes
    the gradient through ungated; ``x_tamper``: the unwritten ``x`` changed; ``absent`` and
    ``bad_openings``: a ``lie_backward`` trace, then no move or inconsistent openings.

    Raises:
        ValueError: if ``strategy`` is not one of :data:`TRAIN_LYING`.
    """
    if strategy not in TRAIN_LYING:
        raise ValueError(f"strategy must be one of {', '.join(TRAIN_LYING)}; got {strategy!r}")
    rng = np.random.default_rng(seed)
    honest = base if base is not None else torch_trace(net, a0)
    n = net.n_ops
    kind = {"absent": "lie_backward", "bad_openings": "lie_backward"}.get(strategy, strategy)
    for _ in range(32):
        if kind == "lie_last":
            where = [n]
        elif kind == "lie_several":
            where = sorted(rng.choice(np.arange(1, n + 1), size=min(n, int(rng.integers(2, 4))), replace=False).tolist())
        elif kind == "skip_relu_bwd":
            where = [int(rng.choice([p for p in range(1, n + 1) if net.role(p) == "relu_bwd"]))]
        else:
            pick = {"lie_forward": lambda r: r in _FORWARD, "lie_update": lambda r: r in _UPDATE,
                    "lie_backward": lambda r: r not in _FORWARD and r not in _UPDATE}.get(kind, lambda r: True)
            where = [int(rng.choice([p for p in range(1, n + 1) if pick(net.role(p))]))]
        state = rng.bit_generator.state
        t = _lie_from(net, a0, honest, where, kind, rng)
        rng.bit_generator.state = state
        # a lie that a later operator overwrites unread leaves the result right (nobody can dispute it): draw again
        if t.leaves[-1] != _lie_from(net, a0, honest, where, "none", rng).leaves[-1]:
            return t
    raise ValueError(f"no {strategy} lie reached the result in 32 draws (seed {seed})")


def _lie_from(net: TrainOpNet, a0: np.ndarray, honest: OpTrace, where: list[int], kind: str,
              rng: np.random.Generator) -> OpTrace:
    states = list(honest.states[:where[0] - 1])
    s = honest.state(where[0] - 1)
    for p in range(where[0], net.n_ops + 1):
        op = net.op(p)
        with np.errstate(all="ignore"):
            x, a = apply_op(op, s)
        if p in where and kind != "none":
            a = a.copy()
            if kind == "x_tamper":
                x = x.copy()
                x[int(rng.integers(x.shape[0])), int(rng.integers(x.shape[1]))] += np.float32(1)
            elif kind == "skip_relu_bwd":
                g = unpack(op.bits)
                a[g.r0:g.r0 + g.rn, g.o:g.o + g.m] = s[1][g.r0:g.r0 + g.rn, g.al:g.al + g.m]
            elif op.kind == SOFTMAX:
                i, j = int(rng.integers(net.layout.batch)), int(rng.integers(net.layout.classes))
                a[i, j] = np.float32(a[i, j] + (1 + rng.random()) * (0.5 + abs(float(a[i, j]))))
            else:
                g = unpack(op.bits)
                sign = 1.0 if rng.random() < 0.5 else -1.0
                if kind == "lie_copy":
                    i, j = int(rng.integers(a.shape[0])), int(rng.integers(a.shape[1]))
                    while g.r0 <= i < g.r0 + g.rn and g.o <= j < g.o + g.m:
                        i, j = int(rng.integers(a.shape[0])), int(rng.integers(a.shape[1]))
                else:
                    i, j = g.r0 + int(rng.integers(g.rn)), g.o + int(rng.integers(g.m))
                if kind in ("lie_edge", "lie_copy"):
                    a[i, j] = edge_value(op, s[1], i, j, sign)
                else:
                    a[i, j] = np.float32(a[i, j] + sign * (1e-3 + abs(float(a[i, j]))) * (1 + rng.random()))
        s = (x, a)
        states.append(s)
    return OpTrace(net, a0, states)


def make_train_player(strategy: str, net: TrainOpNet, a0: np.ndarray, *, seed: int, name: str | None = None,
                      honest: OpTrace | None = None) -> Any:
    """An :class:`~vcompute.verify.dispute.op_players.OpPlayer` on a training job.

    ``honest``: torch's trace (:func:`torch_trace`); ``drift``: the numpy float32 trace of the
    same operators (another honest machine: valid, other bits); the rest: :func:`train_lying_trace`.

    Raises:
        ValueError: on an unknown strategy.
    """
    from vcompute.verify.dispute.op_players import OpPlayer

    base = honest if honest is not None else torch_trace(net, a0)
    if strategy == "honest":
        trace = base
    elif strategy == "drift":
        trace = OpTrace.execute(net, a0)
    else:
        trace = train_lying_trace(net, a0, strategy, seed=seed, base=base)
    # absent / bad_openings keep their own behaviour in OpPlayer; every other liar moves as an honest one would
    return OpPlayer(name or strategy, strategy if strategy in ("honest", "absent", "bad_openings") else "liar",
                    trace, base)
