"""Evaluating a planner: each case's ``input`` is a goal, the output is the plan made for it (as JSON).

A file says ``planner: sequential`` (or ``action``) instead of ``function:``. :func:`produce_plan` asks
the planner of that kind (``planners.factory.create_planner``, as every surface does) for a plan; the
planner returns only a plan that validated against the kernel's functions, within its repairs, so a
planner that gives up is the case's error ("no valid plan after 4 answer(s)…"). ``plan-functions``
then checks the plan's function sequence and, optionally, its wiring: which step's output feeds which.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import KernelAppError, UsageError
from kernel_app.kernel.evals.assertions import AssertionResult, Output, register

if TYPE_CHECKING:
    from semantic_kernel import Kernel

    from kernel_app.kernel.evals.spec import EvalCase

CHAIN = "chain"  # wires: every step takes the step before it


async def produce_plan(kernel: Kernel, kind: str, case: EvalCase) -> Output:
    """The plan the ``kind`` planner makes for the case's goal (its ``input``), as JSON text."""
    from planners.base import JsonPlanner
    from planners.factory import create_planner

    planner = create_planner(kind, kernel)
    if not isinstance(planner, JsonPlanner):  # the loader admits only kinds that propose a plan
        raise UsageError(f"the {kind} planner makes no plan to evaluate: use sequential or action")
    started = time.perf_counter()
    try:
        plan = await planner.create_plan(str(case.vars.get("input", "")))
    except KernelAppError as exc:  # PlanningError (no valid plan, no function fits) or the service failing
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Output("", time.perf_counter() - started, planner.last_usage, error=first)
    return Output(plan.to_json(), time.perf_counter() - started, planner.last_usage)


def expected_wires(params: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(step, earlier step), 1-based: ``wires: chain`` is each step fed by the one before it."""
    wires = params.get("wires")
    if wires is None:
        return []
    if wires == CHAIN:
        return [(step, step - 1) for step in range(2, len(params["value"]) + 1)]
    return [(int(step), int(earlier)) for step, earlier in wires]


def _valid_plan_params(params: Mapping[str, Any]) -> str | None:
    functions = params["value"]
    if not functions or not all(isinstance(f, str) and "." in f for f in functions):
        return "value: list the expected functions in order, as Plugin.Function (A|B where either does)"
    wires = params.get("wires")
    if wires is None:
        return None
    if isinstance(wires, str):
        return None if wires == CHAIN else f"wires: {wires!r} is not {CHAIN!r} nor a list of [step, earlier step]"
    for wire in wires:
        pair_ok = isinstance(wire, list) and len(wire) == 2 and all(type(n) is int for n in wire)
        if not pair_ok or not 1 <= wire[1] < wire[0] <= len(functions):
            return (
                f"wires: {wire!r} is not [step, earlier step] with 1 <= earlier < step <= {len(functions)} "
                "(step numbers count from 1)"
            )
    return None


@register(
    "plan-functions",
    {"value": ((list,), True), "wires": ((str, list), False)},
    _valid_plan_params,
)
def _plan_functions(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
    """The plan calls exactly ``value``'s functions in order (``A|B``: either), and each wire's step takes
    its earlier step's output (``"input": "$poem"``) instead of repeating the goal's text."""
    from planners.errors import PlanError
    from planners.plan import Plan, reference_name

    try:
        plan = Plan.from_json(output.text)
    except PlanError as exc:
        return AssertionResult("plan-functions", False, 0.0, f"the output is not a valid plan: {exc}")
    wanted: list[str] = [str(f) for f in params["value"]]
    wires = expected_wires(params)
    planned = plan.functions
    exact = len(planned) == len(wanted) and all(
        name in choice.split("|") for name, choice in zip(planned, wanted, strict=True)
    )
    if not exact:
        shown = " → ".join(planned) or "no step"
        reason = f"planned {shown}, expected {' → '.join(wanted)}"
        return AssertionResult("plan-functions", False, 0.0, reason)
    unwired = [
        (step, earlier)
        for step, earlier in wires
        if not any(reference_name(v) == plan.steps[earlier - 1].output for v in plan.steps[step - 1].args.values())
    ]
    score = (1 + len(wires) - len(unwired)) / (1 + len(wires))
    if unwired:
        step, earlier = unwired[0]
        reason = (
            f"step {step} ({planned[step - 1]}) does not take step {earlier}'s output "
            f"${plan.steps[earlier - 1].output}: {plan.steps[step - 1].call_text()}"
        )
        return AssertionResult("plan-functions", False, score, reason)
    wired = f", {len(wires)} wire(s) as expected" if wires else ""
    return AssertionResult("plan-functions", True, score, f"planned {' → '.join(planned)}{wired}")
