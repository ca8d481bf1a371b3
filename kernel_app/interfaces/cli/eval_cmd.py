"""``kernel-app eval [PATHS...]``: run a function's eval cases on one or more models and check the answers."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kernel_app.base.constants import SERVICES
from kernel_app.interfaces.cli.context import AppContext, report_problems

if TYPE_CHECKING:
    from semantic_kernel import Kernel

    from kernel_app.kernel.evals.baseline import Comparison
    from kernel_app.kernel.evals.cache import OutputStore
    from kernel_app.kernel.evals.judge import Judge
    from kernel_app.kernel.evals.runner import CaseResult, Target
    from kernel_app.kernel.evals.spec import EvalFile


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="[PATHS]...")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME",
    help="Run on this model (a tier name or GGUF path for local); repeatable to compare models side by side "
    "[default: the configured model].",
)
@click.option("--function", "function", default=None, metavar="PLUGIN.FUNCTION", help="For files that name none.")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True, help="Runs per case and model.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (stable keys) instead of a table.")
@click.option("--junit", "junit_file", type=click.Path(path_type=Path, dir_okay=False), help="Write JUnit XML here.")
@click.option(
    "--report",
    "report_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a self-contained report here: HTML for a .html/.htm name, else markdown.",
)
@click.option(
    "--baseline",
    "baseline_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Compare with an earlier run's --json output: what regressed (pass -> fail, score drops), what improved.",
)
@click.option(
    "--no-cache",
    "no_cache",
    is_flag=True,
    help="Run every case on the model again instead of reusing outputs cached by (rendered prompt, settings, "
    "model, repeat) in the data folder (in PostgreSQL when database_url is set).",
)
@click.option(
    "--judge-service",
    type=click.Choice(SERVICES),
    default=None,
    help="The service of the model that grades llm-rubric assertions [default: local, the embedded model].",
)
@click.option(
    "--judge-model", default=None, metavar="NAME", help="The judge's model [default: the judge service's default]."
)
@click.pass_obj
def eval_command(
    app: AppContext,
    paths: tuple[Path, ...],
    models: tuple[str, ...],
    function: str | None,
    repeat: int,
    as_json: bool,
    junit_file: Path | None,
    report_file: Path | None,
    judge_service: str | None,
    judge_model: str | None,
    baseline_file: Path | None,
    no_cache: bool,
) -> None:
    """Run eval files and check each answer; exit 1 when an assertion fails, 2 on a bad file.

    Eval files: Plugin/Function/evals.yaml, Plugin/NAME.evals.yaml, or any YAML file naming its
    function (`function: Plugin.Function` or --function). Without PATHS, every eval file in the
    loaded plugin folders runs.

    \b
    Examples:
      kernel-app eval plugins/BusinessThinking/SWOT.evals.yaml
      kernel-app eval my-plugins/BusinessThinking/SWOTDraft --model qwen2.5-coder-1.5b --model qwen2.5-coder-0.5b
      kernel-app eval cases.yaml --function Writer.Summarize --json --junit evals.xml --report evals.md
      kernel-app eval plugins/BusinessThinking --json > before.json   # then edit a prompt, and:
      kernel-app eval plugins/BusinessThinking --baseline before.json --report evals.html
    """
    import asyncio

    from kernel_app.base.errors import UsageError
    from kernel_app.kernel.evals import discover, load_eval_file
    from kernel_app.kernel.evals.judge import needs_judge
    from kernel_app.kernel.evals.report import junit, to_json
    from kernel_app.kernel.evals.runner import run_evals

    baseline = None
    if baseline_file is not None:  # a bad baseline is a usage error before any model time is spent
        from kernel_app.kernel.evals.baseline import load_baseline

        baseline = load_baseline(baseline_file)
    if paths:
        search = list(paths)
    else:
        built = app.build_kernel(with_service=False)
        search = sorted(set(built.report.origins.values()))
    files = [load_eval_file(path, function) for path in discover(search)]
    if not files:
        raise UsageError(f"no eval files in {', '.join(map(str, search))}: add evals.yaml or NAME.evals.yaml")

    app = _with_plugin_directories(app, files)
    targets = [_target(app, model) for model in (models or (None,))]
    report_problems(targets[0].report.problems, quiet_warnings=True)
    progress = _terminal_progress if sys.stderr.isatty() else _line_progress
    cases = [case for eval_file in files for case in eval_file.cases]
    judge = _judge(app, judge_service, judge_model) if needs_judge(cases) else None
    cache = None if no_cache else _open_cache(app)
    # Drawn before anything runs: the first run loads the model too, and on the embedded one that is
    # minutes without a word otherwise (the bar moves after each run).
    progress(0, len(cases) * len(targets) * repeat, "starting: the first run loads the model")
    try:
        results = asyncio.run(run_evals(files, targets, repeat=repeat, progress=progress, judge=judge, cache=cache))
    finally:
        if cache is not None:
            cache.close()

    comparison = None
    if baseline is not None and baseline_file is not None:
        from kernel_app.kernel.evals.baseline import compare

        comparison = compare(results, baseline, str(baseline_file))
    click.echo(to_json(results, comparison) if as_json else _table(results, comparison))
    if junit_file is not None:
        junit_file.write_text(junit(results), encoding="utf-8")
    if report_file is not None:
        report_file.write_text(_report(results, comparison, report_file), encoding="utf-8")
    if not all(r.passed for r in results):
        sys.exit(1)


def _open_cache(app: AppContext) -> OutputStore:
    from kernel_app.kernel.evals.cache import open_output_cache

    return open_output_cache(app.settings)


def _table(results: list[CaseResult], comparison: Comparison | None) -> str:
    from kernel_app.kernel.evals.report import table

    return table(results, comparison=comparison)


def _report(results: list[CaseResult], comparison: Comparison | None, path: Path) -> str:
    """HTML for a ``.html``/``.htm`` file, markdown otherwise."""
    if path.suffix.lower() in (".html", ".htm"):
        from kernel_app.kernel.evals.html_report import html

        return html(results, comparison=comparison)
    from kernel_app.kernel.evals.report import markdown

    return markdown(results, comparison=comparison)


def _with_plugin_directories(app: AppContext, files: list[EvalFile]) -> AppContext:
    """Load the plugins the eval files sit beside: an author evaluating their copy of a built-in function
    must get their copy, not the built-in one of the same name."""
    from kernel_app.base.paths import builtin_plugins_dir
    from kernel_app.kernel.evals.spec import plugin_directory_of

    known = {p.resolve() for p in [builtin_plugins_dir(), *app.settings.plugins_dirs]}
    extra = [d for d in dict.fromkeys(plugin_directory_of(f) for f in files) if d and d.resolve() not in known]
    if not extra:
        return app
    for directory in extra:
        click.echo(f"eval: loading plugins from {directory} (the eval files' own folder)", err=True)
    overrides = {**app.overrides, "plugins_dirs": [*app.settings.plugins_dirs, *extra]}
    return AppContext(overrides, app.config_file, app.debug)


def _target(app: AppContext, model: str | None) -> Target:
    """A kernel for ``model`` (None: the configured one), with the same plugins and service."""
    from kernel_app.kernel.evals.runner import Target

    context = app if model is None else AppContext({**app.overrides, "model": model}, app.config_file, app.debug)
    built = context.build_kernel()
    return Target(model or _model_name(built.kernel) or context.settings.service, built.kernel, built.report)


def _judge(app: AppContext, service: str | None, model: str | None) -> Judge:
    """The judge of llm-rubric: ``service`` (default: the embedded model, whatever the evaluated one is)
    and ``model`` (default: that service's own), with the rest of the settings (keys, endpoints) as given."""
    import dataclasses

    from kernel_app.kernel.evals.judge import Judge
    from kernel_app.providers import create_chat_service

    settings = dataclasses.replace(app.settings, service=service or "local", model=model)
    chat = create_chat_service(settings)
    return Judge(chat, Path(model or str(getattr(chat, "ai_model_id", "") or settings.service)).name)


def _model_name(kernel: Kernel) -> str | None:
    """The configured model's name as its service reports it (the local tier's default has no setting)."""
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

    try:
        service = kernel.get_service(type=ChatCompletionClientBase)
    except Exception:  # no chat service: the name is only for the table
        return None
    name = str(getattr(service, "ai_model_id", "") or "")
    return Path(name).name if name else None


def _terminal_progress(done: int, total: int, label: str) -> None:
    """A bar redrawn in place on stderr, cut to the terminal's width so that it never wraps (a wrapped
    line cannot be redrawn with a carriage return); the last one ends the line."""
    columns = _stderr_columns()
    counter = f"{done}/{total}"
    width = min(30, columns - len(counter) - 24)
    filled = width * done // total if width > 0 else 0
    bar = f"[{'#' * filled}{'.' * (width - filled)}] " if width >= 10 else ""
    room = max(0, columns - len(bar) - len(counter) - 2)
    text = label if len(label) <= room else label[: max(0, room - 1)] + "…"
    end = "\n" if done == total else ""
    click.echo(f"\r\033[K{bar}{counter} {text}{end}", nl=False, err=True)


def _stderr_columns() -> int:
    """The width of the terminal the bar is drawn on: stderr's, which is a terminal even when stdout is
    redirected (``--json > out.json``), where shutil would measure stdout (or trust $COLUMNS)."""
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    # A terminal whose size was never set (`script`, some CI runners) says 0 columns: the bar would be cut
    # to nothing, so it is drawn for the usual width (shutil's fallback) instead.
    return columns if columns > 0 else shutil.get_terminal_size((80, 24)).columns


def _line_progress(done: int, total: int, label: str) -> None:
    click.echo(f"case {done}/{total}: {label}", err=True)
