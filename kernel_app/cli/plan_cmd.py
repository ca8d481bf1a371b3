"""``kernel-app plan GOAL`` and ``kernel-app execute FILE``: an interface over planners/."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from kernel_app.cli.context import AppContext, report_problems

PLANNERS = ("sequential", "action", "function-calling")


def _kernel(app: AppContext) -> Any:
    from kernel_app.services import create_chat_service

    built = app.build_kernel(with_service=False)
    report_problems(built.report.problems, quiet_warnings=True)
    built.kernel.add_service(create_chat_service(app.settings))
    return built.kernel


def _approve_on_terminal(yes: bool) -> Any:
    """Ask before running anything; without a terminal, only --yes may run a plan."""

    def approve(plan: Any) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise click.UsageError("refusing to run a plan without confirmation: pass --yes or run on a terminal")
        return click.confirm("Run this plan?", default=False, err=True)

    return approve


def _progress_on_terminal(total: int) -> Any:
    """Step-by-step progress on stderr for a person at a terminal (a small local model takes seconds a step)."""
    if not sys.stderr.isatty():
        return None

    def on_step(event: str, number: int, step: Any, result: Any) -> None:
        if event == "started":
            click.echo(f"  step {number}/{total} {step.function}...", err=True)
        elif result is not None:
            click.echo(f"  step {number}/{total} {step.function} done in {result.seconds:.1f} s", err=True)

    return on_step


async def _execute(kernel: Any, plan: Any, yes: bool, show: bool) -> Any:
    from planners import PlanExecutor

    if show:
        click.echo(str(plan), err=True)
    executor = PlanExecutor(kernel, on_step=_progress_on_terminal(len(plan.steps)))
    return await executor.execute(plan, approve=_approve_on_terminal(yes))


class _Answered:
    """The function-calling planner's answer, shaped like an executor result."""

    def __init__(self, answer: str) -> None:
        self.result = answer


def _print_result(plan: Any, result: Any, as_json: bool) -> None:
    if as_json:
        payload = plan.to_dict()
        if result is not None:
            payload["result"] = result.result
            if hasattr(result, "to_dict"):
                payload["execution"] = result.to_dict()
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    elif result is not None:
        click.echo(result.result)
    else:
        click.echo(str(plan))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("goal")
@click.option("--planner", type=click.Choice(PLANNERS), default="sequential", show_default=True)
@click.option("--exclude", multiple=True, metavar="PLUGIN[.FUNCTION]", help="Keep out of the plan; repeatable.")
@click.option(
    "--max-repairs",
    type=click.IntRange(0, 10),
    default=3,
    show_default=True,
    help="Repair turns when the model's plan does not parse or validate.",
)
@click.option(
    "--max-functions",
    type=click.IntRange(1, 500),
    default=None,
    help="Offer the model only the N functions most relevant to the goal "
    "[default: 5 on the embedded model, else 30; 64 for --planner function-calling].",
)
@click.option("--save", "save_to", type=click.Path(path_type=Path), default=None, help="Save the plan (JSON or .yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan (and result) as JSON.")
@click.option("--execute", "run_it", is_flag=True, help="Run the plan after showing it.")
@click.option("--yes", is_flag=True, help="Run without asking.")
@click.pass_obj
def plan(
    app: AppContext,
    goal: str,
    planner: str,
    exclude: tuple[str, ...],
    max_repairs: int,
    max_functions: int | None,
    save_to: Path | None,
    as_json: bool,
    run_it: bool,
    yes: bool,
) -> None:
    """Turn GOAL into a validated plan of plugin calls; with --execute, approve and run it.

    \b
    Examples:
      kernel-app plan "What is the sum of 110 and 990?" --planner action --execute --yes
      kernel-app plan "Make a SWOT for a bakery, then shift it to the domain of cleaning services" --execute
    """
    kernel = _kernel(app)

    async def go() -> tuple[Any, Any]:
        from planners import ActionPlanner, FunctionCallingPlanner, SequentialPlanner

        if planner == "function-calling":
            # The model calls the functions itself (allow-listed), so there is nothing left to approve:
            # the trace shows what ran and the answer is the result.
            limit = {"max_functions": max_functions} if max_functions else {}
            outcome = await FunctionCallingPlanner(kernel, excluded=list(exclude) or None, **limit).run(goal)
            return outcome.trace, _Answered(outcome.answer)
        kind = ActionPlanner if planner == "action" else SequentialPlanner
        if sys.stderr.isatty():
            click.echo(f"planning on {app.settings.service}...", err=True)
        made = await kind(
            kernel, max_repairs=max_repairs, max_functions=max_functions, excluded=list(exclude) or None
        ).create_plan(goal)
        if save_to is not None:
            made.save(save_to)
        result = await _execute(kernel, made, yes, show=not as_json) if run_it else None
        return made, result

    made, result = asyncio.run(go())
    _print_result(made, result, as_json)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Run without asking.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and result as JSON.")
@click.pass_obj
def execute(app: AppContext, file: Path, yes: bool, as_json: bool) -> None:
    """Validate and run a saved (possibly hand-edited) plan FILE (JSON or YAML)."""
    from planners import Plan

    saved = Plan.load(file)
    kernel = _kernel(app)
    result = asyncio.run(_execute(kernel, saved, yes, show=not as_json))
    _print_result(saved, result, as_json)
