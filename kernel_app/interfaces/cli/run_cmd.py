"""``kernel-app run PLUGIN.FUNCTION [PLUGIN.FUNCTION ...]``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kernel_app.base.errors import FunctionInvocationError, KernelAppError, UsageError
from kernel_app.interfaces.cli.context import AppContext, report_problems


def parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE, e.g. --var language=French")
        variables[name.strip()] = value
    return variables


def read_input(given: str | None) -> str | None:
    """``--input`` wins; otherwise piped stdin (not a terminal) is the input."""
    if given is not None:
        return given
    if sys.stdin is None or sys.stdin.isatty():
        return None
    text = sys.stdin.read()
    return text if text.strip() else None


def _add_chat_service(kernel: Any, app: AppContext, *, needed: bool) -> KernelAppError | None:
    """Add the configured model service. A chain of native functions may run without one (Math.add needs
    no key), so then a configuration problem is kept and raised only if a function asks for a model."""
    from kernel_app.providers import create_chat_service

    try:
        kernel.add_service(create_chat_service(app.settings))
    except KernelAppError as exc:
        if needed:
            raise
        return exc
    return None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("functions", nargs=-1, required=True, metavar="PLUGIN.FUNCTION...")
@click.option("--input", "-i", "input_text", default=None, help="The `input` variable (default: stdin when piped).")
@click.option("--var", "-v", "var_pairs", multiple=True, metavar="NAME=VALUE", help="Set a variable; repeatable.")
@click.option(
    "--var-json",
    "json_pairs",
    multiple=True,
    metavar="NAME=JSON",
    help='Set a variable to a JSON value (a list of {"role", "content"} becomes a chat history); repeatable.',
)
@click.option(
    "--vars",
    "vars_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A JSON or YAML file of variable name -> value (--var and --var-json win over it).",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"result", "usage", "steps"} as JSON.')
@click.option("--stream", is_flag=True, help="Print the answer as it is generated.")
@click.pass_obj
def run(
    app: AppContext,
    functions: tuple[str, ...],
    input_text: str | None,
    var_pairs: tuple[str, ...],
    json_pairs: tuple[str, ...],
    vars_file: Path | None,
    as_json: bool,
    stream: bool,
) -> None:
    """Run a function, or a chain: each output becomes the next function's input.

    \b
    Examples:
      kernel-app run BusinessThinking.SWOT --input "a pizza shop"
      kernel-app run BusinessThinking.ShiftDomain BusinessThinking.ChangeAudience \\
          --var domain="cleaning services" --var level=child < swot.md
      kernel-app run Math.add --var a=110 --var b=990
      kernel-app run Chat.Reply --var-json history='[{"role": "user", "content": "Hi"}]'
    """
    from kernel_app.kernel.plugin_folders.structured_vars import load_vars_file, parse_json_vars, to_kernel_value
    from kernel_app.kernel.runner import resolve_function, run_chain

    variables: dict[str, Any] = dict(load_vars_file(vars_file)) if vars_file else {}
    variables.update(parse_json_vars(json_pairs))
    variables.update(parse_vars(var_pairs))
    variables = {name: to_kernel_value(value) for name, value in variables.items()}
    text = read_input(input_text)
    built = app.build_kernel(with_service=False)
    report_problems(built.report.problems, quiet_warnings=True)
    resolved = [resolve_function(built.kernel, name, built.report) for name in functions]
    service_error = _add_chat_service(built.kernel, app, needed=any(f.is_prompt for f in resolved))

    on_chunk: Callable[[str], None] | None = None
    if stream and not as_json:

        def print_piece(piece: str) -> None:
            click.echo(piece, nl=False)
            sys.stdout.flush()

        on_chunk = print_piece

    if sys.stderr.isatty() and service_error is None:
        # Progress for a human at a terminal: a small local model can take tens of seconds.
        click.echo(f"running {' -> '.join(functions)} on {app.settings.service}...", err=True)
    import asyncio  # here, not at the top: `kernel-app --help` imports this module for its summary

    try:
        result = asyncio.run(run_chain(built.kernel, resolved, input=text, variables=variables, on_chunk=on_chunk))
    except FunctionInvocationError as exc:
        if service_error is not None and "No service found" in str(exc):
            raise service_error from exc  # a native function needed the model after all: say why there is none
        raise
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    elif stream:
        click.echo()
    else:
        click.echo(result.result)
