"""The SignalR hub ``/messageRelayHub`` in SignalR's JSON protocol over a plain WebSocket.

chat-copilot's web app skips negotiation and opens the WebSocket directly (other clients negotiate
first: ``POST .../negotiate`` is answered too). Every frame is JSON ending with ``\\x1e``. The client's
handshake ``{"protocol": "json", "version": 1}`` is answered ``{}``; then messages: 1 invocation,
3 completion, 6 ping, 7 close. The server pings every ``ping_interval`` seconds (the web app gives up
after 60 s of silence).

Client → server: ``AddClientToGroupAsync(chatId)``, ``SendMessageAsync(chatId, senderId, message)`` and
``SendUserTypingStateAsync(chatId, userId, isTyping)`` (both relayed to the others in the chat's group).
Server → group: :meth:`Hub.send` (``ReceiveMessage``, ``ReceiveMessageUpdate``, ``ReceiveBotResponseStatus``,
``ChatEdited``, ``ChatDeleted``, ``UserJoined``...).

Who: with sign-in each connection is its caller's (``user``, from the token in ``access_token``); it
joins only the groups of chats it takes part in (``member``), and what it relays names it as the sender,
whatever the client says (``SendMessageAsync``'s ``senderId`` and the message's ``userId``, the typing
state's ``userId``). Key-less local use (``user`` None) is as before: the client says who it is.

Several instances on one database: with a :class:`~.backplane.Backplane`, every send also goes to the
clients in the group on the other instances (and what they send comes here through :meth:`Hub.deliver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from kernel_app.interfaces.server.chat_copilot.backplane import Backplane

log = logging.getLogger("kernel_app.copilot")

SEPARATOR = "\x1e"
INVOCATION, COMPLETION, PING, CLOSE = 1, 3, 6, 7
DEFAULT_PING_INTERVAL = 15.0  # seconds; SignalR's own keep-alive default
HANDSHAKE_TIMEOUT = 15.0


class Connection:
    """One client: its socket, its groups, and a lock so frames from several tasks never interleave."""

    def __init__(self, socket: WebSocket, user: str | None = None) -> None:
        self.id = uuid.uuid4().hex
        self.socket = socket
        self.user = user  # who proved to be connected (None: key-less local use, anyone)
        self.groups: set[str] = set()
        self.open = True
        self._lock = asyncio.Lock()

    async def write(self, message: dict[str, Any]) -> bool:
        if not self.open:
            return False
        try:
            async with self._lock:
                await self.socket.send_text(json.dumps(message, ensure_ascii=False) + SEPARATOR)
            return True
        except Exception:  # a client gone mid-send: drop it, the others still get theirs
            self.open = False
            return False


class Hub:
    """Groups of connections by chat id; the HTTP side sends through :meth:`send`."""

    def __init__(self, ping_interval: float = DEFAULT_PING_INTERVAL) -> None:
        self.ping_interval = ping_interval
        self.groups: dict[str, set[Connection]] = {}
        self.connections: set[Connection] = set()
        self.backplane: Backplane | None = None  # set with database_url: other instances' clients too
        # The connection's user from its socket's scope (None: local use), and whether a user takes part in
        # a chat; set by the surface (chat_copilot.mount). By default everyone is local and in every chat.
        self.user_of: Callable[[Any], str | None] = lambda scope: None
        self.member: Callable[[str, str], bool] = lambda chat_id, user: True

    async def send(self, chat_id: str, target: str, *arguments: Any, exclude: Connection | None = None) -> int:
        """Invoke ``target`` on every client in the chat's group (but ``exclude``), here and, through the
        backplane, on the other instances; returns how many got it here."""
        message = {"type": INVOCATION, "target": target, "arguments": list(arguments)}
        if self.backplane is not None:
            self.backplane.publish(chat_id, message)
        return await self._write_group(chat_id, message, exclude)

    async def deliver(self, chat_id: str, message: dict[str, Any]) -> int:
        """A message another instance's hub sent: to the group's clients here (the backplane calls this)."""
        return await self._write_group(chat_id, message, None)

    async def _write_group(self, chat_id: str, message: dict[str, Any], exclude: Connection | None) -> int:
        members = [c for c in self.groups.get(chat_id, set()) if c is not exclude]
        sent = await asyncio.gather(*(c.write(message) for c in members))
        return sum(sent)

    def join(self, connection: Connection, chat_id: str) -> None:
        connection.groups.add(chat_id)
        self.groups.setdefault(chat_id, set()).add(connection)

    def leave(self, connection: Connection) -> None:
        connection.open = False
        self.connections.discard(connection)
        for chat_id in connection.groups:
            members = self.groups.get(chat_id)
            if members is not None:
                members.discard(connection)
                if not members:
                    del self.groups[chat_id]

    # region the socket

    async def serve(self, socket: WebSocket) -> None:
        """One WebSocket from accept to close."""
        from starlette.websockets import WebSocketDisconnect

        await socket.accept()
        connection = Connection(socket, self.user_of(socket.scope))
        pinger: asyncio.Task[None] | None = None
        try:
            buffer = ""
            try:
                handshake, buffer = await asyncio.wait_for(_next_frame(socket, buffer), HANDSHAKE_TIMEOUT)
            except asyncio.TimeoutError:
                await socket.close(code=1002)
                return
            error = _handshake_error(handshake)
            if error:
                await socket.send_text(json.dumps({"error": error}) + SEPARATOR)
                await socket.close(code=1002)
                return
            await socket.send_text("{}" + SEPARATOR)
            self.connections.add(connection)
            pinger = asyncio.create_task(self._ping(connection))
            while True:
                frame, buffer = await _next_frame(socket, buffer)
                if not await self._handle(connection, frame):
                    break
        except WebSocketDisconnect:
            pass
        finally:
            if pinger is not None:
                pinger.cancel()
            self.leave(connection)
            with contextlib.suppress(Exception):
                await socket.close()

    async def _ping(self, connection: Connection) -> None:
        while connection.open:
            await asyncio.sleep(self.ping_interval)
            await connection.write({"type": PING})

    async def _handle(self, connection: Connection, frame: str) -> bool:
        """One message from the client; False when the connection should end."""
        try:
            message = json.loads(frame)
        except ValueError:
            await connection.write({"type": CLOSE, "error": "a frame is not JSON", "allowReconnect": False})
            return False
        kind = message.get("type") if isinstance(message, dict) else None
        if kind in (PING, COMPLETION):
            return True
        if kind == CLOSE:
            return False
        if kind != INVOCATION:
            return True  # stream messages and the like: this hub has no streaming methods
        invocation_id = message.get("invocationId")
        try:
            await self._invoke(connection, str(message.get("target", "")), list(message.get("arguments") or []))
        except _HubError as error:
            if invocation_id is not None:
                await connection.write({"type": COMPLETION, "invocationId": invocation_id, "error": str(error)})
            return True
        if invocation_id is not None:
            await connection.write({"type": COMPLETION, "invocationId": invocation_id, "result": None})
        return True

    async def _invoke(self, connection: Connection, target: str, arguments: list[Any]) -> None:
        if target == "AddClientToGroupAsync":
            _arity(target, arguments, 1)
            self.join(connection, self._chat_of(connection, arguments[0]))
        elif target == "SendMessageAsync":
            _arity(target, arguments, 3)
            chat_id = self._chat_of(connection, arguments[0])
            sender, message = arguments[1], arguments[2]
            if connection.user is not None:  # the connection's user, whoever the client says sent it
                sender = connection.user
                if isinstance(message, dict):
                    message = {**message, "userId": connection.user}
            await self.send(chat_id, "ReceiveMessage", chat_id, sender, message, exclude=connection)
        elif target == "SendUserTypingStateAsync":
            _arity(target, arguments, 3)
            chat_id = self._chat_of(connection, arguments[0])
            typist = arguments[1] if connection.user is None else connection.user
            await self.send(chat_id, "ReceiveUserTypingState", chat_id, typist, bool(arguments[2]), exclude=connection)
        else:
            raise _HubError(f"Unknown hub method '{target}'")

    def _chat_of(self, connection: Connection, argument: Any) -> str:
        """The chat an invocation names, if the connection's user takes part in it; else the hub error a
        chat that does not exist gets (whether another's chat exists is not told)."""
        chat_id = str(argument)
        if connection.user is not None and not self.member(chat_id, connection.user):
            raise _HubError(f"no chat {chat_id!r}")
        return chat_id

    # endregion


class _HubError(Exception):
    pass


def _arity(target: str, arguments: list[Any], count: int) -> None:
    if len(arguments) != count:
        raise _HubError(f"{target} takes {count} arguments, not {len(arguments)}")


def _handshake_error(frame: str) -> str | None:
    try:
        handshake = json.loads(frame)
    except ValueError:
        return "the handshake is not JSON"
    if not isinstance(handshake, dict) or handshake.get("protocol") != "json":
        return 'only the json protocol is supported: send {"protocol": "json", "version": 1}'
    if handshake.get("version") != 1:
        return "only version 1 of the json protocol is supported"
    return None


async def _next_frame(socket: WebSocket, buffer: str) -> tuple[str, str]:
    """The next ``\\x1e``-terminated frame; a WebSocket message may carry several or part of one."""
    while SEPARATOR not in buffer:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            from starlette.websockets import WebSocketDisconnect

            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is None and message.get("bytes") is not None:
            text = message["bytes"].decode("utf-8", "replace")
        buffer += text or ""
    frame, _, rest = buffer.partition(SEPARATOR)
    return frame, rest


def negotiation() -> dict[str, Any]:
    """``POST /messageRelayHub/negotiate``: WebSockets only; the id is not checked (any socket may connect)."""
    connection_id = uuid.uuid4().hex
    return {
        "negotiateVersion": 1,
        "connectionId": connection_id,
        "connectionToken": connection_id,
        "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text"]}],
    }
