"""The executor: references, concurrency over the dependency graph, timeouts, failures, approval."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import pytest
from semantic_kernel.functions import kernel_function

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from planners import (
    ExcludedFunctionError,
    FunctionCatalogue,
    Plan,
    PlanExecutionError,
    PlanExecutor,
    PlanRejectedError,
    PlanStep,
    StepTimeoutError,
    UnknownFunctionError,
)
from tests.support.spies import count_invocations


class SlowPlugin:
    """Native test functions that take time without using a CPU."""

    def __init__(self) -> None:
        self.finished: list[str] = []

    @kernel_function(name="wait", description="Wait, then return the label.")
    async def wait(
        self, label: Annotated[str, "what to return"], seconds: Annotated[float, "how long"] = 0.1
    ) -> Annotated[str, "the label"]:
        await asyncio.sleep(float(seconds))
        self.finished.append(label)
        return label

    @kernel_function(name="join", description="Join texts with '+'.")
    def join(self, a: str, b: str, c: str = "") -> str:
        return "+".join(part for part in (a, b, c) if part)


@pytest.fixture
def scripted() -> ScriptedChatCompletion:
    return ScriptedChatCompletion()


@pytest.fixture
def slow() -> SlowPlugin:
    return SlowPlugin()


@pytest.fixture
def kernel(scripted: ScriptedChatCompletion, slow: SlowPlugin):
    kernel = build_kernel(Settings(), chat_service=scripted).kernel
    kernel.add_plugin(slow, plugin_name="Slow")
    return kernel


def plan_of(*steps: tuple[str, dict, str]) -> Plan:
    return Plan(goal="test", steps=[PlanStep(function=f, args=a, output=o) for f, a, o in steps])


async def test_three_independent_steps_run_concurrently(kernel) -> None:
    plan = plan_of(
        ("Slow.wait", {"label": "a", "seconds": 0.1}, "a"),
        ("Slow.wait", {"label": "b", "seconds": 0.1}, "b"),
        ("Slow.wait", {"label": "c", "seconds": 0.1}, "c"),
    )
    executor = PlanExecutor(kernel)
    await executor.execute(plan)  # warm-up: first invocations pay one-off costs
    started = time.perf_counter()
    result = await executor.execute(plan)
    elapsed = time.perf_counter() - started
    assert result.outputs == {"a": "a", "b": "b", "c": "c"}
    assert all(0.09 <= s.seconds < 0.2 for s in result.steps)
    assert elapsed < 0.2, f"three 100 ms steps took {elapsed:.3f} s: not concurrent"


async def test_progress_is_reported_per_step_and_cannot_break_the_plan(kernel) -> None:
    plan = plan_of(
        ("Slow.wait", {"label": "a", "seconds": 0.01}, "a"),
        ("Slow.join", {"a": "$a", "b": "z"}, "joined"),
    )
    events: list[tuple[str, int, str, str | None]] = []

    def on_step(event, number, step, result) -> None:
        events.append((event, number, step.function, result.output if result else None))
        raise RuntimeError("a broken progress display")

    result = await PlanExecutor(kernel, on_step=on_step).execute(plan)
    assert result.result == "a+z"
    assert events == [
        ("started", 1, "Slow.wait", None),
        ("finished", 1, "Slow.wait", "a"),
        ("started", 2, "Slow.join", None),
        ("finished", 2, "Slow.join", "a+z"),
    ]


async def test_concurrency_can_be_limited(kernel) -> None:
    plan = plan_of(*[("Slow.wait", {"label": x, "seconds": 0.05}, x) for x in "abc"])
    started = time.perf_counter()
    await PlanExecutor(kernel, max_concurrency=1).execute(plan)
    assert time.perf_counter() - started >= 0.15


async def test_dependent_steps_wait_for_their_inputs(kernel, slow: SlowPlugin) -> None:
    plan = plan_of(
        ("Slow.wait", {"label": "slow", "seconds": 0.15}, "first"),
        ("Slow.wait", {"label": "fast", "seconds": 0.01}, "second"),
        ("Slow.join", {"a": "$first", "b": "$second", "c": "$$literal"}, "joined"),
        ("Text.upper", {"input": "$joined"}, "loud"),
    )
    result = await PlanExecutor(kernel).execute(plan)
    assert slow.finished == ["fast", "slow"]  # the independent fast step did not wait for the slow one
    assert result.outputs["joined"] == "slow+fast+$literal"
    assert result.result == "SLOW+FAST+$LITERAL"
    assert [s.step for s in result.steps] == [1, 2, 3, 4] and result.plan is plan
    assert result.to_dict()["result"] == result.result and result.to_dict()["steps"][0]["function"] == "Slow.wait"


async def test_input_variables_and_usage(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue("a summary in four words")
    plan = plan_of(("Writer.Summarize", {"input": "$input"}, "summary"), ("Text.length", {"input": "$summary"}, "n"))
    result = await PlanExecutor(kernel).execute(plan, {"input": "a long text about pizza"})
    assert "a long text about pizza" in scripted.requests[0].prompt
    assert result.result == "23"
    assert result.steps[0].usage.calls == 1 and result.steps[0].usage.completion_tokens == 5
    assert result.steps[1].usage.calls == 0 and result.usage.calls == 1


async def test_failure_names_the_step_and_keeps_finished_outputs(kernel, slow: SlowPlugin) -> None:
    plan = plan_of(
        ("Math.add", {"a": 1, "b": 2}, "three"),
        ("Math.divide", {"a": "$three", "b": 0}, "oops"),
        ("Slow.wait", {"label": "long", "seconds": 5}, "long"),
        ("Text.upper", {"input": "$oops"}, "never"),
    )
    started = time.perf_counter()
    with pytest.raises(PlanExecutionError) as caught:
        await PlanExecutor(kernel).execute(plan)
    error = caught.value
    assert time.perf_counter() - started < 2, "the still-running independent step was cancelled"
    assert error.step == 2 and error.function == "Math.divide"
    assert str(error).startswith("step 2 (Math.divide) failed:") and "divide by zero" in str(error)
    assert error.outputs == {"three": "3"} and error.exit_code == 1
    assert "long" not in slow.finished


async def test_per_step_timeout(kernel) -> None:
    plan = plan_of(
        ("Slow.wait", {"label": "quick", "seconds": 0.01}, "q"), ("Slow.wait", {"label": "x", "seconds": 2}, "x")
    )
    with pytest.raises(StepTimeoutError) as caught:
        await PlanExecutor(kernel, step_timeout=0.2).execute(plan)
    assert str(caught.value) == "step 2 (Slow.wait) timed out after 0.2 s"
    assert caught.value.outputs == {"q": "quick"}


async def test_a_failing_prompt_function_is_reported_by_step(kernel) -> None:
    def explode(request) -> str:
        raise RuntimeError("model overloaded")

    kernel.get_service("scripted").queue(explode)
    with pytest.raises(PlanExecutionError, match=r"step 1 \(Writer.ShortPoem\) failed: .*model overloaded"):
        await PlanExecutor(kernel).execute(plan_of(("Writer.ShortPoem", {"input": "spring"}, "poem")))


# region approval and the catalogue


async def test_approval_sees_the_plan_before_anything_runs(kernel) -> None:
    invoked = count_invocations(kernel)
    seen: list[Plan] = []
    plan = plan_of(("Math.add", {"a": 1, "b": 2}, "sum"))

    def approve(candidate: Plan) -> bool:
        seen.append(candidate)
        assert invoked == []
        return True

    result = await PlanExecutor(kernel).execute(plan, approve=approve)
    assert seen == [plan] and result.result == "3" and invoked == ["Math.add"]


@pytest.mark.parametrize("answer", [False, None])
async def test_rejection_runs_nothing(kernel, answer) -> None:
    invoked = count_invocations(kernel)
    with pytest.raises(PlanRejectedError):
        await PlanExecutor(kernel).execute(plan_of(("Math.add", {"a": 1, "b": 2}, "sum")), approve=lambda p: answer)
    assert invoked == []


async def test_an_edited_plan_is_validated_and_run(kernel) -> None:
    invoked = count_invocations(kernel)
    original = plan_of(("Math.add", {"a": 1, "b": 2}, "sum"))

    async def edit(plan: Plan) -> Plan:
        return plan_of(("Math.multiply", {"a": 6, "b": 7}, "product"))

    result = await PlanExecutor(kernel).execute(original, approve=edit)
    assert result.result == "42" and invoked == ["Math.multiply"] and result.plan.functions == ["Math.multiply"]

    def bad_edit(plan: Plan) -> Plan:
        return plan_of(("Shell.run", {"command": "rm -rf /"}, "gone"))

    with pytest.raises(UnknownFunctionError):
        await PlanExecutor(kernel).execute(original, approve=bad_edit)

    def mutate(plan: Plan) -> bool:  # edits in place and approves: still checked again
        plan.steps[0].function = "Time.today"
        return True

    executor = PlanExecutor(kernel, excluded=["Time"])
    with pytest.raises(ExcludedFunctionError):
        await executor.execute(plan_of(("Math.add", {"a": 1, "b": 2}, "sum")), approve=mutate)
    assert invoked == ["Math.multiply"]


async def test_never_invokes_a_function_outside_the_catalogue(kernel) -> None:
    invoked = count_invocations(kernel)
    approvals: list[Plan] = []
    catalogue = FunctionCatalogue.from_kernel(kernel, included=["Math"])
    executor = PlanExecutor(kernel, catalogue=catalogue)
    for plan in (
        plan_of(("Math.add", {"a": 1, "b": 2}, "s"), ("Text.upper", {"input": "$s"}, "u")),
        plan_of(("Nope.nothing", {}, "x")),
        plan_of(("Math.add", {"a": 1, "b": 2, "c": 3}, "s")),
        plan_of(("Math.add", {"a": "$missing", "b": 2}, "s")),
    ):
        with pytest.raises(Exception) as caught:
            await executor.execute(plan, approve=lambda p: approvals.append(p) or True)
        assert caught.value.exit_code == 3  # a typed validation error, not a crash
    assert invoked == [] and approvals == []


# endregion


async def test_an_empty_catalogue_allows_nothing(kernel) -> None:
    invoked = count_invocations(kernel)
    with pytest.raises(UnknownFunctionError):
        await PlanExecutor(kernel, catalogue=FunctionCatalogue()).execute(plan_of(("Math.add", {"a": 1, "b": 2}, "s")))
    assert invoked == []
