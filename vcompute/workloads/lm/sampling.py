"""Seeded sampling whose random draw at each position is a function of (seed, position).

A sampled token is the Gumbel-max choice over the top-p nucleus:
``argmax_i in N (logit_i / T + g_i)``, where ``g_i = -log(-log u_i)`` and
``u_i`` is a counter-based uniform: SplitMix64 of ``(seed, position, i)``
(``position``: the token's index in the whole sequence, prompt included), so
the draws of any set of positions are computed at once, on any platform. That is an exact
sample of ``softmax(logits / T)`` restricted to the nucleus ``N`` (the
smallest set of most probable tokens holding at least ``top_p`` of the mass),
and a verifier replays it from the recomputed logits without any state of
the provider's. ``temperature=0`` is greedy decoding (the first argmax).

Example:
    >>> import numpy as np
    >>> logits = np.array([0.0, 2.0, 1.0])
    >>> sample(logits, temperature=0.0, top_p=1.0, seed=0, position=5)
    1
    >>> sample(logits, temperature=1.0, top_p=1.0, seed=0, position=5) == sample(
    ...     logits, temperature=1.0, top_p=1.0, seed=0, position=5)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SamplingParams", "gumbel", "nucleus_mass_before", "sample"]


@dataclass(frozen=True)
class SamplingParams:
    """Validated sampling parameters of a generation job.

    Attributes:
        temperature: 0 for greedy, else the softmax temperature.
        top_p: nucleus mass in (0, 1].
        seed: non-negative int seeding the per-position draws.

    Raises:
        TypeError: if a parameter has the wrong type (bools are not numbers here).
        ValueError: if a parameter is out of range.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise TypeError(f"{name} must be a number, got {type(v).__name__}")
            object.__setattr__(self, name, float(v))
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be finite and >= 0 (0 = greedy), got {self.temperature}")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        object.__setattr__(self, "seed", int(self.seed))
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")

    @property
    def greedy(self) -> bool:
        """Whether this is greedy decoding."""
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready form."""
        return {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser of every entry of ``z``, in place (``z`` is returned); wrapping uint64 arithmetic."""
    z += _GOLDEN
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def uniforms(seed: int, positions, vocab: int) -> np.ndarray:
    """Uniforms in (0, 1), float64 ``[len(positions), vocab]``: entry ``(p, i)`` depends only on (seed, p, i).

    Example:
        >>> bool((uniforms(3, [7], 4)[0] == uniforms(3, [5, 7], 4)[1]).all())
        True
    """
    pos = np.asarray(positions, dtype=np.uint64).reshape(-1, 1)
    # Each step in place on one [n, vocab] array (the same bits as the pure expression
    # splitmix(key ^ splitmix(counter)), without its temporaries: this runs once per verified generation).
    with np.errstate(over="ignore"):
        key = _splitmix64(np.array([seed], dtype=np.uint64))
        z = (pos << np.uint64(20)) + np.arange(vocab, dtype=np.uint64)[None, :]
        z = _splitmix64(z)
        z ^= key
        z = _splitmix64(z)
        z >>= np.uint64(11)
    u = z.view(np.float64)  # float64(z) + 0.5 written over z's own memory, entry by entry (same size, same strides)
    np.add(z, 0.5, out=u)
    u *= 2.0**-53
    return u


def gumbel(seed: int, positions, vocab: int) -> np.ndarray:
    """Gumbel noise (float64 ``[len(positions), vocab]``) of the draws at ``positions`` under ``seed``."""
    g = uniforms(seed, positions, vocab)
    np.log(g, out=g)  # -log(-log(u)), in place
    np.negative(g, out=g)
    np.log(g, out=g)
    return np.negative(g, out=g)


def nucleus_mass_before(z: np.ndarray) -> np.ndarray:
    """For each token, the probability mass of tokens ranked before it (by ``z`` desc, ties by index).

    Args:
        z: float64 scaled logits ``[vocab]``.
    """
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-z, kind="stable")
    before = np.empty_like(p)
    before[order] = np.cumsum(p[order]) - p[order]
    return before


def sample(logits: np.ndarray, *, temperature: float, top_p: float, seed: int, position: int) -> int:
    """The token the job's sampler draws at ``position`` from ``logits`` ``[vocab]``."""
    z = np.asarray(logits, dtype=np.float64)
    if temperature == 0.0:
        return int(np.argmax(z))
    z = z / temperature
    score = z + gumbel(seed, [position], z.shape[0])[0]
    if top_p < 1.0:
        score = np.where(nucleus_mass_before(z) < top_p, score, -np.inf)
    return int(np.argmax(score))
