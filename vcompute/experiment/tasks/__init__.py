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
TASKS.register("freivalds.model", "vcompute.experiment.tasks.freivalds:FreivaldsModel")
TASKS.register("pol.detection", "vcompute.experiment.tasks.pol:PoLDetection")
TASKS.register("pol.calibration", "vcompute.experiment.tasks.pol:PoLCalibration")
TASKS.register("inference.calibration", "vcompute.experiment.tasks.inference:InferenceCalibration")
TASKS.register("inference.detection", "vcompute.experiment.tasks.inference:InferenceDetection")
TASKS.register("inference.cost", "vcompute.experiment.tasks.inference:InferenceCost")
TASKS.register("inference.training", "vcompute.experiment.tasks.inference:InferenceTraining")
TASKS.register("inference.glue_cost", "vcompute.experiment.tasks.inference:InferenceGlueCost")
TASKS.register("inference.statistics", "vcompute.experiment.tasks.inference_statistics:InferenceStatistics")
TASKS.register("synthetic.burn", "vcompute.experiment.tasks.synthetic:Burn")
TASKS.register("market.run", "vcompute.experiment.tasks.market:MarketRun")
TASKS.register("market.hybrid", "vcompute.experiment.tasks.market:MarketHybrid")
TASKS.register("replication.voting", "vcompute.experiment.tasks.replication:MFirstVoting")
TASKS.register("replication.collusion", "vcompute.experiment.tasks.replication:ReplicationCollusion")
TASKS.register("replication.adaptive", "vcompute.experiment.tasks.replication:AdaptiveReplication")
TASKS.register("replication.credibility", "vcompute.experiment.tasks.replication:CredibilityVsVoting")
TASKS.register("spotcheck.identity", "vcompute.experiment.tasks.replication:SpotCheckIdentity")
TASKS.register("dispute.games", "vcompute.experiment.tasks.dispute:DisputeGames")
TASKS.register("dispute.operator", "vcompute.experiment.tasks.dispute_operator:DisputeOperator")

__all__ = ["TASKS", "Task"]
