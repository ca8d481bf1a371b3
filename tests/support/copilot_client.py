"""Drive the chat-copilot surface as the web app does: its HTTP calls and a real SignalR client (pysignalr)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

USER = "c05c61eb-65e4-4223-915a-fe72b0c9ece1"  # the web app's user with authType None
TARGETS = (
    "ReceiveMessage",
    "ReceiveMessageUpdate",
    "ReceiveBotResponseStatus",
    "ReceiveUserTypingState",
    "UserJoined",
    "ChatEdited",
    "ChatDeleted",
)


def ask(text: str, chat_id: str, **variables: str) -> dict[str, Any]:
    """The web app's Ask body."""
    pairs = {"chatId": chat_id, "messageType": "0", **variables}
    return {"input": text, "variables": [{"key": k, "value": v} for k, v in pairs.items()]}


def approval(plan_message: dict[str, Any], state: int, edit: Callable[[dict[str, Any]], None] | None = None) -> str:
    """What the web app's Approve / Reject posts: the plan message's content with its state (and edits)."""
    content = json.loads(plan_message["content"])
    if edit is not None:
        edit(content)
    return json.dumps({**content, "state": state, "generatedPlanMessageId": plan_message["id"]})


class HubClient:
    """A pysignalr client joined to chats, recording every call the server makes on it."""

    def __init__(self, base: str, headers: dict[str, str] | None = None, access_token: str | None = None) -> None:
        """``access_token``: the token in the query, as a browser's SignalR client sends it (its WebSocket
        cannot send a header); ``headers`` as other clients do."""
        from urllib.parse import quote

        from pysignalr.client import SignalRClient

        query = f"?access_token={quote(access_token)}" if access_token else ""
        self.client = SignalRClient(f"{base}/messageRelayHub{query}", headers=headers)
        self.received: list[tuple[str, list[Any]]] = []
        self._changed = asyncio.Condition()
        self._opened = asyncio.Event()
        for target in TARGETS:
            self.client.on(target, self._recorder(target))

        async def opened() -> None:
            self._opened.set()

        self.client.on_open(opened)
        self._task: asyncio.Task[None] | None = None

    def _recorder(self, target: str) -> Callable[[list[Any]], Any]:
        async def record(arguments: list[Any]) -> None:
            async with self._changed:
                self.received.append((target, arguments))
                self._changed.notify_all()

        return record

    async def start(self) -> None:
        self._task = asyncio.create_task(self.client.run())
        await asyncio.wait_for(self._opened.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def join(self, chat_id: str) -> None:
        """AddClientToGroupAsync, waiting for its completion (the server has it when this returns)."""
        done = asyncio.Event()

        async def completed(_message: Any) -> None:
            done.set()

        await self.client.send("AddClientToGroupAsync", [chat_id], on_invocation=completed)
        await asyncio.wait_for(done.wait(), 10)

    def of(self, target: str) -> list[list[Any]]:
        return [arguments for name, arguments in self.received if name == target]

    async def wait(self, predicate: Callable[[HubClient], bool], timeout: float = 10) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self)), timeout)


@contextlib.asynccontextmanager
async def web_app(url: str, chat_title: str = "Bakery") -> AsyncIterator[tuple[httpx.AsyncClient, HubClient, str]]:
    """A chat created as the web app creates one, its hub connection joined to it."""
    base = f"{url}/copilot"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        created = await http.post("/chats", json={"title": chat_title})
        assert created.status_code == 201, created.text
        chat_id = created.json()["chatSession"]["id"]
        hub = HubClient(base)
        await hub.start()
        try:
            await hub.join(chat_id)
            yield http, hub, chat_id
        finally:
            await hub.stop()
