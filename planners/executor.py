"""Running a plan through the kernel: references resolved, independent steps at once, each step timed.

A step starts as soon as the steps whose outputs it reads have finished (a dependency graph, not a
fixed order), so steps that do not depend on each other run concurrently. The plan is validated
against the catalogue before the approval hook sees it and again right before anything runs (an
edited plan included): a function outside the catalogue is never invoked. On the first failure the
steps still running are cancelled and a :class:`PlanExecutionError` names the failing step and keeps
the results of the steps that finished.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel_app.base import telemetry
from kernel_app.base.errors import KernelAppError
from kernel_app.base.usage import Usage
from planners.catalogue import FunctionCatalogue
from planners.errors import PlanExecutionError, PlanRejectedError, StepTimeoutError
from planners.plan import Plan, PlanStep, literal_value, reference_name
from planners.quoting import clean_text, shortened
from planners.validation import DEFAULT_MAX_STEPS, null_required, validate_plan

if TYPE_CHECKING:
    from semantic_kernel import Kernel

# Called with the (validated) plan before anything runs: True approves it, a Plan replaces it (and is
# validated again), False or None rejects it. May be async.
Approve = Callable[[Plan], "bool | Plan | Awaitable[bool | Plan | None] | None"]
# (event "started" | "finished", step number from 1, the step, its result when finished)
StepCallback = Callable[[str, int, PlanStep, "StepResult | None"], None]

log = logging.getLogger("planners")

DEFAULT_STEP_TIMEOUT = 300.0


@dataclass
class StepResult:
    step: int  # 1-based position in the plan
    function: str
    output_name: str
    output: str
    seconds: float
    usage: Usage = field(default_factory=Usage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "function": self.function,
            "output_name": self.output_name,
            "output": self.output,
            "seconds": round(self.seconds, 3),
            "usage": self.usage.to_dict(),
        }


@dataclass
class PlanResult:
    plan: Plan  # the plan that ran (the edited one, when the approval hook edited it)
    steps: list[StepResult]  # in plan order
    seconds: float

    @property
    def result(self) -> str:
        return self.steps[-1].output if self.steps else ""

    @property
    def outputs(self) -> dict[str, str]:
        return {s.output_name: s.output for s in self.steps}

    @property
    def usage(self) -> Usage:
        return Usage.total(step.usage for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "result": self.result,
            "seconds": round(self.seconds, 3),
            "usage": self.usage.to_dict(),
            "step_results": [s.to_dict() for s in self.steps],
        }


class _StepFailed(Exception):
    def __init__(self, number: int, step: PlanStep, cause: BaseException, timed_out: bool = False) -> None:
        super().__init__(str(cause))
        self.number, self.step, self.cause, self.timed_out = number, step, cause, timed_out


class _DependencyFailed(Exception):
    """A step that did not start because a step it reads failed (not itself a failure)."""


PLAN_AGENT = f"{telemetry.AGENT_NAME} plan"
PLAN_STEPS = "kernel_app.plan.steps"


class PlanExecutor:
    """``await PlanExecutor(kernel, step_timeout=60).execute(plan, {"input": text}, approve=ask)`` → PlanResult."""

    def __init__(
        self,
        kernel: Kernel,
        *,
        catalogue: FunctionCatalogue | None = None,
        included: Iterable[str] | None = None,
        excluded: Iterable[str] | None = None,
        step_timeout: float | None = DEFAULT_STEP_TIMEOUT,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_concurrency: int | None = None,
        on_step: StepCallback | None = None,
    ) -> None:
        self.kernel = kernel
        # Progress: on_step("started", number, step, None) and on_step("finished", number, step, result).
        self.on_step = on_step
        self.catalogue = FunctionCatalogue.given_or_from_kernel(catalogue, kernel, included=included, excluded=excluded)
        self.step_timeout = step_timeout
        self.max_steps = max_steps
        self.max_concurrency = max_concurrency

    def validate(self, plan: Plan, variables: Mapping[str, Any] | None = None) -> None:
        validate_plan(plan, self.catalogue, inputs=list(variables or {}), max_steps=self.max_steps)

    async def execute(
        self, plan: Plan, variables: Mapping[str, Any] | None = None, *, approve: Approve | None = None
    ) -> PlanResult:
        variables = dict(variables or {})
        self.validate(plan, variables)
        if approve is not None:
            decision = approve(plan)
            if inspect.isawaitable(decision):
                decision = await decision
            if isinstance(decision, Plan):
                plan = decision
            elif decision is not True:
                raise PlanRejectedError("the plan was not approved: nothing ran")
        # Again, right before running: the hook may have returned an edited (or mutated) plan.
        self.validate(plan, variables)
        return await self._run(plan, variables)

    async def _run(self, plan: Plan, variables: dict[str, Any]) -> PlanResult:
        """The plan's steps; with telemetry on, in one ``invoke_agent`` span with each step's function under it."""
        if not telemetry.active():
            return await self._run_steps(plan, variables)
        attributes: dict[str, Any] = {
            telemetry.OPERATION: "invoke_agent",
            telemetry.AGENT: PLAN_AGENT,
            PLAN_STEPS: len(plan.steps),
            **telemetry.enduser(),
        }
        conversation = telemetry.conversation_id()
        if conversation:
            attributes[telemetry.CONVERSATION_ID] = conversation
        # Step tasks copy the current context when created, so their functions' spans are this span's children.
        with telemetry.tracer().start_as_current_span(f"invoke_agent {PLAN_AGENT}", attributes=attributes):
            return await self._run_steps(plan, variables)

    async def _run_steps(self, plan: Plan, variables: dict[str, Any]) -> PlanResult:
        started = time.perf_counter()
        values: dict[str, Any] = dict(variables)
        results: dict[int, StepResult] = {}
        limit = asyncio.Semaphore(self.max_concurrency) if self.max_concurrency else None
        tasks: dict[str, asyncio.Task[None]] = {}
        for number, step in enumerate(plan.steps, 1):
            dependencies = [tasks[name] for name in step.references() if name in tasks]
            tasks[step.output] = asyncio.create_task(
                self._step(number, step, dependencies, values, results, limit), name=f"plan step {number}"
            )
        try:
            done, pending = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
            failures = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            for task in tasks.values():  # the caller was cancelled: leave nothing running
                task.cancel()
        real = sorted((f for f in failures if isinstance(f, _StepFailed)), key=lambda f: f.number)
        if real:
            raise self._error(real[0], results)
        if failures:  # not expected: a dependency failure without the failure itself
            raise failures[0]  # type: ignore[misc]
        steps = [results[n] for n in sorted(results)]
        return PlanResult(plan=plan, steps=steps, seconds=time.perf_counter() - started)

    async def _step(
        self,
        number: int,
        step: PlanStep,
        dependencies: list[asyncio.Task[None]],
        values: dict[str, Any],
        results: dict[int, StepResult],
        limit: asyncio.Semaphore | None,
    ) -> None:
        from semantic_kernel.functions import KernelArguments

        if dependencies:
            outcomes = await asyncio.gather(*dependencies, return_exceptions=True)
            if any(isinstance(o, BaseException) for o in outcomes):
                raise _DependencyFailed(step.output)
        plugin, _, name = step.function.partition(".")
        arguments = KernelArguments()
        for key, value in step.args.items():
            reference = reference_name(value)
            if reference is None and value is None:
                continue  # null for an optional argument means "not given": its default applies
            arguments[key] = values[reference] if reference is not None else literal_value(value)
        info = self.catalogue.get(step.function)
        missing = null_required(info, step.args) if info is not None else None
        if missing is not None:  # validation's rule again at invocation (a plan mutated after validation)
            raise _StepFailed(number, step, ValueError(f"required argument '{missing}' is null"))
        function = self.kernel.get_function(plugin, name)
        if limit is not None:
            await limit.acquire()
        try:
            self._notify("started", number, step, None)
            began = time.perf_counter()
            try:
                result = await asyncio.wait_for(self.kernel.invoke(function, arguments), self.step_timeout)
            except asyncio.TimeoutError as error:
                raise _StepFailed(number, step, error, timed_out=True) from error
            except Exception as error:
                raise _StepFailed(number, step, error) from error
            seconds = time.perf_counter() - began
        finally:
            if limit is not None:
                limit.release()
        # clean_text: a lone surrogate in one step's output would break the next step's request and printing.
        output = clean_text("" if result is None or result.value is None else str(result))
        values[step.output] = output
        results[number] = StepResult(
            number, step.function, step.output, output, seconds, Usage.from_function_result(result)
        )
        self._notify("finished", number, step, results[number])

    def _notify(self, event: str, number: int, step: PlanStep, result: StepResult | None) -> None:
        if self.on_step is not None:
            try:
                self.on_step(event, number, step, result)
            except Exception:  # a broken progress display must not fail the plan
                log.debug("on_step callback failed", exc_info=True)

    def _error(self, failure: _StepFailed, results: dict[int, StepResult]) -> PlanExecutionError:
        completed = {r.output_name: r for _, r in sorted(results.items())}
        if failure.timed_out:
            return StepTimeoutError(
                f"timed out after {self.step_timeout:g} s",
                step=failure.number,
                function=failure.step.function,
                cause=failure.cause,
                completed=completed,
            )
        cause = _root_cause(failure.cause)
        text = shortened((str(cause).strip() or type(cause).__name__).splitlines()[0], 300)
        return PlanExecutionError(
            f"failed: {text}", step=failure.number, function=failure.step.function, cause=cause, completed=completed
        )


def _root_cause(error: BaseException) -> BaseException:
    """semantic-kernel wraps a function's error in layers; prefer our own typed error, else the innermost."""
    seen = error
    while seen.__cause__ is not None and seen.__cause__ is not seen:
        if isinstance(seen, KernelAppError):
            return seen
        seen = seen.__cause__
    if not str(seen).strip():
        return error
    return seen
