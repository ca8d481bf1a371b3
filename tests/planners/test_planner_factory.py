"""planners.factory: the one place a planner is made from its kind's name, for every surface."""

from __future__ import annotations

import pytest

from planners import ActionPlanner, FunctionCallingPlanner, SequentialPlanner
from planners.factory import (
    DEFAULT_PLANNER,
    PLANNER_KINDS,
    UnknownPlannerError,
    create_planner,
    planner_kind,
    proposes_plan,
)

MADE = {"sequential": SequentialPlanner, "action": ActionPlanner, "function-calling": FunctionCallingPlanner}


def test_the_kinds_are_the_three_planners_and_sequential_is_the_default() -> None:
    assert PLANNER_KINDS == ("sequential", "action", "function-calling")
    assert DEFAULT_PLANNER == "sequential"


@pytest.mark.parametrize("kind", PLANNER_KINDS)
def test_each_kind_makes_its_planner_with_the_options_passed_on(kind: str, kernel) -> None:
    planner = create_planner(kind, kernel, excluded=["Time"], max_functions=7)
    assert type(planner) is MADE[kind]
    assert planner.max_functions == 7
    offered = planner.catalogue.names
    assert "Math.add" in offered and not any(name.startswith("Time.") for name in offered)
    assert proposes_plan(kind) is (kind != "function-calling")


@pytest.mark.parametrize("kind", PLANNER_KINDS)
def test_none_leaves_each_planners_own_defaults(kind: str, kernel) -> None:
    planner = create_planner(kind, kernel)
    default = MADE[kind](kernel)
    assert planner.max_functions == default.max_functions
    if kind != "function-calling":
        assert planner.max_repairs == default.max_repairs  # type: ignore[union-attr]


def test_the_option_of_each_family_reaches_it_and_is_refused_by_the_other(kernel) -> None:
    def approve(request: object) -> bool:
        return True

    assert create_planner("sequential", kernel, max_repairs=1).max_repairs == 1  # type: ignore[union-attr]
    assert create_planner("function-calling", kernel, approve_call=approve).approve_call is approve  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="max_repairs"):
        create_planner("function-calling", kernel, max_repairs=1)
    with pytest.raises(ValueError, match="approve_call"):
        create_planner("action", kernel, approve_call=approve)


@pytest.mark.parametrize("name", ["magic", "function_calling", "Sequential", ""])
def test_an_unknown_kind_is_one_line_listing_the_kinds(name: str, kernel) -> None:
    for attempt in (lambda: planner_kind(name), lambda: proposes_plan(name), lambda: create_planner(name, kernel)):
        with pytest.raises(UnknownPlannerError) as raised:
            attempt()
        message = str(raised.value)
        assert "\n" not in message and repr(name) in message
        assert "use one of sequential, action, function-calling" in message
        assert raised.value.exit_code == 2  # a UsageError: the CLI's usage exit code, a 400 on the server
