"""Experiment tasks: what one run of an experiment does.

A task is a class with a pydantic ``Params`` model (unknown keys are an
error) and a ``run(params, seed) -> dict`` method returning flat metrics
(numbers or short strings). Configs name a task by its registry name;
``[params]`` and ``[grid]`` fill its ``Params``. Third-party tasks come in
through the ``vcompute.tasks`` entry-point group.
"""

from vcompute.core.registry import Registry
from vcompute.experiment.tasks.base import Task

#: Tasks by name (entry-point group ``vcompute.tasks``).
TASKS: Registry = Registry("task", group="vcompute.tasks")

# Built-ins are registered by path so that listing them imports nothing heavy.
TASKS.register("freivalds.detection", "vcompute.experiment.tasks.freivalds:FreivaldsDetection")
TASKS.register("synthetic.burn", "vcompute.experiment.tasks.synthetic:Burn")

__all__ = ["TASKS", "Task"]
