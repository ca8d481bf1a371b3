"""The ``kernel-app`` command line.

Only click and our own light modules are imported at start-up; semantic-kernel and the model load
inside the commands that need them, so ``kernel-app --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from kernel_app import __version__
from kernel_app.base.constants import SERVICES
from kernel_app.base.errors import KernelAppError
from kernel_app.interfaces.cli.context import AppContext
from kernel_app.kernel.pybars_grammars import install as install_recorded_grammars

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# Each command's module is imported only when that command runs (or --help lists them): `plugins list`
# does not pay for the imports of chat, serve and plan (click's documented lazy-group pattern).
COMMANDS = {
    "chat": "kernel_app.interfaces.cli.chat_cmd:chat",
    "eval": "kernel_app.interfaces.cli.eval_cmd:eval_command",
    "execute": "kernel_app.interfaces.cli.plan_cmd:execute",
    "logs": "kernel_app.interfaces.cli.logs_cmd:logs",
    "mcp": "kernel_app.interfaces.cli.mcp_cmd:mcp",
    "memory": "kernel_app.interfaces.cli.memory_cmd:memory",
    "models": "kernel_app.interfaces.cli.models_cmd:models",
    "plan": "kernel_app.interfaces.cli.plan_cmd:plan",
    "plugins": "kernel_app.interfaces.cli.plugins_cmd:plugins",
    "run": "kernel_app.interfaces.cli.run_cmd:run",
    "serve": "kernel_app.interfaces.cli.serve_cmd:serve",
    "teams": "kernel_app.interfaces.cli.teams_cmd:teams",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            import importlib

            module, name = COMMANDS[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--service",
    type=click.Choice(SERVICES),
    default=None,
    help="Model service [env KERNEL_APP_SERVICE; default: local, the embedded offline model].",
)
@click.option(
    "--model",
    default=None,
    metavar="NAME",
    help="Model name (openai), deployment (azure), or tier name or GGUF path (local; see `kernel-app models`) "
    "[env KERNEL_APP_MODEL].",
)
@click.option(
    "--plugins-dir",
    "plugins_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Extra plugin directory; repeatable [env KERNEL_APP_PLUGINS, os.pathsep-separated].",
)
@click.option(
    "--trust",
    "trusted_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Allow Python (native) plugins from DIR to run; repeatable [env KERNEL_APP_TRUSTED].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE",
    help="Config file [env KERNEL_APP_CONFIG; default ~/.config/kernel-app/config.toml].",
)
@click.option(
    "--memory-dir",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Memory store [env KERNEL_APP_MEMORY_DIR; default ~/.local/share/kernel-app/memory].",
)
@click.option(
    "--database-url",
    default=None,
    metavar="URL",
    help="PostgreSQL + pgvector for shared state, e.g. postgresql://user@host/db (password from PGPASSWORD or "
    "~/.pgpass) [env KERNEL_APP_DATABASE_URL; default: none, files under --memory-dir].",
)
@click.option(
    "--call-log/--no-call-log",
    "call_log",
    default=None,
    help="Log every model call for `kernel-app logs` [env KERNEL_APP_CALL_LOG; default: on].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and raw model output on errors.")
@click.option(
    "--trace",
    is_flag=True,
    help="Print OpenTelemetry spans (model calls, function calls, turns, plans) to stderr [env KERNEL_APP_TRACE=1; "
    "OTEL_EXPORTER_OTLP_ENDPOINT exports them over OTLP].",
)
@click.version_option(__version__, prog_name="kernel-app")
@click.pass_context
def cli(
    ctx: click.Context,
    service: str | None,
    model: str | None,
    plugins_dirs: tuple[Path, ...],
    trusted_dirs: tuple[Path, ...],
    config_file: Path | None,
    memory_dir: Path | None,
    database_url: str | None,
    call_log: bool | None,
    debug: bool,
    trace: bool,
) -> None:
    """Kernel App: run Semantic Kernel plugins on a local or hosted model.

    \b
    Examples:
      kernel-app run BusinessThinking.SWOT --input "a pizza shop in a college town"
      kernel-app plugins list
      kernel-app plugins lint ./my-plugins
      echo "long text" | kernel-app run Writer.Summarize Text.upper
    """
    _configure_logging(debug)
    _configure_telemetry(trace)
    ctx.obj = AppContext(
        overrides={
            "service": service,
            "model": model,
            "plugins_dirs": list(plugins_dirs) or None,
            "trusted_dirs": list(trusted_dirs) or None,
            "memory_dir": memory_dir,
            "database_url": database_url,
            "call_log": call_log,
        },
        config_file=config_file,
        debug=debug,
    )


def _configure_telemetry(trace: bool) -> None:
    from kernel_app.base import telemetry

    if trace:
        os.environ[telemetry.TRACE_ENV] = "1"  # the server's worker processes inherit it
    telemetry.configure(console=trace)


def _configure_logging(debug: bool) -> None:
    # semantic-kernel logs every failure at ERROR before raising it; we report each failure once, on
    # one line, so its logs are shown only with --debug.
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("semantic_kernel").setLevel(logging.DEBUG if debug else logging.CRITICAL)
    for noisy in ("httpx", "httpcore", "openai", "azure", "pypdf"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with meaningful exit codes; tracebacks only with --debug."""
    install_recorded_grammars()  # the commands' semantic-kernel import skips parsing pybars' grammars (~0.9 s)
    args = sys.argv[1:] if argv is None else argv
    if "--debug" in args:
        # Accepted anywhere (`kernel-app plan GOAL --debug`): click only knows it before the subcommand.
        args = ["--debug", *(arg for arg in args if arg != "--debug")]
    debug = "--debug" in args or os.environ.get("KERNEL_APP_DEBUG") == "1"
    try:
        cli.main(args=args, prog_name="kernel-app", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KernelAppError as exc:
        report = getattr(exc, "debug_report", None)
        if debug and report is None:
            raise
        hint = getattr(exc, "cli_hint", "")
        click.echo(f"error: {exc}" + (f": {hint}" if hint else ""), err=True)
        if debug and report is not None:  # a planning failure: every raw model answer and its error
            click.echo(report(), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        from kernel_app.interfaces.cli.extras import missing_extra_message

        if missing := missing_extra_message(exc, args):  # an interface's package: which pip install to run
            click.echo(f"error: {missing}", err=True)
            sys.exit(1)
        if debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        click.echo(f"error: {type(exc).__name__}: {first} (run with --debug for the traceback)", err=True)
        sys.exit(1)
