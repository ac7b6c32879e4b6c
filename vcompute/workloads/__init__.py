"""Workloads (jobs) and the provider behaviours that execute them."""

from vcompute.workloads.behaviours import BEHAVIOURS, behaviour, execute
from vcompute.workloads.matmul import honest_matmul, make_matmul_job, matmul_flops

# Collusion and malformed-answer behaviours (issue 4), registered by path.
for _name in ("colluding", "nan_output", "wrong_shape"):
    BEHAVIOURS.register(_name, f"vcompute.workloads.collusion:{_name}")
del _name

__all__ = ["BEHAVIOURS", "behaviour", "execute", "honest_matmul", "make_matmul_job", "matmul_flops"]

# The generate job kind's provider behaviours (vcompute.workloads.lm.job), registered by path.
from vcompute.workloads.lm.job import GENERATE_BEHAVIOURS as _GEN  # noqa: E402

for _name, _path in _GEN.items():
    BEHAVIOURS.register(f"generate.{_name}", _path)
del _name, _path, _GEN
