"""Job kinds as plugins: the :class:`JobKind` base and the :data:`KINDS` registry.

Built-in kinds (registered by ``"module:attr"`` path, so listing them
imports nothing heavy):

============  =============================================  ==================================
kind          job                                            default verifiers
============  =============================================  ==================================
``matmul``    ``a @ b`` (:mod:`vcompute.workloads.matmul`)   ``freivalds``, ``spotcheck``, ``replication``
``forward``   an MLP forward pass (:mod:`~.forward`)         ``model``, ``replication``
``generate``  LM generation (:mod:`vcompute.workloads.lm`)   ``generate``
``train``     a PoL training run (:mod:`~.train`)            ``pol``
============  =============================================  ==================================

Third-party kinds come in through the ``vcompute.job_kinds`` entry-point
group (an entry names a :class:`JobKind` subclass or instance); the market
runs them with no change (``consumers.mix = [{kind = "mykind", ...}]``).

The old market names ``inference`` and ``training`` are accepted as
aliases of ``forward`` and ``train`` (:func:`canonical_kind`).

Example:
    >>> "matmul" in KINDS.names(), canonical_kind("inference")
    (True, 'forward')
    >>> get_kind("matmul").behaviour_for("skip_k")
    'skip_k'
"""

from __future__ import annotations

from typing import Any

from vcompute.core.registry import Registry
from vcompute.core.types import Job
from vcompute.workloads.kinds.base import MARKET_CHEATS, JobKind

__all__ = ["KINDS", "KIND_ALIASES", "JobKind", "MARKET_CHEATS", "canonical_kind", "get_kind", "kind_of_job"]

#: Job kinds by name (entry-point group ``vcompute.job_kinds``).
KINDS: Registry = Registry("job kind", group="vcompute.job_kinds")
KINDS.register("matmul", "vcompute.workloads.kinds.matmul:MatmulKind")
KINDS.register("forward", "vcompute.workloads.kinds.forward:ForwardKind")
KINDS.register("generate", "vcompute.workloads.kinds.generate:GenerateKind")
KINDS.register("train", "vcompute.workloads.kinds.train:TrainKind")

#: Deprecated kind names of the market's job mix -> the registered kind.
KIND_ALIASES = {"inference": "forward", "training": "train"}

_INSTANCES: dict[str, JobKind] = {}


def canonical_kind(name: str) -> str:
    """The registered kind ``name`` stands for (an alias resolved).

    Raises:
        UnknownPluginError: for an unknown kind (the message lists the known ones and the aliases).
    """
    if type(name) is not str:
        raise TypeError(f"a job kind name must be a str, got {type(name).__name__}")
    name = KIND_ALIASES.get(name, name)
    KINDS.get(name)  # raises, listing the known kinds
    return name


def get_kind(name: str) -> JobKind:
    """The :class:`JobKind` registered as ``name`` (or an alias), instantiated once.

    Raises:
        UnknownPluginError: for an unknown kind.
        TypeError: if the entry is neither a JobKind subclass nor an instance.
    """
    name = canonical_kind(name)
    cached = _INSTANCES.get(name)
    obj = KINDS.get(name)
    if cached is not None and (cached is obj or type(cached) is obj):
        return cached
    kind = obj() if isinstance(obj, type) and issubclass(obj, JobKind) else obj
    if not isinstance(kind, JobKind):
        raise TypeError(f"job kind {name!r} must be a JobKind subclass or instance, got {type(obj).__name__}")
    _INSTANCES[name] = kind
    return kind


def kind_of_job(job: Any) -> JobKind | None:
    """The registered kind whose jobs carry ``job.kind`` (None if none does)."""
    if not isinstance(job, Job):
        return None
    for name in KINDS.names():
        try:
            k = get_kind(name)
        except (ImportError, TypeError):
            continue
        if (k.job_kind or k.name) == job.kind:
            return k
    return None
