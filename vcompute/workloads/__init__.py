"""Workloads (jobs), their kinds and the provider behaviours that execute them.

Job kinds are plugins (:data:`~vcompute.workloads.kinds.KINDS`); provider
behaviours live in one registry keyed per kind
(:data:`~vcompute.workloads.kinds.behaviours.BEHAVIOURS`, re-exported here
for the deprecated flat API of :mod:`vcompute.workloads.behaviours`).
"""

from vcompute.workloads.behaviours import BEHAVIOURS, behaviour, execute
from vcompute.workloads.matmul import honest_matmul, make_matmul_job, matmul_flops

__all__ = ["BEHAVIOURS", "behaviour", "execute", "honest_matmul", "make_matmul_job", "matmul_flops"]
