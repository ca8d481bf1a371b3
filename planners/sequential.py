"""The sequential planner: a goal → several steps, each output able to feed later steps."""

from __future__ import annotations

from typing import ClassVar

from planners.base import JsonPlanner


class SequentialPlanner(JsonPlanner):
    """``await SequentialPlanner(kernel, max_repairs=3, excluded=["Time"]).create_plan(goal)`` → a valid Plan.

    See :class:`planners.base.JsonPlanner` for the options and the guarantees.
    """

    single_step: ClassVar[bool] = False
