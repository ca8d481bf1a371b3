"""Teams on loopback: a fake Bot Framework connector that records what the agent sends, and activities.

The connector is a real HTTP server on 127.0.0.1 given to the agent as ``serviceUrl``: replies arrive
as ``POST v3/conversations/{id}/activities[/{replyToId}]``, card updates as ``PUT .../activities/{id}``,
each answered ``{"id": ...}`` as the Bot Framework connector does.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kernel_app.interfaces.server.teams import teams_config
from tests.support.server import SERVED, make_app, running
from tests.support.tool_scripted import ToolScripted


@dataclass
class Sent:
    method: str
    path: str
    body: dict[str, Any]
    authorization: str | None
    id: str = ""  # what the connector answered: the activity's id in the conversation
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic)

    @property
    def type(self) -> str:
        return str(self.body.get("type"))

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")

    @property
    def stream(self) -> dict[str, Any] | None:
        for entity in self.body.get("entities") or []:
            if entity.get("type") == "streaminfo":
                return entity
        return None

    @property
    def card(self) -> dict[str, Any] | None:
        for attachment in self.body.get("attachments") or []:
            if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive":
                return attachment["content"]
        return None


@dataclass
class FakeConnector:
    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> list[Sent]:
        """Everything sent so far, once something matching ``predicate`` was (background work)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if any(predicate(s) for s in self.sent):
                    return list(self.sent)
            time.sleep(0.05)
        raise AssertionError(f"nothing matching arrived in {timeout} s; sent: {[s.body for s in self.sent]}")

    def take(self) -> list[Sent]:
        with self.lock:
            taken, self.sent[:] = list(self.sent), []
        return taken

    def app(self) -> Starlette:
        async def record(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                sent = Sent(request.method, request.url.path, body, request.headers.get("authorization"))
                sent.id = f"sent-{next(self.ids)}"
                self.sent.append(sent)
            return JSONResponse({"id": sent.id})

        return Starlette(routes=[Route("/v3/conversations/{rest:path}", record, methods=["POST", "PUT"])])


@contextmanager
def fake_connector() -> Iterator[FakeConnector]:
    connector = FakeConnector()
    # Idle connections stay open longer than a slow model turn, as the real connector service's do: with
    # uvicorn's 5 s, the agent's pooled connection from "Thinking…" was closed just as a 5 s turn's
    # answer reused it (connection reset), a race of the fake, not of the agent.
    with running(connector.app(), keep_alive=120) as url:
        connector.url = url + "/"
        yield connector


def activity(
    connector: FakeConnector,
    text: str = "",
    *,
    conversation: str = "conv-1",
    kind: str = "personal",
    channel: str = "msteams",
    user: str = "user-1",
    name: str = "Ada",
    **extra: Any,
) -> dict[str, Any]:
    """A message activity as Teams posts it (``extra`` adds or replaces fields)."""
    body: dict[str, Any] = {
        "type": "message",
        "id": f"msg-{uuid.uuid4().hex[:8]}",
        "channelId": channel,
        "serviceUrl": connector.url,
        "from": {"id": f"29:{user}", "name": name, "aadObjectId": f"aad-{user}"},
        "recipient": {"id": "28:kernel-app", "name": "Kernel App"},
        "conversation": {"id": conversation, "conversationType": kind, "tenantId": "tenant-1"},
        "locale": "en-US",
        "text": text,
    }
    body.update(extra)
    return body


def card_click(
    connector: FakeConnector,
    verb: str,
    plan_id: str,
    card_id: str,
    *,
    conversation: str = "conv-1",
    channel: str = "test",
    user: str = "user-1",
    name: str = "Ada",
) -> dict[str, Any]:
    """The invoke Teams posts when an ``Action.Execute`` button of the card ``card_id`` is clicked."""
    body = activity(
        connector,
        conversation=conversation,
        channel=channel,
        user=user,
        name=name,
        type="invoke",
        replyToId=card_id,
        value={"action": {"type": "Action.Execute", "verb": verb, "data": {"planId": plan_id}}, "trigger": "manual"},
    )
    body.pop("text")
    body["name"] = "adaptiveCard/action"
    return body


def teams_app(tmp_path: Path, service: ToolScripted, **options: Any) -> Any:
    return make_app(tmp_path, service, teams=teams_config({}, anonymous=True), **options)


def post(url: str, body: Any, *, settle: bool = True, **headers: str) -> httpx.Response:
    """POST an activity; with ``settle``, then wait until the server (served here by ``running``) has
    answered the messages it acknowledged: their turns run after the 202 (``TeamsAgent.answering``)."""
    response = httpx.post(f"{url}/api/messages", json=body, headers=headers, timeout=30)
    conversation = body.get("conversation") if isinstance(body, dict) else None
    if settle and response.is_success and isinstance(conversation, dict):
        settled(url, str(conversation.get("id")))
    return response


def settled(url: str, conversation: str | None = None, timeout: float = 30.0) -> None:
    """Wait until the Teams agent served at ``url`` answers no acknowledged message (of ``conversation``)."""
    if url not in SERVED:
        raise AssertionError(f"{url} is not served by tests.support.server.running: post(..., settle=False)")
    agent = getattr(SERVED[url].state, "teams", None)
    deadline = time.monotonic() + timeout
    while agent is not None and agent.answering(conversation):
        if time.monotonic() > deadline:
            raise AssertionError(f"the Teams agent at {url} still answers a message of {conversation or 'a chat'}")
        time.sleep(0.02)
