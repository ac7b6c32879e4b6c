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

__all__ = ["Reject", "check_chain", "check_delivered_model", "check_leaf", "check_plain_json", "committed_seeds",
           "decode_any", "decode_checkpoint", "exact_bytes", "exact_fields", "exact_proof", "first_item", "inflate",
           "ks_init", "listed", "param_vector", "segment_count_reason", "shipped_array", "within_job"]


class Reject(Exception):
    """Evidence is rejected; the message is the verdict's reason.

    Args:
        reason: the verdict's reason.
        segment: the failing segment, when one segment's replay or declaration is what failed.
    """

    def __init__(self, reason: str, *, segment: int | None = None) -> None:
        super().__init__(reason)
        self.segment = segment


#: Deepest nesting of the plain JSON a claim's ``meta`` may hold (it is serialised to check the signature).
_MAX_JSON_DEPTH = 32


def exact_fields(m: Any, what: str) -> dict[str, Any]:
    """A provider's mapping (evidence, meta, an opening) as an exact ``dict`` with exact ``str`` keys.

    Looking a key up in a mapping runs the ``__eq__`` of any key whose hash
    collides with it, and a ``Mapping`` subclass answers reads with its own
    code: either could raise anything, ``MemoryError`` included, which
    would pass the verifier's guard as the verifier's own machine failing.
    So the mapping must be an exact ``dict`` (or the read-only view
    :class:`~vcompute.core.types.Claim` keeps one in) whose keys are all exact ``str``.

    Raises:
        Reject: for any other mapping or key.
    """
    from types import MappingProxyType

    if type(m) is MappingProxyType:
        items = list(m.items())  # the proxy of the exact dict Claim copied: its items() runs no provider code
    elif type(m) is dict:
        items = list(dict.items(m))
    else:
        raise Reject(f"{what} is a {type(m).__name__}, not a plain mapping")
    if not all(type(k) is str for k, _ in items):
        raise Reject(f"{what} has a key that is not a plain str")
    return dict(items)


def exact_bytes(x: Any, what: str) -> bytes:
    """``x`` as exact ``bytes`` if it is exact ``bytes``/``bytearray`` (a subclass's ``__len__``/``__getitem__`` could lie).

    Raises:
        Reject: for anything else.
    """
    if type(x) not in (bytes, bytearray):
        raise Reject(f"{what} is a {type(x).__name__}, not bytes")
    return bytes(x)


def exact_proof(x: Any, what: str) -> list[bytes]:
    """A Merkle proof as a list of exact ``bytes`` (read from an exact ``list``/``tuple``).

    Raises:
        Reject: for anything else.
    """
    if type(x) not in (list, tuple):
        raise Reject(f"{what} is a {type(x).__name__}, not a list of hashes")
    return [exact_bytes(h, what) for h in (list.copy(x) if type(x) is list else list(tuple.__iter__(x)))]


def check_plain_json(x: Any, what: str, depth: int = 0) -> None:
    """Reject unless ``x`` is plain JSON of exact builtins (what a claim's signed ``meta`` is serialised from).

    ``json.dumps`` runs a subclass's ``__iter__`` and sorts keys with their
    ``__lt__``, and its fallback reads a ``Mapping`` with its own methods.

    Raises:
        Reject: naming the first value that is not plain JSON.
    """
    t = type(x)
    if depth > _MAX_JSON_DEPTH:
        raise Reject(f"{what} is nested deeper than {_MAX_JSON_DEPTH} levels")
    if x is None or t in (str, int, float, bool):
        return
    if t is dict:
        for k, v in dict.items(x):
            if type(k) is not str:
                raise Reject(f"{what} has a key that is not a plain str")
            check_plain_json(v, what, depth + 1)
        return
    if t in (list, tuple):
        for v in (list.copy(x) if t is list else list(tuple.__iter__(x))):
            check_plain_json(v, what, depth + 1)
        return
    raise Reject(f"{what} holds a {t.__name__}, not plain JSON")


def inflate(resp: Mapping[str, Any], blob: Any, limit: int) -> bytes:
    """Undo the transport codec, refusing anything that inflates past ``limit`` bytes."""
    if resp.get("codec") is None:
        return blob
    if resp.get("codec") != "lzma" or type(blob) not in (bytes, bytearray):
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
    if type(ckpt) not in (bytes, bytearray):  # a subclass's __getitem__ would run in decoding
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


def check_delivered_model(output: Any, final_digest: bytes, steps: int, layout: list) -> None:
    """Reject unless a delivered model (the claim's ``output``, if any) is the last committed checkpoint.

    ``output`` may be ``None`` (the model is the transcript's final
    checkpoint), checkpoint bytes, or a training state (an exact ``dict`` of
    exact ``str`` names to exact numpy arrays) encoded at step ``steps``.
    A state must have ``layout``'s names and shapes (the job's model) before
    it is encoded: encoding copies every array at the size it declares, and
    a broadcast view declares terabytes over a few bytes.
    """
    if output is None:
        return
    from vcompute.workloads.training.spec import encode_state

    if type(output) in (bytes, bytearray):
        blob = bytes(output)
    elif type(output) is dict:
        items = list(dict.items(output))
        if [k if type(k) is str else None for k, _ in items] != [n for n, _ in layout]:
            raise Reject("the delivered model's arrays are not the job's model's (names or order differ)")
        for (name, v), (_, shape) in zip(items, layout):
            if type(v) is not np.ndarray or list(v.shape) != list(shape):
                raise Reject(f"the delivered model's {name} is not a numpy array of shape {tuple(shape)}")
        blob = encode_state(steps, dict(items))
    else:
        raise Reject(f"the delivered model is a {type(output).__name__}, not checkpoint bytes or a state")
    if checkpoint_digest(blob) != bytes(final_digest):
        raise Reject("the delivered model is not the last committed checkpoint")


def listed(resp: Mapping[str, Any], key: str) -> list:
    """``resp[key]`` as the items of an exact ``list`` (a subclass's ``__iter__``/``__getitem__`` could lie).

    Raises:
        Reject: if it is anything else.
    """
    v = resp.get(key)
    if type(v) is not list:
        raise Reject(f"the prover's {key!r} is a {type(v).__name__}, not a list")
    return list.copy(v)


def first_item(resp: Mapping[str, Any], key: str) -> Any:
    """The first item of :func:`listed` ``resp[key]``.

    Raises:
        Reject: if it is not a non-empty exact list.
    """
    items = listed(resp, key)
    if not items:
        raise Reject(f"the prover's {key!r} is empty")
    return items[0]


def within_job(spec: Any, job_spec: Any) -> None:
    """Hyperparameters taken on faith (the reference) may not change the job's amount of work or make it larger.

    The segment count is the job's: ``steps`` and ``checkpoint_every`` must be
    the job's own, so ``C = steps / checkpoint_every`` is derived from the job
    spec, never from the transcript. A lazy provider declaring fewer steps
    (training half the job) or more (the lever of Fang et al.'s declared-steps
    spoof, and a header listing as many segments as it can hold, which the
    verifier would walk) is rejected before any segment is opened. The
    verifier also allocates the declared model (initialisation, replays) and
    replays ``checkpoint_every`` steps of ``batch_size`` examples per segment:
    a header declaring a model of 10**12 parameters would have it allocate
    them. Learning rate, momentum, weight decay and batch size stay the
    prover's to choose (the reference's known weakness, ``proofs/pol.md``);
    sizes may not exceed the job's.

    Raises:
        Reject: naming the count or size that differs from the job's.
    """
    from vcompute.workloads.training.spec import param_shapes

    if (spec.steps, spec.checkpoint_every) != (job_spec.steps, job_spec.checkpoint_every):
        raise Reject(segment_count_reason(spec.steps, spec.checkpoint_every, job_spec))

    def params(sp: Any) -> int:
        return sum(int(np.prod(s)) for s in param_shapes(sp).values())

    for what, mine, theirs in (("parameters", params(spec), params(job_spec)),
                               ("examples per segment", spec.checkpoint_every * spec.batch_size,
                                job_spec.checkpoint_every * job_spec.batch_size)):
        if mine > theirs:
            raise Reject(f"the transcript's hyperparameters declare {mine} {what}, more than the job's {theirs}")


def segment_count_reason(steps: Any, every: Any, job_spec: Any) -> str:
    """Why a transcript declaring ``steps`` checkpointed ``every`` steps is not the job's (the reason rejected with)."""
    declared = f"{steps // every} segments" if type(steps) is int and type(every) is int and every > 0 else "its segments"
    return (f"the transcript declares {repr(steps)[:40]} steps checkpointed every {repr(every)[:40]} ({declared}); "
            f"the job's {job_spec.steps} steps every {job_spec.checkpoint_every} give {job_spec.n_segments} segments")


def shipped_array(resp: Mapping[str, Any], key: str, dtype: Any) -> np.ndarray:
    """``resp[key]`` (shipped data) as a ``dtype`` array, copied only if its size is memory the prover holds.

    Raises:
        Reject: for anything but an exact numpy array, or a view declaring more elements than its buffer.
    """
    from vcompute.verify.screening import memory_span

    v = resp.get(key)
    if type(v) is not np.ndarray:
        raise Reject(f"the shipped {key!r} is a {type(v).__name__}, not a numpy array")
    _, problem = memory_span(v)
    if problem is not None:
        raise Reject(f"the shipped {key!r} {problem}")
    return np.asarray(v, dtype)
