"""The action planner: a goal → exactly one function call, or :class:`NoFunctionFits`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from planners.base import JsonPlanner


class ActionPlanner(JsonPlanner):
    """``await ActionPlanner(kernel).create_plan("What is the sum of 110 and 990?")`` → a one-step Plan.

    The answer has the plan's own form with one step; ``{"steps": [], "reason": ...}`` raises
    :class:`planners.errors.NoFunctionFits` (a PlanningError) carrying the model's reason.
    """

    single_step: ClassVar[bool] = True
    default_options: ClassVar[Mapping[str, Any]] = {"max_tokens": 400, "temperature": 0.0}
