"""``kernel-app plan GOAL`` and ``kernel-app execute FILE``: an interface over planners/."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from kernel_app.interfaces.cli.context import AppContext, report_problems

T = TypeVar("T")


class PlannerKind(click.ParamType):
    """``--planner``: a kind the planner factory knows (:data:`planners.factory.PLANNER_KINDS`), as on every
    surface. Read from the factory only when ``plan`` parses or shows its help: ``kernel-app --help``
    lists the commands without importing the planners."""

    name = "planner"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:  # ctx: click >= 8.2
        from planners.factory import PLANNER_KINDS

        return "[" + "|".join(PLANNER_KINDS) + "]"

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        from planners.factory import PLANNER_KINDS

        return [CompletionItem(kind) for kind in PLANNER_KINDS if kind.startswith(incomplete)]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from planners.factory import UnknownPlannerError, planner_kind

        try:
            return planner_kind(str(value))
        except UnknownPlannerError as error:
            self.fail(str(error), param, ctx)


def _kernel(app: AppContext) -> Any:
    from kernel_app.providers import create_chat_service

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

    executor = PlanExecutor(kernel, on_step=_progress_on_terminal(len(plan.steps)))
    executor.validate(plan)  # a broken (saved) plan: its problems, not the plan, are what to show
    if show:
        click.echo(str(plan), err=True)
    return await executor.execute(plan, approve=_approve_on_terminal(yes))


def _approve_calls_on_terminal(yes: bool) -> Any:
    """The function-calling planner's ``approve_call``: each MODEL or WRITE call is shown and asked."""

    def approve_call(request: Any) -> bool:
        if yes:
            return True
        return click.confirm(f"Run {request.call_text()} ({request.effect.value})?", default=False, err=True)

    return approve_call


def _print_calls(calls: list[Any], executing: bool) -> None:
    """The function-calling trace on stderr: what ran, with which arguments, and what did not, and why."""
    for call in calls:
        if call.refused:
            why = call.note.removeprefix("not run: ")
            click.echo(f"  not run ({why}): {call.call_text()}", err=True)
        else:
            click.echo(f"  ran {call.call_text()}", err=True)
    unapproved = [c for c in calls if c.refused and c.note == _not_approved()]
    if unapproved and not executing:
        click.echo(f"  ({len(unapproved)} call(s) need approval: rerun with --execute to be asked)", err=True)


def _not_approved() -> str:
    from planners import NOT_APPROVED

    return NOT_APPROVED


class _Answered:
    """The function-calling planner's answer, shaped like an executor result."""

    def __init__(self, outcome: Any) -> None:
        self.result = outcome.answer
        self.calls = outcome.calls

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "calls": [call.to_dict() for call in self.calls]}


def _print_result(plan: Any, result: Any, as_json: bool) -> None:
    from planners.quoting import clean_text

    # clean_text: a lone surrogate in a model's output would make printing it fail (UnicodeEncodeError).
    if as_json:
        payload = plan.to_dict()
        if result is not None:
            payload["result"] = result.result
            if hasattr(result, "to_dict"):
                payload["execution"] = result.to_dict()
        click.echo(clean_text(json.dumps(payload, indent=2, ensure_ascii=False)))
    elif result is not None:
        click.echo(clean_text(result.result))
    else:
        click.echo(clean_text(str(plan)))


def _run_interruptible(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main``; Ctrl-C cancels it at once, as the chat REPL does.

    asyncio.run would, after the cancellation, wait for the default executor's threads, and the embedded
    model generates in one (a non-streaming llama.cpp call cannot be stopped): over a minute. So the
    running steps are cancelled (streaming generation stops at its next token) and the process leaves
    with exit code 130 without joining that thread.
    """
    import asyncio  # here, not at the top: `kernel-app --help` imports this module for its summary

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    except KeyboardInterrupt:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 2))
        click.echo("interrupted", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    finally:
        loop.close()


@contextlib.contextmanager
def _listing_problems() -> Iterator[None]:
    """A plan error with several problems (a hand-edited saved plan): the first on the error line, then
    every other one on its own line under it, instead of "(and 3 more problems)"."""
    from planners import PlanError

    try:
        yield
    except PlanError as error:
        more = error.details()
        if not more:
            raise
        click.echo(f"error: {error}", err=True)
        for line in more:
            click.echo(f"  {line}", err=True)
        sys.exit(error.exit_code)


@contextlib.contextmanager
def _model_answers_first(debug: bool) -> Iterator[None]:
    """With --debug, hold the log records of the command back: on a planning failure its report lists
    the raw model answers first and these logs after them (hundreds of lines of HTTP and semantic-kernel
    debug output used to bury the answers); otherwise they are printed when the command ends."""
    root = logging.getLogger()
    if not debug:
        yield
        return
    from logging.handlers import BufferingHandler

    buffer = BufferingHandler(capacity=1_000_000)
    buffer.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    saved = root.handlers[:]
    root.handlers = [buffer]
    try:
        yield
    except Exception as error:
        from planners.errors import PlanningError  # loaded already: the command that failed imported it

        if isinstance(error, PlanningError):
            error.debug_log = [buffer.format(record) for record in buffer.buffer]
            buffer.buffer.clear()
        raise
    finally:
        root.handlers = saved
        for record in buffer.buffer:
            root.handle(record)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("goal")
# The default is planners.factory.DEFAULT_PLANNER, written out so that listing the commands imports no planner.
@click.option("--planner", type=PlannerKind(), default="sequential", show_default=True)
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
    from planners.factory import create_planner, proposes_plan

    if not proposes_plan(planner) and run_it and not yes and not sys.stdin.isatty():
        raise click.UsageError("refusing to run functions without confirmation: pass --yes or run on a terminal")

    async def go() -> tuple[Any, Any]:
        kernel = _kernel(app)
        excluded = list(exclude) or None
        if not proposes_plan(planner):  # function-calling
            # The model calls the functions itself: READ functions run; MODEL and WRITE ones only with
            # --execute, each asked on the terminal (or --yes). Without --execute they are answered
            # "not run: needs approval". The trace on stderr shows what ran with which arguments.
            approve_call = _approve_calls_on_terminal(yes) if run_it else None
            caller: Any = create_planner(
                planner, kernel, excluded=excluded, max_functions=max_functions, approve_call=approve_call
            )
            outcome = await caller.run(goal)
            _print_calls(outcome.calls, executing=run_it)
            if save_to is not None:
                outcome.trace.save(save_to)
            return outcome.trace, _Answered(outcome)
        if sys.stderr.isatty():
            click.echo(f"planning on {app.settings.service}...", err=True)
        maker: Any = create_planner(
            planner, kernel, max_repairs=max_repairs, max_functions=max_functions, excluded=excluded
        )
        made = await maker.create_plan(goal)
        if save_to is not None:
            made.save(save_to)
        result = await _execute(kernel, made, yes, show=not as_json) if run_it else None
        return made, result

    with _model_answers_first(app.debug), _listing_problems():
        made, result = _run_interruptible(go())
    _print_result(made, result, as_json)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Run without asking.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and result as JSON.")
@click.pass_obj
def execute(app: AppContext, file: Path, yes: bool, as_json: bool) -> None:
    """Validate and run a saved (possibly hand-edited) plan FILE (JSON or YAML)."""
    from planners import Plan

    with _listing_problems():
        saved = Plan.load(file)
        kernel = _kernel(app)
        result = _run_interruptible(_execute(kernel, saved, yes, show=not as_json))
    _print_result(saved, result, as_json)
