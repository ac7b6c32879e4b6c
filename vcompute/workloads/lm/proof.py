"""Activation commitments of a generation: the proof format and how a provider builds it.

Per chunk of :data:`CHUNK` generated tokens, the provider takes the top
entries (by magnitude) of each token's last hidden state at the job's
precision, reads their bit patterns as integers and commits to them with the
polynomial of degree < k over a prime field that interpolates
``(flat index, bits)`` at those k entries (TOPLOC, Ong et al. 2025). Only
the k coefficients travel: the verifier evaluates the polynomial at the
indices of *its* recomputed top entries and gets back the committed bits
wherever both chose the same entry. Differences from TOPLOC: the entries are
taken per token (each token of a chunk contributes), the values keep the
job's precision (float32 bits in a 32-bit field, not bf16 in a 16-bit one)
and the proof is bound to the job and signed.

Layout (little-endian)::

    b"VG" | version u8 | precision code u8 | k u8 | chunk u8 | Ed25519 signature (64 B) | coefficients

with ``ceil(n_tokens / chunk)`` blocks of k coefficients, 4 bytes each at
float32 and 2 bytes at bf16/fp16 (240 bytes per chunk either way). The
signature covers a domain tag, :func:`binding_digest` (prompt, tokens,
model hash, sampling parameters, precision, provider key) and the rest of
the proof.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CHUNK", "FIELDS", "HEADER_BYTES", "ProofParams", "binding_digest", "build_proof", "bits_to_float",
           "evaluate", "interpolate", "parse_proof", "select_entries", "signed_message", "ParsedProof"]

#: Generated tokens per committed chunk.
CHUNK = 32
VERSION = 1
MAGIC = b"VG"
#: Bytes before the coefficients: the 6-byte header and the 64-byte signature.
HEADER_BYTES = 6 + 64
_DOMAIN = b"vcompute/generate-proof/v1\0"


@dataclass(frozen=True)
class ProofParams:
    """Commitment parameters of one precision.

    Attributes:
        code: the precision's byte in the header.
        k: committed entries per chunk.
        prime: the field's modulus (above every bit pattern of a finite value).
        coef_bytes: bytes per coefficient.
        bits: bit width of one value.
    """

    code: int
    k: int
    prime: int
    coef_bytes: int
    bits: int


#: Per precision: fp32 values need a 32-bit field (p = 2^32 - 5), 16-bit formats fit p = 65521.
FIELDS: dict[str, ProofParams] = {
    "float32": ProofParams(0, 60, 4294967291, 4, 32),
    "bfloat16": ProofParams(1, 120, 65521, 2, 16),
    "float16": ProofParams(2, 120, 65521, 2, 16),
}
_BY_CODE = {p.code: name for name, p in FIELDS.items()}


def bits_to_float(bits: np.ndarray, precision: str) -> np.ndarray:
    """Float32 values of bit patterns (uint32 for float32, uint16 below it)."""
    b = np.asarray(bits)
    if precision == "float32":
        return b.astype(np.uint32).view(np.float32)
    if precision == "bfloat16":
        return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return b.astype(np.uint16).view(np.float16).astype(np.float32)


def select_entries(values: np.ndarray, k: int) -> np.ndarray:
    """Flat indices (``t * d + j``) of the top entries by magnitude, spread over the chunk's tokens.

    Token ``t`` of a ``c``-token chunk gets ``k // c`` entries plus one if
    ``t < k % c``; ties go to the lower index. Returned sorted.
    """
    v = np.abs(np.asarray(values, dtype=np.float32))
    v = np.where(np.isnan(v), np.float32(np.inf), v)  # a NaN is never hidden below the cut
    c, d = v.shape
    if c == 0 or d == 0:
        return np.zeros(0, dtype=np.int64)
    m = np.minimum(d, k // c + (np.arange(c) < k % c))  # entries of each token
    # The first m[t] of row t in a stable descending sort, without sorting the row: every entry above the
    # row's m-th largest value, then the lowest-indexed entries equal to it until there are m.
    kth = np.unique(np.clip(m - 1, 0, d - 1))
    thr = np.partition(v, d - 1 - kth, axis=1)[np.arange(c), d - 1 - np.clip(m - 1, 0, d - 1)]  # m-th largest
    above = v > thr[:, None]
    tied = v == thr[:, None]
    room = m - above.sum(axis=1)  # how many of the ties each row still takes
    take = above | (tied & (np.cumsum(tied, axis=1) <= room[:, None]))
    take[m == 0] = False
    return np.flatnonzero(take).astype(np.int64)  # row-major: already sorted


def _mulmod(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    return (a * b) % np.uint64(p)  # a, b < p < 2^32: the product fits in uint64


def _inv(a: np.ndarray, p: int) -> np.ndarray:
    result = np.ones_like(a)
    base = a % np.uint64(p)
    e = p - 2
    while e:
        if e & 1:
            result = _mulmod(result, base, p)
        base = _mulmod(base, base, p)
        e >>= 1
    return result


def interpolate(xs: np.ndarray, ys: np.ndarray, p: int) -> np.ndarray:
    """Coefficients (low to high, uint64) of the polynomial of degree < len(xs) through ``(xs, ys)`` mod ``p``.

    Example:
        >>> c = interpolate(np.array([1, 2, 3]), np.array([5, 7, 11]), 65521)
        >>> evaluate(c, np.array([1, 2, 3]), 65521).tolist()
        [5, 7, 11]
    """
    P = np.uint64(p)
    x = np.asarray(xs, dtype=np.uint64) % P
    c = np.asarray(ys, dtype=np.uint64) % P
    k = x.shape[0]
    # every divided difference divides by some x[a] - x[b] (a > b): invert them all in one vectorised
    # exponentiation instead of one per step (the per-step inversions dominated a provider's proving time)
    lo, hi = np.triu_indices(k, 1)
    inv = np.zeros((k, k), dtype=np.uint64)
    inv[lo, hi] = _inv((x[hi] + P - x[lo]) % P, p)  # inv[i, i + j] = 1 / (x[i + j] - x[i])
    for j in range(1, k):
        num = (c[j:] + P - c[j - 1:-1]) % P
        c[j:] = _mulmod(num, inv[np.arange(k - j), np.arange(j, k)], p)
    poly = np.array([c[k - 1]], dtype=np.uint64) if k else np.zeros(0, np.uint64)
    for i in range(k - 2, -1, -1):
        new = np.zeros(poly.shape[0] + 1, dtype=np.uint64)
        new[1:] = poly
        new[:-1] = (new[:-1] + P - _mulmod(poly, np.full_like(poly, x[i]), p)) % P
        new[0] = (new[0] + c[i]) % P
        poly = new
    return poly


def evaluate(coeffs: np.ndarray, xs: np.ndarray, p: int) -> np.ndarray:
    """The polynomial with ``coeffs`` (low to high) at ``xs``, mod ``p`` (uint64).

    ``coeffs`` ``[..., k]`` and ``xs`` ``[..., m]`` may carry leading batch axes (one polynomial per row).
    """
    P = np.uint64(p)
    x = np.asarray(xs, dtype=np.uint64) % P
    c = np.asarray(coeffs, dtype=np.uint64)
    acc = np.zeros_like(x)
    for j in range(c.shape[-1] - 1, -1, -1):
        acc = (_mulmod(acc, x, p) + c[..., j, None]) % P
    return acc


def binding_digest(*, prompt: np.ndarray, tokens: np.ndarray, model_hash: str, temperature: float,
                   top_p: float, seed: int, precision: str, provider: bytes) -> bytes:
    """SHA-256 binding a proof to its job, its tokens and its provider's public key."""
    body = {
        "prompt": hashlib.sha256(np.ascontiguousarray(prompt, dtype="<i8").tobytes()).hexdigest(),
        "tokens": hashlib.sha256(np.ascontiguousarray(tokens, dtype="<i8").tobytes()).hexdigest(),
        "n_prompt": int(len(prompt)), "n_tokens": int(len(tokens)),
        "model": str(model_hash), "temperature": float(temperature), "top_p": float(top_p), "seed": int(seed),
        "precision": precision, "provider": bytes(provider).hex(),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()


def signed_message(binding: bytes, header: bytes, payload: bytes) -> bytes:
    """The bytes a provider signs: domain tag, binding digest, header and coefficients."""
    return _DOMAIN + binding + header + payload


def build_proof(hidden_bits: np.ndarray, *, precision: str, binding: bytes, key) -> bytes:
    """The signed proof of one generation.

    Args:
        hidden_bits: bit patterns of the last hidden states of the generated tokens, ``[n_tokens, d]``
            (uint32 at float32, uint16 at 16-bit precisions).
        precision: the job's precision (a key of :data:`FIELDS`).
        binding: :func:`binding_digest` of the job.
        key: the provider's :class:`~vcompute.core.signing.SigningKey`.
    """
    fp = FIELDS[precision]
    n, d = hidden_bits.shape
    header = MAGIC + bytes([VERSION, fp.code, fp.k, CHUNK])
    dt = "<u4" if fp.coef_bytes == 4 else "<u2"
    blocks = []
    for s in range(0, n, CHUNK):
        bits = hidden_bits[s:s + CHUNK]
        idx = select_entries(bits_to_float(bits, precision), fp.k)
        coeffs = interpolate(idx, bits.reshape(-1)[idx].astype(np.uint64), fp.prime)
        blocks.append(np.pad(coeffs, (0, fp.k - coeffs.shape[0])).astype(dt).tobytes())
    payload = b"".join(blocks)
    return header + key.sign(signed_message(binding, header, payload)) + payload


@dataclass(frozen=True)
class ParsedProof:
    """A proof whose layout is valid.

    Attributes:
        precision: the precision it claims.
        params: the commitment parameters of that precision.
        header: its first 6 bytes.
        signature: the 64-byte signature.
        payload: the coefficient bytes.
        coeffs: coefficients, ``[n_chunks, k]`` uint64.
    """

    precision: str
    params: ProofParams
    header: bytes
    signature: bytes
    payload: bytes
    coeffs: np.ndarray


def parse_proof(proof: bytes, n_tokens: int) -> ParsedProof | str:
    """The parsed proof for ``n_tokens`` tokens, or a reason why it is malformed (never raises)."""
    if len(proof) < HEADER_BYTES:
        return f"proof is {len(proof)} bytes, shorter than its {HEADER_BYTES}-byte header"
    if proof[:2] != MAGIC or proof[2] != VERSION:
        return "proof does not start with the generate-proof magic and version"
    if proof[3] not in _BY_CODE:
        return f"proof names an unknown precision code {proof[3]}"
    precision = _BY_CODE[proof[3]]
    fp = FIELDS[precision]
    if proof[4] != fp.k or proof[5] != CHUNK:
        return f"proof uses k={proof[4]}, chunk={proof[5]}; the {precision} format is k={fp.k}, chunk={CHUNK}"
    n_chunks = math.ceil(n_tokens / CHUNK)
    want = HEADER_BYTES + n_chunks * fp.k * fp.coef_bytes
    if len(proof) != want:
        return f"proof is {len(proof)} bytes; {n_tokens} tokens at {precision} need {want}"
    payload = proof[HEADER_BYTES:]
    dt = "<u4" if fp.coef_bytes == 4 else "<u2"
    coeffs = np.frombuffer(payload, dtype=dt).astype(np.uint64).reshape(n_chunks, fp.k)
    if bool((coeffs >= fp.prime).any()):
        return "proof has a coefficient outside the field"
    return ParsedProof(precision, fp, proof[:6], proof[6:HEADER_BYTES], payload, coeffs)

