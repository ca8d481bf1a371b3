"""kernel_app.commands.syntax: reading a slash command's arguments, as the REPL, Teams and chat-copilot do."""

from __future__ import annotations

import pytest

from kernel_app.base.errors import UsageError
from kernel_app.commands.syntax import (
    edited_plan,
    plan_command,
    plan_options,
    resolve_results,
    result_name,
    split_first,
    variables_and_text,
)
from planners import Plan


def test_a_result_name_ends_the_command() -> None:
    assert result_name("Math.add a=1 b=2 > sum") == ("Math.add a=1 b=2", "sum")
    assert result_name("a > b > c") == ("a > b", "c")
    assert result_name("2 > 1 is true") == ("2 > 1 is true", None)


def test_results_are_resolved_or_named_as_missing() -> None:
    assert resolve_results("shift $swot to $last", {"swot": "S", "last": "L"}) == "shift S to L"
    with pytest.raises(UsageError, match=r"no result named \$nope: .*known: \$last"):
        resolve_results("$nope", {"last": "L"})


def test_plan_options_and_the_whole_plan_command() -> None:
    options, goal = plan_options("--planner action --exclude Time,Writer --exclude=Text --max-functions 3 Add 1 and 2")
    assert options == {"planner": "action", "exclude": ["Time", "Writer", "Text"], "max_functions": 3}
    assert goal == "Add 1 and 2"
    assert plan_command("/plan --planner=function-calling Save it > saved") == (
        {"planner": "function-calling", "exclude": [], "max_functions": None},
        "Save it",
        "saved",
    )
    assert plan_command("/plan")[1] == ""  # no goal: the surface says the usage
    for bad, said in [
        ("--planner magic Do it", "unknown planner 'magic': use one of sequential, action, function-calling"),
        ("--max-functions 0 Do it", "/plan --max-functions takes a positive number, not '0'"),
        ("--colour red Do it", "unknown /plan option --colour: use --planner, --exclude or --max-functions"),
        ("--exclude", "/plan --exclude needs a value"),
    ]:
        with pytest.raises(UsageError) as raised:
            plan_options(bad)
        assert str(raised.value) == said


def test_variables_then_text() -> None:
    variables, text = variables_and_text('language="Brazilian Portuguese" n=3 Good morning, all')
    assert (variables, text) == ({"language": "Brazilian Portuguese", "n": "3"}, "Good morning, all")
    variables, text = variables_and_text("--var-json items='[1, 2]' the rest")
    assert (variables, text) == ({"items": [1, 2]}, "the rest")


def test_a_step_edit_sets_json_values_where_they_parse() -> None:
    plan = Plan.from_dict({"steps": [{"function": "Math.add", "args": {"a": 1, "b": 2}, "output": "sum"}]})
    edited = edited_plan(plan, '1 a=5 note="five"')
    assert edited.steps[0].args == {"a": 5, "b": 2, "note": "five"} and plan.steps[0].args["a"] == 1
    for bad in ("2 a=5", "one a=5", "1 just text"):
        with pytest.raises(UsageError, match="edit a step as STEP name=value"):
            edited_plan(plan, bad)


def test_the_first_word_may_be_quoted() -> None:
    assert split_first("SWOT How do we grow?") == ("SWOT", "How do we grow?")
    assert split_first('"bakery notes" When do we open?') == ("bakery notes", "When do we open?")
    with pytest.raises(ValueError):
        split_first("SWOT")
