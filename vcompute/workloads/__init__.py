"""Workloads (jobs) and the provider behaviours that execute them."""

from vcompute.workloads.behaviours import BEHAVIOURS, behaviour, execute
from vcompute.workloads.matmul import honest_matmul, make_matmul_job, matmul_flops

__all__ = ["BEHAVIOURS", "behaviour", "execute", "honest_matmul", "make_matmul_job", "matmul_flops"]
