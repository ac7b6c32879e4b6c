"""A matmul job's dispute trace: ``a @ b`` accumulated over blocks of its inner dimension, one float32 step each.

The market's matmul jobs are one product, not a chain of layers, so their
trace is the product's **accumulation**: split the inner dimension ``k``
into ``L`` blocks; state ``t`` is ``S_t = [C_t | a]`` (``n x (m + k)``),
``C_t`` the sum of the first ``t`` block products, and step ``t`` is the
float32 matmul ``S_t = S_{t-1} W_t`` by the fixed operator

``W_t = [[I_m, 0], [B_t, I_k]]``,  ``B_t`` = ``b`` with the rows outside block ``t`` zeroed,

so ``S_t = [C_{t-1} + a B_t | a]``: ``S_0 = [0 | a]``, ``C_L = a b``. The
carried ``a`` is why the step is one matmul (as a linear SGD step is in
:mod:`~vcompute.verify.dispute.train_trace`). The operators are built from
the consumer's ``b`` alone, so the job id binds the job's inputs; every
step is held to the same rounding bound as any float32 layer
(``protocols/Dispute.md``, "Float steps"). ``Dispute.vy`` bisects the
``L`` steps and ``FloatStep.vy`` recomputes one element of the last.

:func:`provider_trace` is what a market provider commits for each market
cheat class: ``random_output`` (nothing computed: noise at every step),
``skip_k`` (a contiguous run of blocks not added: their states repeat the
one before), ``low_precision`` (every block product from bfloat16-rounded
inputs). Each is out of the float32 bound at its first wrong step.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a, b = (rng.standard_normal((8, 8)).astype(np.float32) for _ in range(2))
    >>> net, x0 = matmul_net(b, steps=4, rows=8), matmul_input(a, 8)
    >>> t = provider_trace(net, x0, None, m=8, seed=0)
    >>> bool(np.allclose(t.states[-1][:, :8], a @ b, atol=1e-4)), t.net.n_layers
    (True, 4)
"""

from __future__ import annotations

import numpy as np

from vcompute.verify.dispute.float_players import FloatPlayer, make_float_player
from vcompute.verify.dispute.float_trace import FloatNet, FloatTrace, bad_elements

__all__ = ["CHEATS", "matmul_net", "matmul_input", "provider_trace", "provider_player", "blocks"]

#: Market cheat classes :func:`provider_trace` commits (None: honest).
CHEATS = ("random_output", "skip_k", "low_precision")


def blocks(k: int, steps: int) -> list[tuple[int, int]]:
    """The ``steps`` contiguous blocks ``[lo, hi)`` of ``range(k)``, sizes differing by at most one."""
    edges = [k * t // steps for t in range(steps + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _check_b(b: np.ndarray, steps: int) -> tuple[int, int]:
    if not isinstance(b, np.ndarray) or b.ndim != 2 or b.dtype != np.float32:
        raise TypeError("b must be a 2-D float32 ndarray (the job's right operand)")
    k, m = b.shape
    if (m + k) % 8 or m + k > 256:
        raise ValueError(f"a {k}x{m} operand gives {m + k}-wide states; the dispute contract takes widths that are "
                         "multiples of 8 up to 256 (matmul jobs of size n <= 128, n a multiple of 4)")
    if type(steps) is not int or not 1 <= steps <= min(k, 64):
        raise ValueError(f"steps must be an int in 1..min(k, 64) = 1..{min(k, 64)}, got {steps!r}")
    return k, m


def matmul_net(b: np.ndarray, *, steps: int, rows: int) -> FloatNet:
    """The ``steps`` accumulation operators ``W_t`` of a product by ``b`` (``k x m``), on ``rows``-row states.

    Raises:
        TypeError: if ``b`` is not a 2-D float32 ndarray.
        ValueError: if ``m + k`` is not a multiple of 8 up to 256, or ``steps`` not in ``1..min(k, 64)``.
    """
    k, m = _check_b(b, steps)
    ops = []
    for lo, hi in blocks(k, steps):
        w = np.zeros((m + k, m + k), np.float32)
        w[:m, :m] = np.eye(m, dtype=np.float32)
        w[m + lo:m + hi, :m] = b[lo:hi]
        w[m:, m:] = np.eye(k, dtype=np.float32)
        ops.append(w)
    return FloatNet(tuple(ops), rows)


def matmul_input(a: np.ndarray, m: int) -> np.ndarray:
    """The trace's input state ``[0 | a]`` for a product with ``m`` output columns.

    Raises:
        TypeError: if ``a`` is not a 2-D float32 ndarray.
    """
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype != np.float32:
        raise TypeError("a must be a 2-D float32 ndarray (the job's left operand)")
    return np.concatenate([np.zeros((a.shape[0], int(m)), np.float32), a], axis=1)


def _bf16(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to bfloat16 (round to nearest even on the top 16 bits), as float32."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def provider_trace(net: FloatNet, x0: np.ndarray, cheat: str | None, *, m: int, seed: int) -> FloatTrace:
    """The trace a market provider with ``cheat`` (None: honest) commits for the job ``(net, x0)``.

    Args:
        net: the job's accumulation operators (:func:`matmul_net`).
        x0: the job's input state (:func:`matmul_input`).
        cheat: the provider's market cheat class, or None.
        m: the product's output columns (the state's first ``m`` columns are ``C_t``).
        seed: where a cheat lies.

    Raises:
        ValueError: if ``cheat`` is not None or one of :data:`CHEATS`, ``m`` is out of range, or the
            cheat left every step within bound (nothing a watcher could dispute).
    """
    if cheat is not None and cheat not in CHEATS:
        raise ValueError(f"cheat must be None or one of {', '.join(CHEATS)}, got {cheat!r}")
    if cheat is None:
        return FloatTrace.execute(net, x0)
    rng = np.random.default_rng(seed)
    m = int(m)
    if not 1 <= m < x0.shape[1]:
        raise ValueError(f"m must be the product's output columns, in 1..{x0.shape[1] - 1}, got {m}")
    L = net.n_layers
    skip = set()
    if cheat == "skip_k":  # a lazy provider leaves out a run of about a quarter of the inner dimension
        run = max(1, L // 4)
        start = int(rng.integers(1, L - run + 2))
        skip = set(range(start, start + run))
    states, x = [], x0
    for l in range(1, L + 1):
        if cheat == "random_output":
            y = x0.copy()
            y[:, :m] = rng.standard_normal((x0.shape[0], m)).astype(np.float32)
        elif l in skip:
            y = x.copy()
        elif cheat == "low_precision":
            w = net.weights[l - 1]
            y = (x[:, :m] + _bf16(x[:, m:]) @ _bf16(w[m:, :m])).astype(np.float32)
            y = np.concatenate([y, x[:, m:]], axis=1)
        else:
            y = net.layer(l, x)
        states.append(y)
        x = y
    trace = FloatTrace(net, x0, states)
    if not any(bad_elements(net, l, trace.state(l - 1), trace.states[l - 1]) for l in range(1, L + 1)):
        raise ValueError(f"the {cheat} trace is within bound at every step (a zero operand?): nothing to dispute")
    return trace


def provider_player(cheat: str | None, net: FloatNet, x0: np.ndarray, *, m: int, seed: int,
                    name: str) -> FloatPlayer:
    """The claimant of a market job: it commits :func:`provider_trace` and plays every move on time.

    A cheating provider opens its own (wrong) leaves and answers the element check
    with its own data: the contract, not the player, finds the wrong step.
    """
    honest = make_float_player("honest", net, x0, seed=seed, name=name)
    if cheat is None:
        return honest
    return FloatPlayer(name, "lie_one", provider_trace(net, x0, cheat, m=m, seed=seed), honest.trace)
