"""A plan run as OpenTelemetry sees it: one trace, the run's span over each step's function, and under a
prompt function its model call."""

from __future__ import annotations

import pytest

from kernel_app.base import telemetry
from planners import Plan, PlanExecutionError, PlanExecutor, PlanStep
from tests.support.telemetry import parent_of, recording


async def test_a_plan_run_is_one_trace_with_its_steps_as_children(kernel) -> None:
    plan = Plan(
        goal="sum, then summarize",
        steps=[
            PlanStep(function="Math.add", args={"a": 1, "b": 2}, output="sum"),
            PlanStep(function="Writer.Summarize", args={"input": "$sum"}, output="summary"),
        ],
    )
    with recording() as recorded:
        result = await PlanExecutor(kernel).execute(plan)
    assert result.result == "scripted function output"
    (run,) = recorded.named("invoke_agent")
    assert run.name == "invoke_agent kernel-app plan" and run.parent is None
    assert run.attributes[telemetry.OPERATION] == "invoke_agent" and run.attributes["kernel_app.plan.steps"] == 2
    tools = {s.attributes[telemetry.TOOL_NAME]: s for s in recorded.named("execute_tool")}
    assert set(tools) == {"Math.add", "Writer.Summarize"}
    assert all(parent_of(s) == run.context.span_id for s in tools.values())
    assert all(telemetry.TOOL_CALL_ID not in s.attributes for s in tools.values())  # no model asked for them
    (chat,) = recorded.named("chat ")
    assert parent_of(chat) == tools["Writer.Summarize"].context.span_id  # the prompt function's model call
    assert {s.context.trace_id for s in recorded.spans} == {run.context.trace_id}


async def test_a_failed_step_marks_its_span_and_the_run(kernel) -> None:
    plan = Plan(goal="divide", steps=[PlanStep(function="Math.divide", args={"a": 1, "b": 0}, output="q")])
    with recording() as recorded, pytest.raises(PlanExecutionError):
        await PlanExecutor(kernel).execute(plan)
    (step,) = recorded.named("execute_tool")
    (run,) = recorded.named("invoke_agent")
    assert step.status.status_code.name == "ERROR" and step.attributes[telemetry.ERROR_TYPE]
    assert run.status.status_code.name == "ERROR"


async def test_a_plan_run_names_its_user(kernel) -> None:
    plan = Plan(goal="sum", steps=[PlanStep(function="Math.add", args={"a": 1, "b": 2}, output="sum")])
    with recording() as recorded, telemetry.as_enduser("key:0123456789abcdef"):
        await PlanExecutor(kernel).execute(plan)
    (run,) = recorded.named("invoke_agent")
    assert run.attributes[telemetry.ENDUSER_ID] == "key:0123456789abcdef"
