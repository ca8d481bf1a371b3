"""Teams (and any Microsoft 365 Agents SDK channel) on ``kernel-app serve``: ``POST /api/messages``.

A thin adapter over the conversation engine and the REPL's command layer
(:class:`kernel_app.commands.dispatch.ChatSession`): activities in, engine events out as Teams activities
(streamed text, informative updates, plan approval cards). Nothing here runs a model loop of its own.

Authentication is the Agents SDK's: Entra app credentials from its standard environment variables
(``CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID`` / ``TENANTID`` / ``CLIENTSECRET``), checked by
the SDK's per-route JWT decorator on ``/api/messages`` only; the rest of the server keeps its own keys.
Anonymous requests only when asked for (``--teams-anonymous`` or ``...__ANONYMOUS_ALLOWED=true``), for
local development on a loopback address.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kernel_app.interfaces.server.state import ServerState

PATH = "/api/messages"
ENV_PREFIX = "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__"
ANONYMOUS_VARIABLE = ENV_PREFIX + "ANONYMOUS_ALLOWED"


def teams_config(environ: Mapping[str, str] | None = None, *, anonymous: bool = False) -> dict[str, Any] | None:
    """The Agents SDK's configuration from the environment, or None when Teams is not set up.

    Set up means: the SDK's service connection variables are set, or ``anonymous`` (``--teams-anonymous``)."""
    env = dict(os.environ if environ is None else environ)
    if anonymous:
        env[ANONYMOUS_VARIABLE] = "true"
    if not any(key.startswith(ENV_PREFIX) for key in env):
        return None
    from microsoft_agents.activity import load_configuration_from_env

    sdk_keys = ("CONNECTIONS__", "CONNECTIONSMAP__", "AGENTAPPLICATION__")
    return load_configuration_from_env({k: v for k, v in env.items() if k.startswith(sdk_keys)})


def is_anonymous(config: Mapping[str, Any]) -> bool:
    settings = config.get("CONNECTIONS", {}).get("SERVICE_CONNECTION", {}).get("SETTINGS", {})
    return str(settings.get("ANONYMOUS_ALLOWED", "")).strip().lower() in ("1", "true", "yes", "on")


def check_teams_bind(host: str, config: Mapping[str, Any] | None) -> None:
    """Anonymous Teams requests are for local development: refused together with a non-loopback bind."""
    from kernel_app.interfaces.server.security import is_loopback

    if config is None:
        return
    if is_anonymous(config) and not is_loopback(host):
        raise ConfigError(
            f"refusing to accept unauthenticated Teams requests on {host}: bind 127.0.0.1, "
            "or drop --teams-anonymous and set the Entra app's CLIENTID, TENANTID and CLIENTSECRET"
        )
    settings = config.get("CONNECTIONS", {}).get("SERVICE_CONNECTION", {}).get("SETTINGS", {})
    if not is_anonymous(config) and not settings.get("CLIENTID"):
        raise ConfigError(f"Teams: set {ENV_PREFIX}CLIENTID (the Entra app id), or use --teams-anonymous locally")


def mount(app: FastAPI, state: ServerState, config: Mapping[str, Any], *, max_body_bytes: int) -> None:
    """Serve ``POST /api/messages`` on ``app``, outside its API-key check (the SDK checks the JWT)."""
    import logging

    from kernel_app.interfaces.server.security import BodyLimit, LoopbackHosts
    from kernel_app.interfaces.server.teams.agent import TeamsAgent

    agent = TeamsAgent(state, dict(config))
    asgi: Any = agent.asgi()
    if agent.anonymous:
        logging.getLogger("kernel_app.teams").warning(
            "Teams: %s accepts UNAUTHENTICATED requests (anonymous mode): local development only", PATH
        )
        asgi = LoopbackHosts(asgi)
    asgi = BodyLimit(asgi, max_bytes=max_body_bytes)
    app.state.teams = agent
    app.add_middleware(TeamsRoute, teams=asgi)


class TeamsRoute:
    """ASGI middleware: ``/api/messages`` goes to the Teams endpoint, everything else on down."""

    def __init__(self, app: Any, teams: Any) -> None:
        self.app = app
        self.teams = teams

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") == PATH:
            await self.teams(scope, receive, send)
            return
        await self.app(scope, receive, send)
