"""The one place a planner is chosen by its kind's name: every surface (the CLI's ``plan``, the REPL's
``/plan``, REST's ``/v1/plans``, Teams, chat-copilot) asks here, so all accept the same kinds.

Two kinds propose a plan to approve before anything runs (``sequential``: several steps, each output
able to feed later ones; ``action``: exactly one call). ``function-calling`` has no plan to approve: the
model calls the functions as it goes, and ``approve_call`` decides each MODEL or WRITE call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import UsageError

if TYPE_CHECKING:
    from semantic_kernel import Kernel

    from planners.approval import ApproveCall
    from planners.base import JsonPlanner
    from planners.function_calling import FunctionCallingPlanner

SEQUENTIAL = "sequential"
ACTION = "action"
FUNCTION_CALLING = "function-calling"
PLANNER_KINDS = (SEQUENTIAL, ACTION, FUNCTION_CALLING)
DEFAULT_PLANNER = SEQUENTIAL


class UnknownPlannerError(UsageError):
    """A planner kind no surface knows; the message lists the kinds."""


def planner_kind(name: str) -> str:
    """``name`` checked against :data:`PLANNER_KINDS`; an unknown one is a one-line error listing them."""
    if name not in PLANNER_KINDS:
        raise UnknownPlannerError(f"unknown planner {name!r}: use one of {', '.join(PLANNER_KINDS)}")
    return name


def proposes_plan(kind: str) -> bool:
    """Whether the kind makes a plan to approve before anything runs (False: it calls functions as it goes)."""
    return planner_kind(kind) != FUNCTION_CALLING


def create_planner(
    kind: str,
    kernel: Kernel,
    *,
    excluded: Iterable[str] | None = None,
    max_functions: int | None = None,
    max_repairs: int | None = None,
    approve_call: ApproveCall | None = None,
) -> JsonPlanner | FunctionCallingPlanner:
    """The planner of ``kind`` over ``kernel``: ``await planner.create_plan(goal)`` for the kinds that
    :func:`proposes_plan`, ``await planner.run(goal)`` for ``function-calling``.

    None leaves a planner's own default (``max_functions``: 5 on the embedded model, else 30; 64 for
    function-calling). ``max_repairs`` is for the plan-making kinds, ``approve_call`` for function-calling
    (without it only READ functions run); each is refused with the other kind rather than ignored."""
    from planners.action import ActionPlanner
    from planners.function_calling import FunctionCallingPlanner
    from planners.sequential import SequentialPlanner

    kind = planner_kind(kind)
    excluded = list(excluded) if excluded else None
    if kind == FUNCTION_CALLING:
        if max_repairs is not None:
            raise ValueError("the function-calling planner makes no plan to repair: leave out max_repairs")
        options: dict[str, Any] = {"max_functions": max_functions} if max_functions is not None else {}
        return FunctionCallingPlanner(kernel, excluded=excluded, approve_call=approve_call, **options)
    if approve_call is not None:
        raise ValueError(f"the {kind} planner runs nothing while planning: approve_call is for function-calling")
    planner_class = ActionPlanner if kind == ACTION else SequentialPlanner
    repairs: dict[str, Any] = {"max_repairs": max_repairs} if max_repairs is not None else {}
    return planner_class(kernel, max_functions=max_functions, excluded=excluded, **repairs)
