"""The proof-of-learning transcript: header, checkpoints, Merkle commitment, openings.

Layout of the commitment (one Merkle tree, :mod:`vcompute.core.merkle`):

- leaf 0: the header, canonical JSON: job id, provider, framework, every
  hyperparameter, the seeds, the dataset hash, the Merkle root of the
  batch order, ``k``, the number of checkpoints, the declared update size
  of each segment (l1, l2, linf, cos distance) and the state layout;
- leaf ``1 + j``: SHA-256 of checkpoint ``j`` (the exact training state,
  parameters and momentum, after ``j * k`` steps).

The root, signed by the provider, is what goes on a ledger. The prover
keeps the lossless transcript on disk; the verifier receives only the
header, three Merkle paths, and the checkpoints of the segments it
challenges (:meth:`Transcript.open`).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcompute.core.hashing import canonical_json
from vcompute.core.merkle import MerkleTree
from vcompute.workloads.training.spec import decode_state, flat_params

__all__ = ["Transcript", "TranscriptError", "METRICS", "update_metrics", "checkpoint_digest",
           "HEADER_VERSION"]

#: Update-size metrics declared per segment, in column order.
METRICS = ("l1", "l2", "linf", "cos")
#: Version tag of the header format.
HEADER_VERSION = "vcompute-pol-v1"
_FILE_MAGIC = b"VCPOLTR1"


class TranscriptError(ValueError):
    """A transcript (file, header or opening) that is malformed."""


def checkpoint_digest(ckpt: bytes) -> bytes:
    """The 32-byte leaf value of a checkpoint: SHA-256 of its bytes."""
    return hashlib.sha256(bytes(ckpt)).digest()


def update_metrics(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Distances between consecutive parameter vectors ``a`` -> ``b``: l1, l2, linf, cos.

    The cosine distance is ``1 - <a, b> / (|a| |b|)`` between the two
    parameter vectors, computed in float64 and clipped to ``[0, 2]`` (the
    reference implementation computed it on the wrong quantities).

    Example:
        >>> update_metrics(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
        [2.0, 1.4142135623730951, 1.0, 1.0]
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = b - a
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    cos = 0.0 if na == 0 or nb == 0 else float(np.clip(1.0 - float(a @ b) / (na * nb), 0.0, 2.0))
    return [float(np.abs(d).sum()), float(np.linalg.norm(d)), float(np.abs(d).max(initial=0.0)), cos]


@dataclass
class Transcript:
    """A prover's lossless transcript and its Merkle commitment.

    Args:
        header: the header dict (see the module docstring).
        checkpoints: encoded checkpoints ``0..C`` (:func:`encode_state`).
        dataset: the data the prover trained on, if it ships it on request
            (only reference-style verifiers, which do not bind the dataset
            to the job, ask for it).
    """

    header: dict[str, Any]
    checkpoints: list[bytes]
    dataset: tuple[np.ndarray, np.ndarray] | None = None
    _tree: MerkleTree | None = field(default=None, repr=False)

    @property
    def header_bytes(self) -> bytes:
        """The canonical JSON of the header (leaf 0)."""
        return canonical_json(self.header)

    @property
    def tree(self) -> MerkleTree:
        """The Merkle tree over header and checkpoint digests."""
        if self._tree is None:
            self._tree = MerkleTree([self.header_bytes] + [checkpoint_digest(c) for c in self.checkpoints])
        return self._tree

    @property
    def root(self) -> bytes:
        """The 32-byte commitment."""
        return self.tree.root

    @property
    def n_leaves(self) -> int:
        """Leaves in the tree: 1 + number of checkpoints."""
        return 1 + len(self.checkpoints)

    @property
    def nbytes(self) -> int:
        """Bytes of the full transcript (header + every checkpoint): what a reference verifier downloads."""
        return len(self.header_bytes) + sum(len(c) for c in self.checkpoints)

    def commitment_evidence(self) -> dict[str, Any]:
        """What the prover posts with its claim: root, header and the init/final Merkle paths."""
        t = self.tree
        return {"root": t.root, "n_leaves": self.n_leaves, "header": self.header_bytes,
                "header_proof": t.proof(0), "init_proof": t.proof(1), "final_proof": t.proof(self.n_leaves - 1)}

    def open(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a verifier's challenge.

        Requests: ``{"segment": j}`` -> checkpoints ``j`` and ``j+1`` with their
        Merkle paths (with ``"end": "digest"``: only the digest of ``j+1``); ``{"checkpoints": [i, ...]}`` -> those checkpoints with
        paths; ``{"dataset": True}`` -> the data the prover trained on.

        With ``"compress": "lzma"`` in the request, checkpoint bytes travel
        lzma-compressed (``"codec": "lzma"`` in the answer).

        Raises:
            TranscriptError: for a request it cannot answer.
        """
        out = self._open(request)
        if request.get("compress") == "lzma":
            import lzma

            for key in ("start", "end"):
                if key in out:
                    out[key] = lzma.compress(out[key], preset=6)
            if "checkpoints" in out:
                out["checkpoints"] = [lzma.compress(c, preset=6) for c in out["checkpoints"]]
            out["codec"] = "lzma"
        return out

    def _open(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if "segment" in request:
            j = int(request["segment"])
            if not 0 <= j < len(self.checkpoints) - 1:
                raise TranscriptError(f"no segment {j}")
            t = self.tree
            out = {"start": self.checkpoints[j], "start_proof": t.proof(1 + j), "end_proof": t.proof(2 + j)}
            if request.get("end") == "digest":
                out["end_digest"] = checkpoint_digest(self.checkpoints[j + 1])
            else:
                out["end"] = self.checkpoints[j + 1]
            return out
        if "checkpoints" in request:
            idx = [int(i) for i in request["checkpoints"]]
            return {"checkpoints": [self.checkpoints[i] for i in idx],
                    "proofs": [self.tree.proof(1 + i) for i in idx]}
        if request.get("dataset") and self.dataset is not None:
            return {"x": self.dataset[0], "y": self.dataset[1]}
        raise TranscriptError(f"cannot answer request {dict(request)!r}")

    def segment_metrics(self) -> list[list[float]]:
        """Update-size metrics of each segment, recomputed from the checkpoints."""
        params = [flat_params(decode_state(c)[1]) for c in self.checkpoints]
        return [update_metrics(params[j], params[j + 1]) for j in range(len(params) - 1)]

    # -- lossless storage ------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The transcript file: magic, header, then length-prefixed checkpoints."""
        hb = self.header_bytes
        parts = [_FILE_MAGIC, struct.pack("<QQ", len(hb), len(self.checkpoints)), hb]
        for c in self.checkpoints:
            parts += [struct.pack("<Q", len(c)), c]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Transcript:
        """Parse :meth:`to_bytes` output.

        Raises:
            TranscriptError: on truncated or malformed data.
        """
        try:
            if data[:8] != _FILE_MAGIC:
                raise TranscriptError("not a transcript file (bad magic bytes)")
            hlen, n = struct.unpack("<QQ", data[8:24])
            off = 24 + hlen
            if off > len(data):
                raise TranscriptError("transcript truncated inside the header")
            header = json.loads(data[24:off])
            ckpts = []
            for i in range(n):
                if off + 8 > len(data):
                    raise TranscriptError(f"transcript truncated before checkpoint {i} of {n}")
                (ln,) = struct.unpack("<Q", data[off:off + 8])
                off += 8
                if off + ln > len(data):
                    raise TranscriptError(f"transcript truncated inside checkpoint {i} of {n}")
                ckpts.append(bytes(data[off:off + ln]))
                off += ln
            if off != len(data):
                raise TranscriptError(f"{len(data) - off} trailing bytes after the last checkpoint")
            return cls(header, ckpts)
        except TranscriptError:
            raise
        except Exception as e:
            raise TranscriptError(f"malformed transcript: {type(e).__name__}: {e}") from None

    def save(self, path: str | Path) -> Path:
        """Write the lossless transcript to ``path``."""
        p = Path(path)
        p.write_bytes(self.to_bytes())
        return p

    @classmethod
    def load(cls, path: str | Path) -> Transcript:
        """Read a transcript written by :meth:`save`.

        Raises:
            TranscriptError: if the file is truncated or malformed.
        """
        return cls.from_bytes(Path(path).read_bytes())
