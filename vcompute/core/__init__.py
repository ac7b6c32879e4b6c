"""Core vocabulary: jobs, claims, verdicts, costs; arrays, hashing, registries.

Everything here needs numpy only (signing imports pycryptodome on use).
"""

from vcompute.core.arrays import BACKENDS, backend_of, from_numpy, namespace, to_numpy
from vcompute.core.hashing import canonical_json, content_hash
from vcompute.core.merkle import MerkleTree, verify_proof
from vcompute.core.registry import Registry, UnknownPluginError
from vcompute.core.types import Blame, Claim, Cost, EvidenceSpec, Job, Verdict

__all__ = [
    "BACKENDS",
    "Blame",
    "Claim",
    "Cost",
    "EvidenceSpec",
    "Job",
    "MerkleTree",
    "Registry",
    "UnknownPluginError",
    "Verdict",
    "backend_of",
    "canonical_json",
    "content_hash",
    "from_numpy",
    "namespace",
    "to_numpy",
    "verify_proof",
]
