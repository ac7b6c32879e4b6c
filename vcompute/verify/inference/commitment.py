"""Checking an activation commitment against the verifier's recomputed hidden states.

For each chunk, the verifier selects *its* top entries of its recomputed
last hidden states (the same rule as the provider,
:func:`~vcompute.workloads.lm.proof.select_entries`), evaluates the
committed polynomial there and decodes the provider's bits. An entry
*matches* when ``|committed - recomputed| <= rtol * |recomputed|``; where the
two top sets differ (a near-tie at the selection cut) the polynomial gives
an unrelated field element, which matches with probability about
``2 rtol |h| / ulp`` over ``p`` (below 1e-4 at bf16, 1e-6 at float32). A chunk
passes when at most ``max_misses`` of its k entries miss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcompute.workloads.lm.proof import CHUNK, ParsedProof, bits_to_float, evaluate, select_entries

__all__ = ["CommitmentCheck", "check_commitment"]


@dataclass(frozen=True)
class CommitmentCheck:
    """The outcome of checking every chunk's commitment.

    Attributes:
        ok: whether every checked chunk passed.
        first_bad: index of the first failing chunk (-1 if none).
        misses: entries that missed, per checked chunk.
        max_rel_err: largest relative error among matching entries, per checked chunk.
        median_rel_err: median relative error over all k entries, per checked chunk.
        inexact: entries whose committed value is not bit-identical to the recomputed one, per checked chunk.
    """

    ok: bool
    first_bad: int
    misses: tuple[int, ...]
    max_rel_err: tuple[float, ...]
    median_rel_err: tuple[float, ...]
    inexact: tuple[int, ...] = ()


def check_commitment(parsed: ParsedProof, hidden: np.ndarray, *, rtol: float, max_misses: int,
                     chunks=None, max_inexact: int | None = None) -> CommitmentCheck:
    """Compare the committed entries with recomputed hidden-state bits ``[n_tokens, d]``.

    Args:
        parsed: the parsed proof.
        hidden: the verifier's bit patterns of the hidden states that produced each token.
        rtol: relative tolerance of one entry.
        max_misses: entries per chunk allowed to miss.
        chunks: indices of the chunks to check (default: all).
        max_inexact: entries per chunk allowed to differ at all (None: no limit).
    """
    fp, prec = parsed.params, parsed.precision
    todo = list(range(parsed.coeffs.shape[0]) if chunks is None else chunks)
    refs, idxs = [], []
    for c in todo:
        block = hidden[c * CHUNK:(c + 1) * CHUNK]
        mine = bits_to_float(block, prec)
        idx = select_entries(mine, fp.k)
        idxs.append(idx)
        refs.append(mine.reshape(-1)[idx].astype(np.float64))
    if len({len(i) for i in idxs}) == 1:  # the usual case: one batched evaluation of every chunk's polynomial
        gots = list(evaluate(parsed.coeffs[todo], np.stack(idxs), fp.prime)) if todo else []
    else:
        gots = [evaluate(parsed.coeffs[c], i, fp.prime) for c, i in zip(todo, idxs)]
    mask = np.uint64((1 << fp.bits) - 1)
    misses, max_err, med_err, inexact = [], [], [], []
    first_bad = -1
    for c, got, ref in zip(todo, gots, refs):
        theirs = bits_to_float((got & mask).astype(np.uint32 if fp.bits == 32 else np.uint16), prec)
        theirs = np.where(got > mask, np.float32(np.nan), theirs)  # not a bit pattern of this width
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(theirs.astype(np.float64) - ref) / np.maximum(np.abs(ref), 1e-30)
        err = np.where(np.isfinite(err), err, np.inf)
        hit = err <= rtol
        m = int((~hit).sum())
        misses.append(m)
        max_err.append(float(err[hit].max()) if hit.any() else float("inf"))
        med_err.append(float(np.median(err)))
        inexact.append(int((err > 0).sum()))
        if (m > max_misses or max_inexact is not None and inexact[-1] > max_inexact) and first_bad < 0:
            first_bad = int(c)
    return CommitmentCheck(first_bad < 0, first_bad, tuple(misses), tuple(max_err), tuple(med_err), tuple(inexact))
