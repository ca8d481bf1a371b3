"""A Teams turn that may outlive its HTTP request: engine output queued, rendered into whichever Teams
turn is current.

A free-text message runs :meth:`ChatSession.handle` in a task that puts what it says (informative
updates, streamed text, approval requests) into :attr:`LiveTurn.outbox`. :func:`relay` renders the
outbox into a Teams turn: the message's own turn first (a proactive turn begun once the message was
acknowledged, or the request itself for ``expectReplies``); when the engine asks to approve a function
call that turn ends with the approval card, and after the click (or the timeout) a proactive turn relays
the rest. So the model's queue is not held while a card waits. In group chats, where Teams does not
stream, the relay keeps a typing indicator up until the answer (:meth:`Renderer.keep_typing`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel_app.interfaces.server.chat_surface import reply_text, stalled_text
from kernel_app.interfaces.server.teams import cards

if TYPE_CHECKING:
    from microsoft_agents.activity import Activity
    from microsoft_agents.hosting.core import TurnContext

    from kernel_app.commands.dispatch import Reply
    from kernel_app.conversation.events import ApprovalNeeded
    from kernel_app.interfaces.server.pg_decisions import PgDecisionStore
    from kernel_app.interfaces.server.side_store import DecisionStore

log = logging.getLogger("kernel_app.teams")

SORRY = "Sorry, something went wrong on my side; please try again."
THINKING = "Thinking…"  # the informative update that opens every model turn in a personal chat
TYPING_EVERY = 3.0  # seconds: Teams shows a typing indicator for about 3 s, or until the next message


def adaptive(card: dict[str, Any]) -> Any:
    from microsoft_agents.activity import Attachment

    return Attachment(content_type=cards.CONTENT_TYPE, content=card)


def user_of(activity: Activity) -> tuple[str, str]:
    """Who sent an activity: (their Entra object id, else channel id; their name)."""
    sender = activity.from_property
    if sender is None:
        return "", "someone"
    return str(sender.aad_object_id or sender.id or ""), str(sender.name or sender.id or "someone")


def continuation(activity: Activity) -> Activity:
    """The message a later proactive turn continues from: its replies go to the channel, not a response body."""
    # update=, not an assignment: the library types delivery_mode as str, though None (unset) is its default.
    return activity.model_copy(deep=True, update={"delivery_mode": None})


def card_response(card: dict[str, Any]) -> Any:
    """A card invoke's answer that replaces the card."""
    from microsoft_agents.activity import AdaptiveCardInvokeResponse

    return AdaptiveCardInvokeResponse(status_code=200, type=cards.CONTENT_TYPE, value=card)


def clicked(
    context: TurnContext,
    data: Any,
    key: str,
    store: DecisionStore[Any] | PgDecisionStore[Any],
    gone: dict[str, Any],
    only: str,
) -> Any:
    """The record a card's click names (``data[key]``) and that the clicker may decide; else the invoke's
    answer: ``gone`` (no such record) as the card, or ``only`` (formatted with the record) to another user."""
    record_id = str(data.get(key, "")) if isinstance(data, dict) else ""
    record = store.get(record_id) if record_id else None
    if record is None:
        return card_response(gone)
    if user_of(context.activity)[0] != record.owner:
        return message_response(only.format_map(vars(record)))
    return record


async def in_its_conversation(
    adapter: Any, identity: Any, activity: dict[str, Any], lock: asyncio.Lock, work: Callable[[TurnContext], Any]
) -> None:
    """``work(context)`` in a proactive turn of the conversation ``activity`` (a kept message) came from,
    after that conversation's turn in progress, if any (``lock``)."""
    from microsoft_agents.activity import Activity

    async def turn(context: TurnContext) -> None:
        async with lock:
            await work(context)

    await adapter.continue_conversation_with_claims(identity, Activity.model_validate(activity), turn)


def message_response(text: str) -> Any:
    """A card invoke's answer that leaves the card and shows ``text`` to the one who clicked."""
    from microsoft_agents.activity import AdaptiveCardInvokeResponse

    return AdaptiveCardInvokeResponse(status_code=200, type="application/vnd.microsoft.activity.message", value=text)


class Renderer:
    """Engine output as Teams activities: streamed in personal chats, one message in groups (with typing
    indicators while it is composed: :meth:`keep_typing`)."""

    def __init__(self, context: TurnContext, group: bool) -> None:
        self.context = context
        self.stream = None if group else context.streaming_response
        self.streamed = ""
        self.started = False  # something went into the stream
        self._typing: asyncio.Task[None] | None = None

    def info(self, text: str) -> None:
        # Teams' streaming protocol: informative updates come before the streamed text, not after it.
        if self.stream is not None and not self.streamed:
            self.started = True
            self.stream.queue_informative_update(text)

    def keep_typing(self) -> None:
        """In a group chat (no streaming there), a typing indicator now and every ``TYPING_EVERY`` seconds
        until the answer (:meth:`final`, :meth:`card`, :meth:`stop_typing`)."""
        from microsoft_agents.activity import Activity

        if self.stream is not None or self._typing is not None:
            return

        async def typing() -> None:
            while True:
                try:
                    await self.context.send_activity(Activity(type="typing"))
                except Exception:  # an indicator that does not arrive is no reason to stop the turn
                    log.debug("Teams: a typing indicator was not delivered", exc_info=True)
                await asyncio.sleep(TYPING_EVERY)

        self._typing = asyncio.create_task(typing())

    async def stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            await asyncio.gather(self._typing, return_exceptions=True)
            self._typing = None

    def chunk(self, text: str) -> None:
        self.streamed += text
        if self.stream is not None:
            self.started = True
            self.stream.queue_text_chunk(text)

    async def final(self, text: str) -> None:
        await self.stop_typing()
        if self.stream is None:
            await self.context.send_activity(text)
            return
        if text and text != self.streamed:
            self.stream.queue_text_chunk(("\n\n" if self.streamed else "") + text)
        await self.stream.end_stream()

    async def card(self, card: dict[str, Any], text: str) -> None:
        """End this turn's output with a card: the stream's final message carries it when a stream began."""
        from microsoft_agents.activity import Activity

        await self.stop_typing()
        if self.stream is None or not self.started:
            await self.context.send_activity(Activity(type="message", attachments=[adaptive(card)]))
            return
        if not self.streamed:
            self.stream.queue_text_chunk(text)
        self.stream.set_attachments([adaptive(card)])
        await self.stream.end_stream()


@dataclass
class CallApproval:
    """A function call of free text waiting for its card: who may decide, and the engine's future (what
    was decided is kept in ``teams.sqlite3``: :mod:`.call_store`)."""

    request: ApprovalNeeded
    owner: str
    owner_name: str
    decision: asyncio.Future[bool]


@dataclass
class LiveTurn:
    """One message's turn: its task, what it has said and not yet rendered, the approval it waits for."""

    activity: Activity  # the message: a proactive turn after a click continues from it
    identity: Any  # the message's claims, for that proactive turn
    group: bool
    timeout: float | None
    teams_id: str = ""
    conversation_id: str = ""  # the engine's
    said: str = ""  # the message's text
    owner: str = ""  # who sent it: only they decide its cards
    owner_name: str = ""
    approved: dict[str, str] = field(default_factory=dict)  # the model's call id -> its approval id, until it ran
    task: asyncio.Task[Reply] | None = None
    outbox: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    relaying: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: CallApproval | None = None
    held: bool = False  # a place at the model's queue
    # What the content screen blocked during the turn (ContentBlocked.describe()): said under the answer.
    blocked: list[str] = field(default_factory=list)

    def say(self, kind: str, value: Any) -> None:
        """``info`` / ``chunk`` text, or ``approval`` with a :class:`CallApproval`."""
        self.outbox.put_nowait((kind, value))


async def relay(context: TurnContext, live: LiveTurn, render: Renderer | None = None) -> None:
    """Render the turn into ``context`` until it ends, or until it asks for an approval (the card ends it);
    through ``render`` when the turn began rendering into it already (its "Thinking…").

    The timeout counts from this relay's start and restarts with each thing the turn renders: time spent
    waiting for a click is not the model's, and a turn that keeps making progress is not cut."""
    async with live.relaying:
        render = render or Renderer(context, live.group)
        render.keep_typing()
        try:
            await _relay(render, live)
        finally:
            await render.stop_typing()


async def _relay(render: Renderer, live: LiveTurn) -> None:
    """:func:`relay`'s loop, rendering into ``render``."""
    loop = asyncio.get_running_loop()
    deadline = None if live.timeout is None else loop.time() + live.timeout
    assert live.task is not None
    while True:
        if not live.outbox.empty():
            if await _render(render, live.outbox.get_nowait()):
                return
            if live.timeout is not None:  # progress restarts the deadline (as limits.gated does)
                deadline = loop.time() + live.timeout
            continue
        if live.task.done():
            break
        getter = asyncio.ensure_future(live.outbox.get())
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        await asyncio.wait({getter, live.task}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            if await _render(render, getter.result()):
                return
            if live.timeout is not None:  # progress restarts the deadline (as limits.gated does)
                deadline = loop.time() + live.timeout
            continue
        getter.cancel()
        if not live.task.done():  # the deadline passed
            assert live.timeout is not None  # without one, the wait above ends only when the task does
            live.task.cancel()
            await asyncio.gather(live.task, return_exceptions=True)
            await render.final(stalled_text(live.timeout))
            return
    try:
        reply = live.task.result()
    except asyncio.CancelledError:
        await render.final("Sorry, that was stopped before it finished.")
        return
    except Exception:  # handle() answers errors itself; anything else is ours
        await render.final(SORRY)
        raise
    await render.final(with_blocked(reply_text(reply), live.blocked))


def with_blocked(text: str, blocked: list[str]) -> str:
    """The answer, then a line for each thing the content screen blocked (that the answer does not say)."""
    notes = [f"> {line}" for line in dict.fromkeys(blocked) if line not in text]
    return "\n\n".join([text, *notes]) if notes else text


async def _render(render: Renderer, item: tuple[str, Any]) -> bool:
    """One queued item; True when it was an approval card (this relay's part is over)."""
    kind, value = item
    if kind == "info":
        render.info(value)
    elif kind == "chunk":
        render.chunk(value)
    else:
        approval: CallApproval = value
        request = approval.request
        card = cards.call_card(
            request.approval_id, request.function, request.arguments, request.effect, approval.owner_name
        )
        await render.card(card, f"I would like to run {request.function}: approve or reject it on the card.")
        return True
    return False
