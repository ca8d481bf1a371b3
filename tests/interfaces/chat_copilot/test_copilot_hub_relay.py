"""The hub's side of the backplane, without a database: what it sends is published once, and what
arrives from another instance goes to this instance's clients only (never published again, so two
instances cannot echo a message back and forth)."""

from __future__ import annotations

import json
from typing import Any

from kernel_app.interfaces.server.chat_copilot.hub import INVOCATION, SEPARATOR, Connection, Hub


class Socket:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_text(self, text: str) -> None:
        assert text.endswith(SEPARATOR)
        self.sent.append(json.loads(text[: -len(SEPARATOR)]))


class RecordingBackplane:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, chat_id: str, message: dict[str, Any]) -> None:
        self.published.append((chat_id, message))


def _joined(hub: Hub, chat_id: str) -> tuple[Connection, Socket]:
    socket = Socket()
    connection = Connection(socket)  # type: ignore[arg-type]  # only send_text is used
    hub.join(connection, chat_id)
    return connection, socket


async def test_a_send_is_published_once_and_a_delivery_is_not_published_again() -> None:
    hub = Hub()
    backplane = RecordingBackplane()
    hub.backplane = backplane  # type: ignore[assignment]  # the hub only calls publish
    sender, sender_socket = _joined(hub, "c1")
    _, other_socket = _joined(hub, "c1")
    _, elsewhere_socket = _joined(hub, "c2")

    assert await hub.send("c1", "ReceiveUserTypingState", "c1", "ana", True, exclude=sender) == 1
    message = {"type": INVOCATION, "target": "ReceiveUserTypingState", "arguments": ["c1", "ana", True]}
    assert backplane.published == [("c1", message)]  # the other instances' clients get it, sender or not
    assert (sender_socket.sent, other_socket.sent) == ([], [message])

    relayed = {"type": INVOCATION, "target": "ReceiveMessage", "arguments": ["c1", "bo", {"content": "hi"}]}
    assert await hub.deliver("c1", relayed) == 2  # every client here: its sender is on another instance
    assert sender_socket.sent == [relayed] and other_socket.sent == [message, relayed]
    assert elsewhere_socket.sent == [] and len(backplane.published) == 1  # not published again


async def test_without_a_backplane_the_hub_sends_only_here() -> None:
    hub = Hub()
    _, socket = _joined(hub, "c1")
    assert hub.backplane is None
    assert await hub.send("c1", "ChatEdited", {"id": "c1"}) == 1
    assert socket.sent[0]["target"] == "ChatEdited"
