"""``kernel-app mcp``: the kernel's functions as MCP tools over stdio, for desktop MCP clients."""

from __future__ import annotations

import click

from kernel_app.interfaces.cli.context import AppContext, report_problems


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_obj
def mcp(app: AppContext) -> None:
    """Serve the kernel's functions as MCP tools (named Plugin-Function) on stdin/stdout.

    \b
    For an MCP client's configuration, e.g.:
      {"command": "kernel-app", "args": ["mcp"]}
    Prompt functions are offered as MCP prompts too. Over HTTP, `kernel-app serve` has the same at /mcp.
    """
    import anyio

    from kernel_app.interfaces.server.mcp_server import run_stdio

    built = app.build_kernel()
    report_problems(built.report.problems, quiet_warnings=True)  # stderr: stdout is the protocol's
    anyio.run(run_stdio, built.kernel)
