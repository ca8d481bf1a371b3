"""How a turn that was cut short ends in the conversation: what the engine produced, marked interrupted.

A turn is stored when it ends (:mod:`kernel_app.conversation.engine`). A turn stopped before that, by a
client that disconnected (or a request deadline), would leave nothing, though the model may have
answered half its question and functions may have run. A surface that wants the record asks the
engine for it (``stream(..., keep_if_cut=True)``); the turn then ends with :func:`cut_ending`: the
messages not stored yet, a result for each call left without one (the model's history needs it), and
an answer holding the text streamed so far, marked as PostgreSQL's store marks a turn whose server died.
"""

from __future__ import annotations

from collections.abc import Sequence

from kernel_app.conversation.store import Message

CUT_SHORT = "(interrupted: this turn was stopped before it finished, its client gone or out of time; ask again)"
CALL_CUT_SHORT = "(interrupted before this call finished)"


def cut_ending(unstored: Sequence[Message], streamed: str) -> list[Message]:
    """The messages that end a cut turn: ``unstored`` (this turn's messages not stored yet, in order),
    a result for each call without one, then the assistant's ``streamed`` text with :data:`CUT_SHORT`."""
    ending = list(unstored)
    answered = {m.call_id for m in ending if m.role == "tool"}
    for message in unstored:
        for call in message.tool_calls:
            if call.id not in answered:
                ending.append(Message("tool", CALL_CUT_SHORT, name=call.function, call_id=call.id))
    text = streamed.rstrip()
    ending.append(Message("assistant", f"{text}\n\n{CUT_SHORT}" if text else CUT_SHORT))
    return ending


__all__ = ["CALL_CUT_SHORT", "CUT_SHORT", "cut_ending"]
