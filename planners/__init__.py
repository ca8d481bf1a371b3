"""Planners: from a natural-language goal to a validated plan of plugin calls.

Reserved public names (filled by the planner work): ``Plan``, ``PlanStep``, ``SequentialPlanner``,
``ActionPlanner``, ``FunctionCallingPlanner``, ``PlanExecutor``, ``PlanningError``.
"""

__all__: list[str] = []
