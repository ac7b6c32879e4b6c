"""The honest-error model of vcompute.verify.freivalds.tolerance: its bound on partial sums, worst-case orders, the cheater.

Claims C1 (the partial-sum bound behind the tolerance holds for every
summation tree; adversarial summation orders are accepted), S1 (a cheat
cannot inflate the tolerance past the bound stated in proofs/freivalds.md)
and S3 (the tolerance is at most that of the earlier worst-case-sum model,
about half of it for zero-mean inputs).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vcompute.verify import Freivalds
from vcompute.verify.freivalds.tolerance import precision_of
from vcompute.workloads.matmul import make_matmul_job


def _random_tree_node_sums(t: np.ndarray, rng: np.random.Generator) -> list[float]:
    """Exact partial sums at the internal nodes of a random binary summation tree over ``t``."""
    nodes = list(t)
    sums = []
    while len(nodes) > 1:
        i, j = sorted(rng.choice(len(nodes), size=2, replace=False))
        s = nodes[i] + nodes[j]
        sums.append(s)
        nodes[i] = s
        nodes.pop(j)
    return sums


def _node_bound(t: np.ndarray) -> float:
    """The model's per-entry bound on the sum of squared node values: sum_{s=2..K} min(H^2, s ||t||^2)."""
    K = t.size
    T1, q2, x = np.abs(t).sum(), float(t @ t), abs(t.sum())
    H2 = min(T1, (T1 + x) / 2) ** 2
    return sum(min(H2, s * q2) for s in range(2, K + 1))


@pytest.mark.parametrize("mean", [0.0, 0.2, 1.0, 50.0])
def test_partial_sum_bound_holds_for_every_summation_tree(mean):
    """Claim C1's lemma: for any tree (random ones, and chains in the worst orders), the squared node values
    sum to at most sum_{s=2..K} min(H^2, s ||t||_2^2), H = max(positive part, negative part)."""
    rng = np.random.default_rng(int(mean * 10) + 1)
    for K in (2, 3, 7, 64, 300):
        for _ in range(20):
            t = (mean + rng.standard_normal(K)) * 10.0 ** rng.uniform(-3, 3, size=K)
            bound = _node_bound(t)
            chains = [np.sort(t)[::-1], np.sort(t), t[np.argsort(-np.abs(t))]]  # positives first, ..., largest first
            for order in chains:
                got = float(np.sum(np.cumsum(order)[1:] ** 2))
                assert got <= bound * (1 + 1e-12), (K, got, bound)
            got = float(np.sum(np.square(_random_tree_node_sums(t, rng))))
            assert got <= bound * (1 + 1e-12), (K, got, bound)


def _adversarial_fp32_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """fp32 products summed recursively in fp32, positive terms first (largest first): the order that makes
    the partial sums largest, which the tolerance must allow."""
    t = (a[:, None, :] * b.T[None, :, :]).astype(np.float32)  # (m, n, K): each product rounded once
    order = np.argsort(-t, axis=-1, kind="stable")
    t = np.take_along_axis(t, order, axis=-1)
    return np.add.accumulate(t, axis=-1, dtype=np.float32)[..., -1]


@pytest.mark.parametrize("mean", [0.0, 1.0, 100.0])
def test_worst_summation_order_accepted(mean):
    """Claim C1 in the case the tighter bound is closest to: recursive fp32 summation with all positive
    terms first (partial sums reach the positive part H). 16 honest checks per mean, all accepted."""
    rng = np.random.default_rng(3)
    worst = 0.0
    for trial in range(4):
        job = make_matmul_job(48, 384, 40, seed=trial, mean=mean)
        a, b = job.inputs["a"], job.inputs["b"]
        c = _adversarial_fp32_product(a, b)
        for s in range(4):
            v = Freivalds(rounds=2).check(a, b, c, seed=int(rng.integers(2**31)))
            assert v.accepted, v.reason
            worst = max(worst, v.details["max_error_ratio"])
    assert worst < 0.9


def _old_tolerance(a: np.ndarray, b: np.ndarray, c: np.ndarray, lam: float = 5.5, u_acc: float = 2.0**-24,
                   u_out: float = 2.0**-24) -> np.ndarray:
    """The earlier worst-case-sum model: lambda sqrt(u_acc^2 K S^2 + u_out^2 ||C_i||^2) (first order)."""
    A, B, C = (x.astype(np.float64) for x in (a, b, c))
    S = np.abs(A) @ np.sqrt((B * B).sum(axis=1))
    return lam * np.sqrt(u_acc * u_acc * A.shape[1] * S * S + u_out * u_out * (C * C).sum(axis=1))


@pytest.mark.parametrize("mean", [0.0, 1.0])
def test_tolerance_below_the_worst_case_sum_model_and_half_of_it_for_zero_mean(mean):
    """Claim S3: the tolerance never exceeds the earlier model's, and is <= 0.55 of it for N(0,1) inputs at
    n = 256 and 1024 (<= 0.75 for N(1,1))."""
    for n in (256, 1024):
        job = make_matmul_job(n, seed=n, mean=mean)
        a, b = job.inputs["a"], job.inputs["b"]
        c = a @ b
        new = Freivalds(rounds=1).row_tolerances(a, b, c)
        old = _old_tolerance(a, b, c)
        assert np.all(new <= old * 1.001 + 1e-30)
        assert np.max(new / old) <= (0.55 if mean == 0.0 else 0.75), np.max(new / old)


def _rho(prec, K: int, lam: float = 5.5) -> float:
    """proofs/freivalds.md, S1: a cheat Delta raises tau_i by at most rho ||Delta_i||_2."""
    g1 = lam * math.sqrt(K) * prec.u_acc
    theta = math.expm1(g1 + K * prec.u_acc**2 / (1.0 - prec.u_acc)) / g1
    return lam * theta * (prec.u_acc * math.sqrt(K - 1) * (1 + prec.u_out) / 2 + prec.u_out) + 1e-12


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cheater_cannot_inflate_the_tolerance(dtype):
    """Claim S1 against an adversary who knows the formula: tau depends on the claim only through ||C_i||,
    so a change Delta raises tau_i by at most rho ||Delta_i||_2 (rho ~ 1e-5 for fp32) and never above the
    cap computed from A and B; a wrong entry of tau_i / (1 - rho) + the honest error is still caught."""
    rng = np.random.default_rng(11)
    fr = Freivalds(rounds=1)
    job = make_matmul_job(96, 200, 64, seed=2, mean=0.0)
    a, b = job.inputs["a"], job.inputs["b"]
    a, b = a.astype(dtype), b.astype(dtype)
    c = (a.astype(np.float32) @ b.astype(np.float32)).astype(dtype)
    prec = precision_of(dtype)
    rho = _rho(prec, a.shape[1])
    tau0 = fr.row_tolerances(a, b, c)
    for scale in (1e-3, 1.0, 1e3, 1e6):
        with np.errstate(over="ignore"):  # float16 overflows at the largest scale: skipped below
            delta = (scale * float(np.sqrt(np.mean(c.astype(np.float64) ** 2)))
                     * rng.standard_normal(c.shape)).astype(dtype)
            bad = (c.astype(np.float64) + delta.astype(np.float64)).astype(dtype)
        if not np.all(np.isfinite(bad)):
            continue
        d = bad.astype(np.float64) - c.astype(np.float64)
        tau = fr.row_tolerances(a, b, bad)
        assert np.all(tau <= tau0 + rho * np.sqrt((d * d).sum(axis=1)) * (1 + 1e-9) + 1e-300)
        # the cap: the earlier worst-case-sum model, whose only dependence on the claim is the output rounding
        assert np.all(tau <= _old_tolerance(a, b, bad, u_acc=prec.u_acc, u_out=prec.u_out) * 1.001 + 1e-30)
    # a single wrong entry just past the inflated tolerance plus the row's honest error (sum_j |E_ij| bounds
    # the honest part of the residual) is caught, in every row tried
    honest_err = np.abs(c.astype(np.float64) - a.astype(np.float64) @ b.astype(np.float64)).sum(axis=1)
    for i in rng.choice(c.shape[0], size=10, replace=False):
        j = int(rng.integers(c.shape[1]))
        bad = c.astype(np.float64)
        bad[i, j] += 1.05 * tau0[i] / (1 - rho) + honest_err[i]
        bad[i, j] += 2 * prec.u_out * abs(bad[i, j])  # what rounding the wrong entry to the output dtype may take
        assert not fr.check(a, b, bad.astype(dtype), seed=int(i)).accepted
