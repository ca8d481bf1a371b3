"""``kernel-app serve``: the REST API, the OpenAI-compatible endpoint and MCP over HTTP, on uvicorn.

``--workers N`` runs N uvicorn worker processes on one port. What they must share (conversations, memory)
lives in ``database_url``'s PostgreSQL, so N > 1 requires it; each worker keeps its own model (the
embedded one is loaded N times), generation queue and limits, as separate instances would.
"""

from __future__ import annotations

import base64
import os
import pickle
from typing import Any

import click

from kernel_app.interfaces.cli.context import AppContext, report_problems


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; beyond loopback needs API keys.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="URL",
    help="Allow browser calls from this origin; repeatable (none by default).",
)
@click.option(
    "--approve-model-functions",
    is_flag=True,
    help="Run prompt functions (they cost tokens, change nothing) unasked: for OpenAI-compatible requests, "
    "and in Teams and chat-copilot without an approval card.",
)
@click.option(
    "--queue", default=8, show_default=True, type=click.IntRange(0), help="Requests that may wait for the model."
)
@click.option(
    "--timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds a request may go without progress (a token, a function call) before it is stopped.",
)
@click.option("--no-mcp", is_flag=True, help="Do not serve MCP at /mcp.")
@click.option(
    "--teams-anonymous",
    is_flag=True,
    help="Serve Teams at /api/messages WITHOUT authentication (local testing, loopback only).",
)
@click.option("--no-teams", is_flag=True, help="Do not serve Teams at /api/messages even when it is configured.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Worker processes on this port; more than 1 needs database_url (their shared store). Each has its own "
    "model, queue and limits.",
)
@click.option("--open", "open_page", is_flag=True, help="Open the web page (/) in your browser once it listens.")
@click.option("--entra-tenant-id", metavar="ID", help="Entra ID sign-in: the tenant (KERNEL_APP_ENTRA_TENANT_ID).")
@click.option(
    "--entra-client-id",
    metavar="ID",
    help="Entra ID sign-in: the API app's client id or api:// URI, the tokens' audience (KERNEL_APP_ENTRA_CLIENT_ID).",
)
@click.option(
    "--entra-authority",
    metavar="URL",
    help="Entra ID sign-in: the authority (default https://login.microsoftonline.com; KERNEL_APP_ENTRA_AUTHORITY).",
)
@click.option(
    "--content-safety",
    type=click.Choice(["offline", "openai", "azure", "off"]),
    help="The screen on messages, documents, retrieved records and answers (default offline; "
    "KERNEL_APP_CONTENT_SAFETY; docs/content-safety.md).",
)
@click.pass_obj
def serve(
    app: AppContext,
    host: str,
    port: int,
    cors_origins: tuple[str, ...],
    approve_model_functions: bool,
    queue: int,
    timeout: float,
    no_mcp: bool,
    teams_anonymous: bool,
    no_teams: bool,
    workers: int,
    open_page: bool,
    entra_tenant_id: str | None,
    entra_client_id: str | None,
    entra_authority: str | None,
    content_safety: str | None,
) -> None:
    """Serve the kernel over HTTP: a web page at /, REST under /v1, OpenAI-compatible /v1/chat/completions,
    MCP at /mcp.

    \b
    Binds 127.0.0.1 unless --host says otherwise; any other address needs API keys or Entra ID sign-in:
      KERNEL_APP_API_KEYS=KEY1,KEY2 kernel-app serve --host 0.0.0.0
      kernel-app serve --host 0.0.0.0 --entra-tenant-id TENANT --entra-client-id API_CLIENT_ID
    Clients then send 'Authorization: Bearer KEY' (or a signed-in user's token).
    The API reference is the server's own /docs; --open opens the web page in your browser.
    Teams (/api/messages) is served when the Agents SDK's CONNECTIONS__SERVICE_CONNECTION__SETTINGS__*
    variables are set (README, "Teams"), or with --teams-anonymous for local testing.
    """
    from kernel_app.interfaces.server.entra import entra_config
    from kernel_app.interfaces.server.security import api_keys_from_env, check_bind

    given = {
        "entra_tenant_id": entra_tenant_id,
        "entra_client_id": entra_client_id,
        "entra_authority": entra_authority,
        "content_safety": content_safety,
    }
    given = {name: value for name, value in given.items() if value}
    if given:  # the flags win over the environment and the config file, as every setting's flag does
        app.overrides.update(given)
        app._settings = None  # resolved again, with them
    keys = api_keys_from_env()
    signed_in = entra_config(app.settings) is not None  # a one-line error for half a configuration
    check_bind(host, keys, signed_in)  # before anything loads
    if workers > 1:
        check_workers(app.settings.database_url, workers)
    teams = None
    if not no_teams:
        from kernel_app.interfaces.server.teams import check_teams_bind, is_anonymous, teams_config

        teams = teams_config(anonymous=teams_anonymous)
        check_teams_bind(host, teams)
        if teams is not None and is_anonymous(teams):
            click.echo(
                "WARNING: Teams at /api/messages accepts UNAUTHENTICATED requests (anonymous mode): "
                "for local testing only",
                err=True,
            )
    import uvicorn

    options: dict[str, Any] = {
        "api_keys": keys,
        "cors_origins": cors_origins,
        "queue": queue,
        "request_timeout": timeout,
        "approve_model_functions": approve_model_functions,
        "mcp": not no_mcp,
        "teams": teams,
    }
    shown = f"[{host}]" if ":" in host else host
    banner = (
        f"Kernel App serving on http://{shown}:{port} ({app.settings.service}; web page at /, docs at /docs, "
        "OpenAI base URL /v1"
        + ("" if no_mcp else ", MCP at /mcp")
        + ("" if teams is None else ", Teams at /api/messages")
        + ("" if keys and not signed_in else ", chat-copilot's web app at /copilot/")
        + (", API keys required" if keys and not signed_in else "")
        + (", Entra ID sign-in" + (" or API keys" if keys else "") + " required" if signed_in else "")
        + (f", {workers} workers" if workers > 1 else "")
        + ")"
    )
    if open_page:
        from kernel_app.interfaces.cli.open_page import open_when_listening, page_url

        open_when_listening(page_url(host, port))
    if workers > 1:
        # uvicorn starts each worker as a fresh (spawned) process that imports the app by name: the settings
        # and options this command resolved travel to it in the environment, from this process only.
        os.environ[WORKER_CONFIG] = base64.b64encode(pickle.dumps((app.settings, options))).decode()
        click.echo(banner, err=True)
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            lifespan="on",
        )
        return
    from kernel_app.interfaces.server import create_app

    asgi = create_app(app.settings, **options)
    report_problems(asgi.state.kernel_app.load_report.problems, quiet_warnings=True)
    click.echo(banner, err=True)
    uvicorn.run(asgi, host=host, port=port, log_level="warning", lifespan="on")


WORKER_CONFIG = "KERNEL_APP_SERVE_WORKER_CONFIG"


def check_workers(database_url: str | None, workers: int) -> None:
    """More than one worker needs the shared store: a one-line error naming the setting otherwise.

    Local SQLite is not enough: the files would be shared on one machine, but a REST turn's approval, the
    pending decisions and Teams' and chat-copilot's stores are kept per process (or per file with one
    writer in mind), so a request landing on another worker would not find them.
    """
    if not database_url:
        from kernel_app.base.errors import UsageError

        raise UsageError(
            f"--workers {workers} needs database_url (--database-url or KERNEL_APP_DATABASE_URL): the workers "
            "share conversations and memory through PostgreSQL; use --workers 1 without it"
        )


def worker_app() -> Any:
    """One worker's app (uvicorn's factory), from what :func:`serve` put in the environment."""
    from kernel_app.base import telemetry
    from kernel_app.interfaces.server import create_app

    telemetry.configure()  # a fresh process: --trace and the OTLP endpoint reach it through the environment
    settings, options = pickle.loads(base64.b64decode(os.environ[WORKER_CONFIG]))  # our own parent wrote it
    asgi = create_app(settings, **options)
    report_problems(asgi.state.kernel_app.load_report.problems, quiet_warnings=True)
    return asgi
