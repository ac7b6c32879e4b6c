"""The task protocol every experiment run goes through."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

__all__ = ["Task", "TaskParams"]


class TaskParams(BaseModel):
    """Base for task parameter models: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class Task(Protocol):
    """One kind of experiment run.

    Attributes:
        Params: the pydantic model of the task's parameters.
        description: one line saying what a run measures.
        metrics: optional; every metric name ``run`` can return (the union over
            parameters). When set, configs naming another metric fail at
            validation, before running; without it they fail at report time.
    """

    Params: ClassVar[type[BaseModel]]
    description: ClassVar[str]

    def run(self, params: Any, seed: int) -> dict[str, Any]:
        """Execute one run with validated ``params`` and ``seed``; return flat metrics."""
        ...
