"""The Teams renderer's rules for what a turn shows while it works, without a server: informative updates
only before the streamed text (Teams' streaming protocol), typing indicators in group chats until the answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kernel_app.interfaces.server.teams import turns
from kernel_app.interfaces.server.teams.turns import Renderer


class _Stream:
    """What the renderer uses of the SDK's StreamingResponse, recorded."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, str]] = []

    def queue_informative_update(self, text: str) -> None:
        self.queued.append(("informative", text))

    def queue_text_chunk(self, text: str) -> None:
        self.queued.append(("chunk", text))

    async def end_stream(self) -> None:
        self.queued.append(("end", ""))


class _Context:
    def __init__(self) -> None:
        self.streaming_response = _Stream()
        self.sent: list[Any] = []

    async def send_activity(self, activity: Any) -> None:
        self.sent.append(activity)


def test_an_informative_update_after_the_text_began_is_not_sent() -> None:
    context = _Context()
    render = Renderer(context, group=False)  # the stub has what it uses
    render.info("Thinking…")
    render.chunk("The answer")
    render.info("Running Math.add…")  # the model called a function after some text: Teams would refuse it
    asyncio.run(render.final("The answer"))
    assert context.streaming_response.queued == [("informative", "Thinking…"), ("chunk", "The answer"), ("end", "")]
    assert context.sent == []


def test_a_group_chat_gets_typing_until_the_answer_and_none_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turns, "TYPING_EVERY", 0.05)

    async def turn() -> list[Any]:
        context = _Context()
        render = Renderer(context, group=True)
        render.keep_typing()
        render.keep_typing()  # once is enough: a second call starts no second indicator loop
        render.info("Thinking…")  # no stream in a group: nothing
        await asyncio.sleep(0.3)
        await render.final("Hello, team.")
        await asyncio.sleep(0.2)
        return context.sent

    sent = asyncio.run(turn())
    kinds = [getattr(s, "type", s) for s in sent]
    assert kinds[-1] == "Hello, team." and set(kinds[:-1]) == {"typing"} and 3 <= len(kinds) - 1 <= 8, kinds
