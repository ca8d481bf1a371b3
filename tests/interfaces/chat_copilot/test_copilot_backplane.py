"""The backplane on its own, two instances on one PostgreSQL (no servers): delivery in order to the
others only, messages far over NOTIFY's payload limit, and catching up after not listening."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kernel_app.interfaces.server.chat_copilot.backplane import Backplane
from tests.support import postgres as pg_support

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

pytestmark = pytest.mark.e2e  # a real PostgreSQL


class Inbox:
    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []

    async def deliver(self, chat_id: str, message: dict[str, Any]) -> int:
        self.got.append((chat_id, message))
        return 1

    async def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.got) < count:
            assert asyncio.get_running_loop().time() < deadline, f"got {len(self.got)} of {count}"
            await asyncio.sleep(0.02)


async def _started(url: str, inbox: Inbox) -> Backplane:
    backplane = Backplane(url, inbox.deliver)
    await backplane.start()
    assert backplane.listening is not None
    await asyncio.wait_for(backplane.listening.wait(), 10)
    return backplane


def _message(n: int, text: str = "") -> dict[str, Any]:
    return {"type": 1, "target": "ReceiveMessageUpdate", "arguments": [{"n": n, "content": text}]}


async def test_messages_reach_the_other_instance_in_order_and_not_their_sender(postgres_url: str) -> None:
    inbox_a, inbox_b = Inbox(), Inbox()
    a, b = await _started(postgres_url, inbox_a), await _started(postgres_url, inbox_b)
    try:
        long = "é" * 20_000  # 40 KB in UTF-8: NOTIFY could not carry it
        for n in range(300):  # more than one batch
            a.publish("c1", _message(n, long if n == 7 else ""))
        b.publish("c2", _message(-1))
        await inbox_b.wait_for(300)
        await inbox_a.wait_for(1)
        await asyncio.sleep(0.3)  # time for a duplicate, if one were sent
    finally:
        await a.stop()
        await b.stop()
    assert [m["arguments"][0]["n"] for _, m in inbox_b.got] == list(range(300))  # each once, in order
    assert {chat for chat, _ in inbox_b.got} == {"c1"}
    assert inbox_b.got[7][1]["arguments"][0]["content"] == long
    assert inbox_a.got == [("c2", _message(-1))]  # A got B's, never its own


async def test_what_was_sent_while_not_listening_is_delivered_on_return(postgres_url: str) -> None:
    inbox_a, inbox_b = Inbox(), Inbox()
    a, b = await _started(postgres_url, inbox_a), await _started(postgres_url, inbox_b)
    try:
        a.publish("c1", _message(1))
        await inbox_b.wait_for(1)
        await b.stop()  # as while B's connection is down
        a.publish("c1", _message(2))
        a.publish("c1", _message(3))
        await asyncio.sleep(0.5)  # written and announced, with nobody at B listening
        await b.start()  # B comes back: it reads what A wrote meanwhile, before any new NOTIFY
        await inbox_b.wait_for(3)
        a.publish("c1", _message(4))
        await inbox_b.wait_for(4)
        await asyncio.sleep(0.3)
    finally:
        await a.stop()
        await b.stop()
    assert [m["arguments"][0]["n"] for _, m in inbox_b.got] == [1, 2, 3, 4]
    assert inbox_a.got == []
