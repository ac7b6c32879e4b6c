"""Verification schemes behind one small protocol.

``import vcompute.verify`` needs numpy only: schemes that use torch, JAX or
cryptography import them when they run.

Example:
    >>> from vcompute.verify import Freivalds
    >>> import numpy as np
    >>> a = np.ones((4, 4))
    >>> Freivalds(rounds=3).check(a, a, a @ a, seed=0).accepted
    True
"""

from vcompute.core.registry import Registry
from vcompute.core.types import Claim, Cost, EvidenceSpec, Job, Verdict
from vcompute.verify.audit import Audit
from vcompute.verify.base import Misuse, Scheme, Verifier, VerifyContext
from vcompute.verify.freivalds import Freivalds
from vcompute.verify.inference import GenerationVerifier
from vcompute.trust.policies import POLICIES, create_policy
from vcompute.verify.replication import Replication
from vcompute.verify.replication.spotcheck import KnownAnswers, SpotCheck

#: Verifiers by name; third-party packages add more through the
#: ``vcompute.verifiers`` entry-point group.
VERIFIERS: Registry = Registry("verifier", group="vcompute.verifiers")
VERIFIERS.register("freivalds", Freivalds)
VERIFIERS.register("generate", "vcompute.verify.inference:GenerationVerifier")
VERIFIERS.register("model", "vcompute.verify.freivalds.model.job:ModelVerifier")
VERIFIERS.register("pol", "vcompute.verify.pol:PoLVerifier")
VERIFIERS.register("replication", "vcompute.verify.replication:Replication")
VERIFIERS.register("spotcheck", "vcompute.verify.replication.spotcheck:SpotCheck")


def create_verifier(name: str, **kwargs):
    """Instantiate the verifier registered as ``name`` with keyword arguments.

    Raises:
        UnknownPluginError: if no verifier has that name (the message lists the known ones).
    """
    return VERIFIERS.create(name, **kwargs)


__all__ = [
    "VERIFIERS",
    "Audit",
    "Claim",
    "Cost",
    "EvidenceSpec",
    "Freivalds",
    "GenerationVerifier",
    "Job",
    "KnownAnswers",
    "Misuse",
    "POLICIES",
    "Replication",
    "Scheme",
    "SpotCheck",
    "Verdict",
    "Verifier",
    "VerifyContext",
    "create_policy",
    "create_verifier",
]
