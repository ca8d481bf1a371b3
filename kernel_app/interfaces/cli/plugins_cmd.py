"""``kernel-app plugins list|lint|export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kernel_app.interfaces.cli.context import AppContext, report_problems
from kernel_app.kernel.function_info import is_required, user_parameters

if TYPE_CHECKING:
    from kernel_app.kernel.plugin_folders.loader import LoadReport
    from kernel_app.kernel.plugin_folders.specs import FunctionSpec


@click.group()
def plugins() -> None:
    """List and check plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array with parameters.")
@click.pass_obj
def list_plugins(app: AppContext, as_json: bool) -> None:
    """List every function as Plugin.Function with its description."""
    report, functions = list_functions(app)
    metadata = sorted(functions, key=lambda m: (m.plugin_name, m.name))
    if as_json:
        click.echo(json.dumps([_describe(m, _source(report, m.plugin_name)) for m in metadata], indent=2))
    else:
        width = max((len(f"{m.plugin_name}.{m.name}") for m in metadata), default=0)
        for m in metadata:
            source = _source(report, m.plugin_name)
            where = "" if source in ("built-in", "kernel") else f"  [{source}]"
            click.echo(f"{m.plugin_name}.{m.name}".ljust(width + 2) + (m.description or "").strip() + where)
    report_problems(report.problems, quiet_warnings=True)


def list_functions(app: AppContext) -> tuple[LoadReport, list[FunctionSpec]]:
    """The functions a kernel of these settings has, as build_kernel would add them, without building one
    (semantic-kernel's import alone takes seconds): the plugin folders', then the kernel's own plugins,
    which replace a folder of the same name as kernel.add_plugin does."""
    from kernel_app.kernel.builder import other_functions, plugin_directories
    from kernel_app.kernel.plugin_folders.loader import load_plugin_directories
    from kernel_app.kernel.plugin_folders.native_catalogue import kernel_natives

    settings = app.settings
    report = load_plugin_directories(
        plugin_directories(settings), other_functions=other_functions(settings), specs_only=True
    )
    own = kernel_natives(settings.http_plugin)
    names = {f.plugin_name for f in own}
    functions = [f for plugin, found in report.plugins.items() if plugin not in names for f in found]
    return report, [*functions, *own]  # type: ignore[list-item]


def _source(report: object, plugin: str) -> str:
    """Where a plugin comes from: 'built-in', 'kernel' (memory, semantic-kernel's core) or its folder."""
    origin = report.origins.get(plugin)  # type: ignore[attr-defined]
    if origin is None:
        return "kernel"
    return "built-in" if plugin in report.builtin else str(origin)  # type: ignore[attr-defined]


def _describe(metadata: object, source: str) -> dict[str, object]:
    return {
        "plugin": metadata.plugin_name,  # type: ignore[attr-defined]
        "function": metadata.name,  # type: ignore[attr-defined]
        "description": metadata.description or "",  # type: ignore[attr-defined]
        "source": source,
        "parameters": [
            {
                "name": p.name,
                "description": p.description or "",
                "default": p.default_value if p.default_value not in (None, "") else None,
                "required": is_required(p),
            }
            for p in user_parameters(metadata)
        ],
    }


@plugins.command("lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--trust", is_flag=True, help="Treat PATHS as trusted: import their Python files too.")
@click.option(
    "--strict",
    is_flag=True,
    help="Fail on warnings as well as errors; a call to a function no plugin has is an error.",
)
@click.pass_obj
def lint(app: AppContext, paths: tuple[Path, ...], trust: bool, strict: bool) -> None:
    """Check plugin directories: exit 0 when everything loads, 1 with one line per problem.

    PATH may be a directory of plugin folders or a single plugin folder. Python files are only
    imported from trusted directories (--trust, or trusted_dirs in the config).
    """
    from kernel_app.base.paths import builtin_plugins_dir
    from kernel_app.kernel.builder import other_functions
    from kernel_app.kernel.plugin_folders.loader import PluginDirectory, load_plugin_directories

    settings = app.settings
    builtin_dir = builtin_plugins_dir().resolve()
    # Ours are trusted wherever they are linted from (they ship with us).
    directories = [
        PluginDirectory(p, trusted=trust or settings.is_trusted(p) or p.resolve() == builtin_dir) for p in paths
    ]
    # The built-ins load too (reported only where a folder replaces one), so calls to them resolve.
    if not any(p.resolve() == builtin_dir for p in paths):
        directories.append(PluginDirectory(builtin_dir, trusted=True, builtin=True))
    # --strict: a call to a function no plugin has is an error again, as before issue 24 (for CI).
    report = load_plugin_directories(
        directories, other_functions=other_functions(settings), specs_only=True, strict_calls=strict
    )
    linted = [str(p) for p in paths]
    problems = [p for p in report.problems if any(p.path.startswith(root) for root in linted)]
    for problem in problems:
        click.echo(str(problem))
    count = sum(len(f) for name, f in report.plugins.items() if name not in report.builtin)
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    summary = f"{count} function(s) loaded, {errors} error(s), {warnings} warning(s)"
    click.echo(summary, err=True)
    if errors or (strict and warnings):
        raise SystemExit(1)


@plugins.command("export")
@click.argument("name")
@click.option("--to", "to_format", type=click.Choice(["prompty"]), required=True, help="The file format to write.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write to FILE (or DIR/<Function>.prompty); default: stdout.",
)
@click.pass_obj
def export(app: AppContext, name: str, to_format: str, output: Path | None) -> None:
    """Write prompt function NAME (Plugin.Function) as a .prompty file that loads back the same."""
    from semantic_kernel import Kernel
    from semantic_kernel.functions import KernelPlugin

    from kernel_app.kernel.builder import other_functions, plugin_directories
    from kernel_app.kernel.plugin_folders.loader import load_plugin_directories
    from kernel_app.kernel.plugin_folders.prompty_export import prompty_text
    from kernel_app.kernel.runner import resolve_function

    settings = app.settings
    report = load_plugin_directories(plugin_directories(settings), other_functions=other_functions(settings))
    kernel = Kernel()
    for plugin, functions in report.plugins.items():
        kernel.add_plugin(KernelPlugin(name=plugin, functions=functions))
    function = resolve_function(kernel, name, report)
    text, notes = prompty_text(function)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if output is None:
        click.echo(text, nl=False)
        return
    target = output / f"{function.name}.prompty" if output.is_dir() else output
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}", err=True)
