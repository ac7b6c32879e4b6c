"""Sampled-glue layer checks of a prefill: Freivalds on every linear layer, the glue on sampled rows.

For a prefill-heavy job (a long prompt, few new tokens) re-running the
prefill is most of the verifier's cost. Here the provider returns the whole
forward trace (:mod:`.glue_trace`) and the verifier, with randomness drawn
after the trace is fixed, checks

- every linear layer (``c_attn``, ``attn_proj``, ``c_fc``, ``mlp_proj`` of every
  block and the tied head) over **all** token rows with
  :class:`~vcompute.verify.Freivalds` (``rounds`` sign vectors: a row off by more
  than its rounding tolerance escapes with probability <= 2**-rounds per layer; each kind of layer
  is checked over all blocks in one fused pass, :mod:`.glue_linear`);
- the embeddings, both residual adds of every block and the final LayerNorm on
  **all** rows (O(T d) each; each token check depends on its own row's logits);
- the non-linear glue of every block (LayerNorm 1 and 2, causal softmax
  attention, GELU) recomputed in float64 on ``rows`` token rows drawn
  independently per block and per op: a glue output wrong on a fraction ``f``
  of the rows escapes one op's check with probability <= (1 - f)**rows.

On a ``generate`` job the tokens are then checked by the job's sampler rule and the band-use count on
logits the verifier computes in float64 from its own final LayerNorm of the checked residual stream
(:func:`checked_logits`): the trace's logits are bound only within Freivalds' tolerance, which at GPT-2
width is many times the near-tie band.

Argument, tolerances and tests: ``proofs/inference-glue.md``.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vcompute.core.types import Claim, Cost, EvidenceSpec, Job, Verdict
from vcompute.verify.base import Scheme, VerifyContext
from vcompute.verify.freivalds import Freivalds, PreparedMatrix
from vcompute.verify.inference.glue_linear import LinearStacks
from vcompute.verify.freivalds.scheme import _underflow_allowance
from vcompute.verify.freivalds.tolerance import precision_of
from vcompute.verify.inference.glue_trace import TRACE_KEYS, trace_shapes

__all__ = ["SampledGlue", "GLUE_RTOL", "head_tolerance", "checked_logits"]

#: Relative tolerance of a recomputed glue entry at float32: ``abs(claimed - ref) <= rtol * (abs(ref) + rms(ref row))``.
#: Honest torch float32 vs float64 recomputation differs by <= ~2e-6 (tests/verify/test_inference_glue.py).
GLUE_RTOL = 1e-4

_LINEARS = (("ln1", "c_attn", "qkv"), ("attn", "attn_proj", "attn_out"), ("ln2", "c_fc", "fc"),
            ("gelu", "mlp_proj", "mlp_out"))


def _ln(x: np.ndarray, mod: Any) -> np.ndarray:
    """``mod`` (a LayerNorm) over the rows of float32 ``x``, in float64."""
    w, b = (p.detach().double().numpy() for p in (mod.weight, mod.bias))
    kern = _kernels()
    if kern is not None and x.ndim == 2 and x.dtype == np.float32:
        out = np.empty(x.shape)
        kern.layer_norm_rows(x, w, b, float(mod.eps), out)
        return out
    x = x.astype(np.float64)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + mod.eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    # x * x * x, not x**3: numpy's float64 power calls pow() per entry, several times the cost of the rest
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))))


def _kernels() -> Any:
    """The compiled glue kernels (:mod:`._glue_kernels`), or None without numba (the torch/numpy paths then)."""
    from vcompute.verify.freivalds import fused

    if not fused.available():
        return None
    from vcompute.verify.inference import _glue_kernels

    return _glue_kernels


def _attention_rows(qkv: np.ndarray, rows: np.ndarray, n_heads: int) -> np.ndarray:
    """Causal attention outputs of ``rows`` (ascending) from the full ``[T, 3d]`` q/k/v rows, in float64.

    With numba, two compiled passes (:mod:`._glue_kernels`) that read the claimed float32 keys and
    values in place, only those each sampled row sees, around numpy's softmax. Without it, all sampled rows
    and heads in one batched torch product: row ``t`` scores keys ``0..t`` (the later keys up to the
    last sampled row are masked to ``-inf``, so they never enter its softmax). In torch, which keeps
    to its own thread setting: numpy's BLAS spreads products of this size over every core, which on
    a loaded machine costs a hundred times the product.
    """
    kern = _kernels()
    if kern is None:
        return _attention_rows_torch(qkv, rows, n_heads)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    sc = np.full((len(rows), n_heads, int(rows.max()) + 1), -np.inf)  # keys after a row's own stay -inf
    kern.attention_scores(qkv, rows, n_heads, sc)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf scores propagate to the output, rejected there
        sc -= sc.max(axis=-1, keepdims=True)
        np.exp(sc, out=sc)
        sc /= sc.sum(axis=-1, keepdims=True)
    out = np.empty((len(rows), qkv.shape[1] // 3))
    kern.attention_values(qkv, rows, n_heads, sc, out)
    return out


def _attention_rows_torch(qkv: np.ndarray, rows: np.ndarray, n_heads: int) -> np.ndarray:
    """:func:`_attention_rows` in torch (float64), the path without numba."""
    import torch

    d = qkv.shape[1] // 3
    hd = d // n_heads
    s = len(rows)
    top = int(rows.max()) + 1
    kv = torch.from_numpy(qkv[:top, d:]).double()
    q = torch.from_numpy(qkv[rows, :d]).double().view(s, n_heads, hd).transpose(0, 1)
    k, v = (z.reshape(top, n_heads, hd).transpose(0, 1) for z in (kv[:, :d], kv[:, d:]))
    sc = (q @ k.transpose(1, 2)) * (1.0 / math.sqrt(hd))  # [heads, s, top]
    sc.masked_fill_(torch.arange(top)[None, :] > torch.from_numpy(rows)[:, None], float("-inf"))
    p = torch.exp(sc - sc.amax(dim=-1, keepdim=True))
    p /= p.sum(dim=-1, keepdim=True)
    return (p @ v).transpose(0, 1).reshape(s, d).numpy()


def _bad_row(claimed: np.ndarray, ref: np.ndarray, rtol: float) -> tuple[int, float, float]:
    """The first row (index into ``claimed``) off beyond tolerance (-1: none), its error ratio, and the worst ratio."""
    kern = _kernels()
    if kern is not None and claimed.ndim == 2 and claimed.shape == ref.shape and ref.dtype == np.float64:
        worst = np.empty(ref.shape[0])
        kern.row_errors(claimed, ref, rtol, worst)
    else:
        claimed = claimed.astype(np.float64)
        scale = np.sqrt(np.mean(ref * ref, axis=-1, keepdims=True))
        worst = np.max(np.abs(claimed - ref) / (rtol * (np.abs(ref) + scale) + 1e-30), axis=-1)
    bad = np.flatnonzero(~(worst <= 1.0))  # NaN compares false: rejected too
    if bad.size:
        return int(bad[0]), float(worst[bad[0]]), math.inf
    return -1, 0.0, float(worst.max()) if worst.size else 0.0


def _sum_matches(claimed: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``claimed`` is bitwise the float32 sum ``a + b`` (2-D, same shape), in one pass without temporaries."""
    kern = _kernels()
    if kern is None or claimed.ndim != 2 or not (claimed.shape == a.shape == b.shape) or not all(
            z.dtype == np.float32 for z in (claimed, a, b)):
        return bool(np.array_equal(claimed, a + b))
    return kern.sum_mismatches(claimed, a, b) == 0


def _read_trace(trace: Any, shapes: dict) -> dict[str, np.ndarray] | str:
    """The provider's trace as exact float32 arrays of the right shapes, or the reason it is not (never raises)."""
    if type(trace) is not dict:
        return f"trace is a {type(trace).__name__}, not a dict of arrays"
    if not all(type(k) is str for k in dict.keys(trace)):  # no provider key's __hash__/__eq__ runs below
        return "trace has a key that is not a plain str"
    if set(trace) != set(TRACE_KEYS):
        return f"trace has {len(trace)} keys, not exactly {', '.join(TRACE_KEYS)}"
    out = {}
    for k in TRACE_KEYS:
        v = trace[k]
        if type(v) is not np.ndarray:
            return f"trace[{k!r}] is a {type(v).__name__}, not a numpy array"
        if v.dtype != np.float32 or v.shape != shapes[k]:
            return f"trace[{k!r}] is {v.dtype}{list(v.shape)}; expected float32{list(shapes[k])}"
        out[k] = np.ascontiguousarray(v)
    return out


def head_tolerance(hidden: np.ndarray, logits: np.ndarray, wnorm: np.ndarray, freivalds: Freivalds) -> np.ndarray:
    """Per row, the tolerance of ``freivalds`` on the tied head ``logits = hidden @ W^T`` (float32 claims).

    The same formula as :meth:`Freivalds.row_tolerances <vcompute.verify.Freivalds.row_tolerances>`, from the
    rows' sums and ``wnorm`` (``||W[:, l]||_2`` per hidden unit ``l``, the row norms of ``B = W^T``) in ``O(n (d + V))``
    instead of a float64 copy of ``W``: a logit off the exact product of its row by more than this is caught by
    the head check with probability >= 1 - 2**-rounds (``proofs/freivalds.md``, S1).
    """
    from vcompute.verify.freivalds.tolerance import tolerance_from_sums

    prec = precision_of("float32", freivalds.accumulation)
    a, c = hidden.astype(np.float64), logits.astype(np.float64)
    K, n = a.shape[1], c.shape[1]
    tol = tolerance_from_sums(np, S=np.abs(a) @ (wnorm + 1e-300), C2=np.einsum("ij,ij->i", c, c),
                              T=(a * a) @ (wnorm * wnorm), K=K, n=n, prec=prec, safety=freivalds.safety)
    return tol + _underflow_allowance("float32", prec, K, n)


def checked_logits(h: np.ndarray, w: np.ndarray, claimed: np.ndarray, slack: np.ndarray, tokens: np.ndarray,
                   sampling: Any, first_position: int, atol: float) -> tuple[np.ndarray, np.ndarray | None, int]:
    """The logits the token rule reads: the verifier's own float64 ``h W^T`` wherever the rule compares them.

    ``claimed`` (the provider's logits rows) is known to within ``slack`` per row of the exact ``h W^T``
    (Freivalds' head tolerance plus what the final LayerNorm's claimed output may differ from ``h``). Every
    token the rule's score comparisons can read is recomputed exactly, in ``O(d)`` each: the claimed token and
    every token whose claimed logit (greedy) or score (sampled, top_p = 1) is within ``band + 2 slack`` of the
    claimed maximum, or (top_p < 1) every token that may be in the nucleus with the band widened by ``2 slack``;
    no other token can be the verifier's pick or within the band of it (``proofs/inference-glue.md``,
    *The tokens*). The rest keep the claimed values, which only the nucleus mass reads.

    Args:
        h: ``[n, d]`` float64 hidden states the verifier computed (the final LayerNorm of the checked stream).
        w: the tied head ``[V, d]`` (float32, the job's weights).
        claimed: ``[n, V]`` the trace's logits rows.
        slack: ``[n]`` the per-row bound on ``|claimed - h W^T|``.
        tokens: the ``n`` claimed tokens.
        sampling: the job's :class:`~vcompute.workloads.lm.sampling.SamplingParams`.
        first_position: the sequence position of the first token.
        atol: the calibrated logit band.

    Returns:
        The logits (float64 ``[n, V]``), the per-row ``nucleus_atol`` for :func:`.tokens.check_tokens`
        (None where the rule reads no mass), and how many entries were recomputed.
    """
    from vcompute.verify.inference.tokens import maybe_in_nucleus
    from vcompute.workloads.lm.sampling import gumbel

    z = claimed.astype(np.float64)
    n, V = z.shape
    rows = np.arange(n)
    nucleus = None
    if sampling.greedy:
        cand = z >= (z.max(axis=1) - 2.0 * (atol + slack))[:, None]
    elif sampling.top_p < 1.0:
        t = sampling.temperature
        order, count = maybe_in_nucleus(z / t, sampling.top_p, 2.0 * (atol + 2.0 * slack) / t)
        cand = np.zeros((n, V), dtype=bool)
        cand[rows[:, None], order] = np.arange(V)[None, :] < count[:, None]
        nucleus = atol + slack
    else:
        t = sampling.temperature
        score = z / t + gumbel(sampling.seed, first_position + rows, V)
        cand = score >= (score.max(axis=1) - 2.0 * (atol + slack) / t)[:, None]
    cand[rows, tokens] = True
    r, c = np.nonzero(cand)
    cols, at = np.unique(c, return_inverse=True)
    exact = w[cols].astype(np.float64) @ h.T  # [len(cols), n], float64 accumulation
    z[r, c] = exact[at, r]
    return z, nucleus, int(r.size)


class SampledGlue(Scheme):
    """Checks a provider's prefill trace: Freivalds on all linear rows, the glue on sampled rows.

    Args:
        rows: token rows recomputed per block and per glue op (None: all rows).
        rounds: Freivalds sign vectors per linear layer.
        rtol: relative tolerance of recomputed glue entries (:data:`GLUE_RTOL`).

    Raises:
        ValueError: for a malformed argument.

    Example:
        >>> from vcompute.workloads.lm import LMConfig, TransformerLM
        >>> from vcompute.verify.inference.glue_trace import trace_prefill
        >>> m = TransformerLM(LMConfig(vocab=300, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=16))
        >>> ids = [256, 5, 6, 7]
        >>> SampledGlue(rows=2).check(m, ids, trace_prefill(m, ids), challenge_seed=1).accepted
        True
    """

    name = "generate.glue"

    def __init__(self, *, rows: int | None = 16, rounds: int = 10, rtol: float = GLUE_RTOL) -> None:
        if rows is not None and (type(rows) is not int or rows < 1):
            raise ValueError(f"rows must be a positive int or None (all rows), got {rows!r}")
        if not (isinstance(rtol, float) and 0 < rtol < 1):
            raise ValueError(f"rtol must be a float in (0, 1), got {rtol!r}")
        self.rows = rows
        self.rounds = rounds
        self.rtol = float(rtol)
        self.freivalds = Freivalds(rounds=rounds)
        self._stacks = LinearStacks(self.freivalds)
        self._prepared: dict[Any, tuple[Any, int, Any]] = {}

    def _weight(self, w: Any) -> PreparedMatrix:
        """``W^T`` contiguous, prepared once per weight tensor (re-prepared if changed in place)."""
        hit = self._prepared.get(id(w))
        if hit is None or hit[0] is not w or hit[1] != w._version:
            # the tensor itself is held, so its id cannot be reused while cached
            hit = (w, w._version, self.freivalds.prepare(np.ascontiguousarray(w.detach().numpy().T)))
            self._prepared[id(w)] = hit
        return hit[2]

    def replicas(self, job: Job) -> int:
        """One claim."""
        return 1

    def evidence(self, job: Job) -> EvidenceSpec:
        """The prefill trace over prompt + tokens (``claim.evidence["trace"]``)."""
        return EvidenceSpec("prefill-trace", {"keys": TRACE_KEYS})

    def check_job(self, job: Job, ctx: VerifyContext) -> None:
        """Refuse a job that is not a float32 ``generate`` job (the caller's misuse).

        Raises:
            ValueError: if ``job`` is not a float32 generate job.
        """
        if job.kind != "generate" or job.spec.get("precision") != "float32":
            raise ValueError("SampledGlue.verify needs a float32 'generate' job (make_generate_job)")

    def _check(self, job: Job, claims: Sequence[Claim], ctx: VerifyContext) -> Verdict:
        """Check a ``generate`` claim whose evidence is the trace over prompt + tokens[:-1].

        The trace is checked against the job's model, then every token against the
        job's sampler on the trace's (now checked) logits (:mod:`.tokens`).
        """
        from vcompute.verify.inference.tokens import as_tokens, band_count
        from vcompute.verify.inference.tolerance import tolerance_for
        from vcompute.workloads.lm.job import model_of, prompt_of, sampling_of

        claim, t0 = claims[0], time.perf_counter()
        model, prompt, sp = model_of(job), prompt_of(job), sampling_of(job)
        toks = as_tokens(claim.output, model.cfg.vocab)
        if isinstance(toks, str):
            return Verdict.reject(toks, scheme=self.name)
        n = int(toks.shape[0])
        if n != int(job.spec["max_new_tokens"]):
            return Verdict.reject(f"{n} tokens returned; the job asked for {job.spec['max_new_tokens']}",
                                  scheme=self.name)
        ids = np.concatenate([prompt, toks[:-1]])
        trace = claim.evidence.get("trace") if isinstance(claim.evidence, Mapping) else None
        job_state = self._run(model, [(ids, trace)], challenge_seed=int(ctx.rng.integers(2**62)))[0]
        v = self._verdicts([job_state], 0.0)[0]
        if not v.accepted:
            return v
        L = len(prompt)
        tol = tolerance_for("float32")
        # The token rule reads logits the verifier computes itself (float64, from its own final LayerNorm of the
        # checked residual stream) wherever it compares them; the trace's logits, which the head check binds
        # only to within Freivalds' tolerance, only choose which tokens to recompute (and, for a nucleus, give
        # the mass of the rest): proofs/inference-glue.md, *The tokens*.
        tc, slack, recomputed = self.token_check(model, job_state.h_ref[L - 1:], job_state.tr["hidden"][L - 1:],
                                                 job_state.tr["logits"][L - 1:], toks, sp, L)
        cost = Cost(flops=v.cost.flops, seconds=time.perf_counter() - t0, evidence_bytes=v.cost.evidence_bytes,
                    reexecuted_fraction=v.cost.reexecuted_fraction)
        bc = band_count(tc, n, band_rate=tol.band_rate, band_alpha=tol.band_alpha, edge_rate=tol.edge_rate,
                        edge_alpha=tol.edge_alpha, nucleus=not sp.greedy and sp.top_p < 1.0,
                        precision="float32")
        details = {**v.details, "near_ties": tc.near_ties, "band_uses": tc.near_ties, "band_limit": bc.band_limit,
                   "edge_uses": tc.edge_uses, "edge_limit": bc.edge_limit, "first_bad_token": tc.first_bad,
                   "recomputed_logits": recomputed,
                   "logit_slack_max": float(slack.max())}
        if not tc.ok:
            return Verdict.reject(f"token {tc.first_bad} is not what the job's sampler draws from the checked logits",
                                  scheme=self.name, details=details, cost=cost)
        if not bc.ok:  # the band-use count (proofs/inference.md)
            return Verdict.reject(bc.reason, scheme=self.name, details=details, cost=cost)
        return Verdict.accept(f"{n} tokens match the sampler on a trace that passed the glue check",
                              scheme=self.name, details=details, cost=cost)

    def check(self, model: Any, ids: Any, trace: Any, *, challenge_seed: int) -> Verdict:
        """Verify that ``trace`` is ``model``'s forward pass over ``ids``.

        Args:
            model: the job's float32 :class:`~vcompute.workloads.lm.TransformerLM`.
            ids: the sequence the trace claims to run over.
            trace: the provider's trace (:func:`~vcompute.verify.inference.glue_trace.trace_prefill`).
            challenge_seed: the verifier's randomness, drawn after the trace is fixed.

        Returns:
            The verdict; a malformed or wrong trace is rejected with a reason naming the layer and op.

        Raises:
            TypeError, ValueError: for the caller's malformed arguments (never for the provider's trace).
        """
        return self.check_many(model, [(ids, trace)], challenge_seed=challenge_seed)[0]

    def token_check(self, model: Any, h_ref: np.ndarray, hidden: np.ndarray, logits: np.ndarray, tokens: np.ndarray,
                    sampling: Any, first_position: int) -> tuple[Any, np.ndarray, int]:
        """The token rule and the band count on logits the verifier computes itself (``proofs/inference-glue.md``).

        Args:
            model: the job's model (its tied head ``wte``).
            h_ref: ``[n, d]`` float64: the verifier's final LayerNorm of the checked residual stream, one row per token.
            hidden, logits: the trace's final LayerNorm output and logits rows, after the trace passed the check.
            tokens: the ``n`` claimed tokens; sampling: the job's sampling parameters.
            first_position: the sequence position of the first token.

        Returns:
            The :class:`~vcompute.verify.inference.tokens.TokenCheck`, the per-row slack of the trace's logits
            (Freivalds' head tolerance plus what ``hidden`` may differ from ``h_ref``), and how many logits were
            recomputed.
        """
        from vcompute.verify.inference.tokens import check_tokens
        from vcompute.verify.inference.tolerance import tolerance_for

        tol = tolerance_for("float32")
        wnorm, wmax = self._head_norms(model.wte.weight)
        dh = hidden - h_ref
        slack = head_tolerance(hidden, logits, wnorm, self.freivalds) + np.sqrt(np.einsum("ij,ij->i", dh, dh)) * wmax
        z, nucleus, recomputed = checked_logits(h_ref, model.wte.weight.detach().numpy(), logits, slack, tokens,
                                                sampling, first_position, tol.logit_atol)
        tc = check_tokens(z, tokens, sampling, first_position=first_position, atol=tol.logit_atol,
                          mass_atol=tol.mass_atol, nucleus_atol=nucleus)
        return tc, slack, recomputed

    def _head_norms(self, w: Any) -> tuple[np.ndarray, float]:
        """``||W[:, l]||_2`` per hidden unit and the largest ``||W[j]||_2`` of the tied head, once per weight tensor."""
        key = ("norms", id(w))
        hit = self._prepared.get(key)
        if hit is None or hit[0] is not w or hit[1] != w._version:
            w64 = w.detach().numpy().astype(np.float64)
            hit = (w, w._version, (np.sqrt(np.einsum("jl,jl->l", w64, w64)),
                                   float(np.sqrt(np.einsum("jl,jl->j", w64, w64).max()))))
            self._prepared[key] = hit
        return hit[2]

    def check_many(self, model: Any, items: Sequence[tuple[Any, Any]], *, challenge_seed: int) -> list[Verdict]:
        """Verify several traces of one model together: one verdict each, the linear layers' signs shared.

        Each kind of linear layer is checked over every trace with one block of Freivalds signs,
        drawn after *all* the traces are fixed: it is independent of each trace's claims, so each
        keeps its own per-layer bound, and ``W R`` (the part of the check that reads the weights,
        about half of its cost at 512 tokens) is computed once for all of them
        (``proofs/inference-glue.md``). The glue rows are drawn per trace, as in :meth:`check`.

        Args:
            model: the jobs' float32 :class:`~vcompute.workloads.lm.TransformerLM`.
            items: ``(ids, trace)`` per job.
            challenge_seed: the verifier's randomness, drawn after every trace is fixed.

        Returns:
            One verdict per item, in order; each one's ``cost.seconds`` is its share of the whole.

        Raises:
            TypeError, ValueError: for the caller's malformed arguments (never for a provider's trace).
        """
        t0 = time.perf_counter()
        jobs = self._run(model, items, challenge_seed=challenge_seed)
        return self._verdicts(jobs, (time.perf_counter() - t0) / len(jobs))

    def _run(self, model: Any, items: Sequence[tuple[Any, Any]], *, challenge_seed: int) -> list[_Job]:
        """:meth:`check_many`'s work: each trace's state, its verdict and the verifier's final LayerNorm in it."""
        import torch

        from vcompute.workloads.lm.generation import as_prompt

        if type(model).__name__ != "TransformerLM" or model.dtype != torch.float32:
            raise TypeError("SampledGlue checks a float32 torch TransformerLM")
        if isinstance(challenge_seed, bool) or not isinstance(challenge_seed, int):
            raise TypeError("challenge_seed must be an int drawn after the trace")
        if not isinstance(items, (list, tuple)) or not items or not all(
                isinstance(it, tuple) and len(it) == 2 for it in items):
            raise TypeError("items must be a non-empty list of (ids, trace) pairs")
        cfg = model.cfg
        seqs = [as_prompt(ids, cfg.vocab, f"items[{j}] ids") for j, (ids, _) in enumerate(items)]
        for j, q in enumerate(seqs):
            if len(q) > cfg.max_len:
                raise ValueError(f"items[{j}] ids has {len(q)} tokens; the model's max_len is {cfg.max_len}")
        rng = np.random.default_rng(challenge_seed)
        jobs = [_Job(q, self.rows) for q in seqs]
        for job, (_, trace) in zip(jobs, items):
            tr = _read_trace(trace, trace_shapes(cfg, job.T))
            if isinstance(tr, str):
                job.verdict = (False, tr, {})
            else:
                job.tr = tr
                self._glue(model, job, rng)
        live = [j for j in jobs if j.verdict is None]
        # each kind of linear layer of all blocks in one fused pass, one block of signs per kind for every trace
        for kind, (a_key, mod_name, c_key) in enumerate(_LINEARS):
            if not live:
                break
            results = self._stacks.check_many(mod_name, [(j.tr[a_key], j.tr[c_key]) for j in live],
                                               [getattr(b, mod_name) for b in model.blocks], rng)
            for job, res in zip(live, results):
                job.flops += res.flops
                if res.reason:
                    job.fails.append((res.layer, kind, res.reason))
        for job in live:
            if job.fails:
                layer, _, reason = min(job.fails)  # the first wrong layer in forward order
                job.verdict = (False, reason, {"layer": layer})
                continue
            tr = job.tr
            job.h_ref = _ln(tr["x"][-1], model.ln_f)  # float64: the token check's logits are computed from it
            q = self._glue_op(job, "final ln", tr["hidden"], job.h_ref)
            if not q:
                v = self.freivalds.check(tr["hidden"], self._weight(model.wte.weight), tr["logits"],
                                         seed=int(rng.integers(2**62)))  # the tied head has no bias
                job.flops += v.cost.flops
                q = None if v.accepted else f"head: Freivalds: {v.reason}"
            if q:
                job.verdict = (False, q, {"layer": cfg.n_layers})
            else:
                job.verdict = (True, f"{cfg.n_layers} blocks: {4 * cfg.n_layers + 1} linear layers pass Freivalds "
                               f"({self.rounds} rounds) on all {job.T} rows; glue passes on {job.s} sampled rows "
                               "per op", {"rows": job.s, "tokens": job.T, "max_glue_error_ratio": max(job.ratios)})
        return jobs

    def _verdicts(self, jobs: list[_Job], share: float) -> list[Verdict]:
        out = []
        for job in jobs:
            ok, reason, details = job.verdict
            cost = Cost(flops=job.flops, seconds=share, reexecuted_fraction=job.s / job.T)
            out.append((Verdict.accept if ok else Verdict.reject)(reason, scheme=self.name, cost=cost, details=details))
        return out

    def _glue_op(self, job: _Job, name: str, claimed: np.ndarray, ref: Any, rows: np.ndarray | None = None) -> str | None:
        """The reason ``claimed`` is off its recomputation ``ref`` (``(a, b)`` for an exact float32 sum, or float64 rows), or None."""
        if isinstance(ref, tuple):  # an exact float32 sum a + b: bitwise equal is the honest, common case
            a, b = ref
            if _sum_matches(claimed, a, b):
                return None
            ref = a.astype(np.float64) + b
        bad = _bad_row(claimed, ref, self.rtol)
        job.ratios.append(bad[2])
        if bad[0] < 0:
            return None
        r = bad[0] if rows is None else int(rows[bad[0]])
        return f"{name}: row {r} differs from the recomputation by {bad[1]:.3g}x the tolerance"

    def _glue(self, model: Any, job: _Job, rng: np.random.Generator) -> None:
        """The embeddings, every block's glue on sampled rows and its residual adds; sets a rejection on the first lie."""
        tr, T, s, ids_np = job.tr, job.T, job.s, job.ids

        def pick() -> np.ndarray:
            return np.arange(T) if s == T else np.sort(rng.choice(T, size=s, replace=False))

        g = functools.partial(self._glue_op, job)
        x = tr["x"]
        problems = [g("embeddings", x[0], (model.wte.weight.detach().numpy()[ids_np],
                                              model.wpe.weight.detach().numpy()[:T]))]
        for i, blk in enumerate(model.blocks):
            p = f"layer {i}"
            r1, ra, r2, rg = pick(), pick(), pick(), pick()
            problems += [
                g(f"{p} ln1", tr["ln1"][i, r1], _ln(x[i, r1], blk.ln_1), r1),
                g(f"{p} attention", tr["attn"][i, ra], _attention_rows(tr["qkv"][i], ra, model.cfg.n_heads), ra),
                g(f"{p} residual 1", tr["mid"][i], (x[i], tr["attn_out"][i])),
                g(f"{p} ln2", tr["ln2"][i, r2], _ln(tr["mid"][i, r2], blk.ln_2), r2),
                g(f"{p} gelu", tr["gelu"][i, rg], _gelu(tr["fc"][i, rg].astype(np.float64)), rg),
                g(f"{p} residual 2", x[i + 1], (tr["mid"][i], tr["mlp_out"][i])),
            ]
            first = next((q for q in problems if q), None)
            if first:
                job.verdict = (False, first, {"layer": i})
                return


class _Job:
    """One trace's state through :meth:`SampledGlue.check_many`."""

    def __init__(self, ids: np.ndarray, rows: int | None) -> None:
        self.ids, self.T = ids, len(ids)
        self.s = self.T if rows is None else min(rows, self.T)
        self.tr: dict[str, np.ndarray] = {}
        self.verdict: tuple[bool, str, dict] | None = None
        self.flops = 0.0
        self.ratios = [0.0]
        self.fails: list[tuple[int, int, str]] = []
        self.h_ref: np.ndarray | None = None
