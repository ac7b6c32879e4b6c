"""Checks on opened evidence that reject with a reason (used by :class:`PoLVerifier`).

Every function here raises :class:`Reject` (never anything else it
expects) on malformed or dishonest evidence; the verifier turns it into a
rejected verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vcompute.core.merkle import verify_proof
from vcompute.verify.pol.selection import ks_uniform_pvalue
from vcompute.workloads.training.pol.transcript import checkpoint_digest

__all__ = ["Reject", "check_chain", "check_delivered_model", "check_leaf", "committed_seeds", "decode_any", "decode_checkpoint", "inflate", "ks_init",
           "param_vector"]


class Reject(Exception):
    """Evidence is rejected; the message is the verdict's reason.

    Args:
        reason: the verdict's reason.
        segment: the failing segment, when one segment's replay or declaration is what failed.
    """

    def __init__(self, reason: str, *, segment: int | None = None) -> None:
        super().__init__(reason)
        self.segment = segment


def inflate(resp: Mapping[str, Any], blob: Any, limit: int) -> bytes:
    """Undo the transport codec, refusing anything that inflates past ``limit`` bytes."""
    if resp.get("codec") is None:
        return blob
    if resp.get("codec") != "lzma" or not isinstance(blob, (bytes, bytearray)):
        raise Reject(f"unknown transport codec {resp.get('codec')!r}")
    import lzma

    d = lzma.LZMADecompressor()
    try:
        out = d.decompress(bytes(blob), max_length=limit)
    except lzma.LZMAError as e:
        raise Reject(f"checkpoint does not decompress: {e}") from None
    if not d.eof or d.unused_data:
        raise Reject("compressed checkpoint is larger than the model or has trailing data")
    return out


def check_leaf(root: bytes, n_leaves: int, index: int, ckpt: Any, proof: Any, what: str) -> None:
    """Reject unless ``ckpt`` is bytes whose digest is leaf ``index`` under ``root``."""
    if not isinstance(ckpt, (bytes, bytearray)):
        raise Reject(f"{what} is not bytes")
    if not verify_proof(bytes(root), checkpoint_digest(ckpt), index, proof, n_leaves=n_leaves):
        raise Reject(f"bad Merkle proof for {what}")


def ks_init(spec, ck0: bytes, details: dict, alpha: float) -> None:
    """Reference-style init check: each layer's values against ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Raises:
        Reject: if some layer fails at family-wise level ``alpha`` (Bonferroni).
    """
    from vcompute.workloads.training.spec import param_shapes

    _, state = decode_any(ck0)
    shapes = param_shapes(spec)
    names = list(shapes)
    pvals = {}
    for n in names:
        w = shapes[n.rsplit(".", 1)[0] + ".weight"]
        bound = 1.0 / np.sqrt(float(np.prod(w[1:])))
        pvals[n] = ks_uniform_pvalue(np.asarray(state[n]).ravel(), -bound, bound)
    details["init_ks_pvalues"] = pvals
    worst = min(pvals, key=pvals.get)
    if pvals[worst] < alpha / len(names):
        raise Reject(f"initialisation of {worst} fails the KS test (p={pvals[worst]:.2g})")


def committed_seeds(s: Any) -> dict[str, int]:
    """The header's seeds, if they are a mapping of integer ``init``/``data``/``aug`` seeds."""
    if not isinstance(s, dict) or set(s) != {"init", "data", "aug"} or not all(isinstance(v, int) for v in s.values()):
        raise Reject("committed seeds must be a mapping of integer init/data/aug seeds")
    return dict(s)


def decode_any(ck: bytes) -> tuple[int, dict[str, np.ndarray]]:
    """:func:`~vcompute.workloads.training.spec.decode_state`, rejecting instead of raising."""
    from vcompute.workloads.training.spec import StateFormatError, decode_state

    try:
        return decode_state(ck)
    except StateFormatError as e:
        raise Reject(f"checkpoint does not decode: {e}") from None


def decode_checkpoint(ck: bytes, step: int, layout: list) -> dict[str, np.ndarray]:
    """Decode a checkpoint and check its step, array names and shapes, and finiteness."""
    got_step, state = decode_any(ck)
    if got_step != step:
        raise Reject(f"checkpoint claims step {got_step}, expected {step}")
    if [[n, list(v.shape)] for n, v in state.items()] != layout:
        raise Reject(f"checkpoint at step {step} has the wrong arrays or shapes")
    if not all(np.all(np.isfinite(v)) for v in state.values()):
        raise Reject(f"checkpoint at step {step} contains NaN or Inf")
    return state


def param_vector(state: Mapping[str, np.ndarray]) -> np.ndarray:
    """All parameters of a state as one float64 vector (momentum excluded)."""
    from vcompute.workloads.training.spec import flat_params

    return flat_params(state)


#: Declared-table columns that are norms of the update (the triangle inequality holds for them).
_NORM_COLUMNS = (("l1", 0), ("l2", 1), ("linf", 2))


def check_chain(known: Mapping[int, np.ndarray], declared: np.ndarray) -> None:
    """Check the declared update table against every pair of consecutive checkpoints the verifier holds.

    ``known`` maps checkpoint index to its parameter vector (committed
    checkpoints only: the exact init, opened starts, bit-exact or downloaded
    ends). Between consecutive known checkpoints ``a < b`` the distance in
    l1, l2 and linf can be at most the sum of the declared sizes of segments
    ``a..b-1`` (triangle inequality): a segment whose declared size hides a
    large jump (a swapped model) breaks this unless the lie is absorbed by
    the declared sizes of the other segments between the two anchors, which
    the prover had to fix before it knew where the anchors would be.

    Raises:
        Reject: naming the first violated interval and metric.
    """
    idx = sorted(known)
    for a, b in zip(idx, idx[1:]):
        d = known[b] - known[a]
        dist = (float(np.abs(d).sum()), float(np.linalg.norm(d)), float(np.abs(d).max(initial=0.0)))
        for name, col in _NORM_COLUMNS:
            budget = float(declared[a:b, col].sum())
            if dist[col] > budget * (1 + 1e-6) + 1e-12:
                raise Reject(f"checkpoints {a} and {b} are {dist[col]:.4g} apart in {name} but the declared "
                             f"updates between them sum to {budget:.4g}: the update table hides a jump")


def check_delivered_model(output: Any, final_digest: bytes, steps: int) -> None:
    """Reject unless a delivered model (the claim's ``output``, if any) is the last committed checkpoint.

    ``output`` may be ``None`` (the model is the transcript's final
    checkpoint), checkpoint bytes, or a training state (``name -> array``)
    encoded at step ``steps``.
    """
    if output is None:
        return
    from vcompute.workloads.training.spec import encode_state

    if isinstance(output, (bytes, bytearray)):
        blob = bytes(output)
    elif isinstance(output, Mapping):
        try:
            blob = encode_state(steps, {str(k): np.asarray(v) for k, v in output.items()})
        except Exception as e:
            raise Reject(f"the delivered model does not encode as a training state: {type(e).__name__}") from None
    else:
        raise Reject(f"the delivered model is a {type(output).__name__}, not checkpoint bytes or a state")
    if checkpoint_digest(blob) != bytes(final_digest):
        raise Reject("the delivered model is not the last committed checkpoint")
