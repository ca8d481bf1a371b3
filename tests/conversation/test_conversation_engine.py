"""The conversation engine: function calling with approvals, typed events, token-bounded history, the store.

The model is the scripted service, taught to answer with tool calls (``ToolScripted``, see
tests/support/tool_scripted.py): the engine's own loop runs the calls on the real kernel, so what
runs, what asks and what is stored is the real behaviour.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation import (
    ApprovalNeeded,
    ConversationEngine,
    ConversationNotFoundError,
    ConversationStore,
    Done,
    ErrorEvent,
    FunctionCallFinished,
    FunctionCallStarted,
    Message,
    TextDelta,
    collect,
)
from kernel_app.conversation.history import fit, message_tokens
from kernel_app.kernel.builder import build_kernel
from tests.support.tool_scripted import ToolScripted, engine_with, tools


async def test_a_read_function_runs_unasked_and_its_result_reaches_the_model() -> None:
    engine, service = engine_with(tools(("Math-add", {"a": 2, "b": 3})), "2 plus 3 is 5.")
    conversation = engine.create()
    asked: list[ApprovalNeeded] = []
    events = [e async for e in engine.stream(conversation.id, "What is 2 plus 3?", approve=asked.append)]
    kinds = [type(e) for e in events]
    assert kinds[0] is FunctionCallStarted and kinds[1] is FunctionCallFinished and kinds[-1] is Done
    assert asked == []  # Math is READ: no approval
    finished = events[1]
    assert (finished.function, finished.arguments, finished.result, finished.ok) == (
        "Math.add",
        {"a": 2, "b": 3},
        "5",
        True,
    )
    assert events[-1].text == "2 plus 3 is 5." and events[-1].conversation_id == conversation.id
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "2 plus 3 is 5."
    # The second request carried the tool result; the allow-list was explicit and never empty.
    assert service.requests[1].messages[-1]["role"] == "tool" and service.tool_results[1] == ["5"]
    assert service.offered[0] and "Math-add" in service.offered[0]  # the most relevant (test_conversation_offered)
    stored = engine.store.messages(conversation.id)
    assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[1].tool_calls[0].function == "Math.add" and stored[2].content == "5"
    assert engine.store.get(conversation.id).title == "What is 2 plus 3?"


@pytest.mark.e2e
async def test_a_write_function_asks_and_is_refused_by_default(tmp_path: Path) -> None:
    save = tools(("memory-save", {"input": "We bake at night", "collection": "Notes", "id": "n1"}))
    engine, _ = engine_with(save, "I did not save it.", save, "Saved.", tmp_path=tmp_path)
    conversation = engine.create()
    refused = await engine.send(conversation.id, "Remember that we bake at night")
    approval = next(e for e in refused.events if isinstance(e, ApprovalNeeded))
    assert approval.function == "memory.save" and approval.effect == "write"
    assert refused.calls[0].ok is False and "did not approve" in refused.calls[0].result
    assert refused.text == "I did not save it."

    async def yes(request: ApprovalNeeded) -> bool:
        assert request.arguments["id"] == "n1"
        return True

    approved = await engine.send(conversation.id, "Yes, save it", approve=yes)
    assert approved.calls[0].ok and approved.text == "Saved."
    recalled = await engine.kernel.invoke(
        engine.kernel.get_function("memory", "recall"), input="bake at night", collection="Notes"
    )
    assert "We bake at night" in str(recalled)


async def test_a_function_outside_the_allow_list_is_not_run() -> None:
    engine, service = engine_with(tools(("Math-divide", {"a": 1, "b": 1})), "No.", functions=["Math.add"])
    result = await engine.send(engine.create().id, "Divide 1 by 1")
    assert service.offered[0] == ["Math-add"]
    assert result.calls[0].ok is False and "not a function you may call" in result.calls[0].result


async def test_an_empty_allow_list_offers_no_tools() -> None:
    engine, service = engine_with("Plain answer.", functions=[])
    assert (await engine.send(engine.create().id, "Hi")).text == "Plain answer."
    assert service.offered == [None]


async def test_rounds_are_bounded_then_the_model_answers_without_tools() -> None:
    first, second = tools(("Math-add", {"a": 1, "b": 1})), tools(("Math-add", {"a": 2, "b": 1}))
    engine, service = engine_with(first, second, "Done adding.", max_rounds=2)
    result = await engine.send(engine.create().id, "Keep adding")
    assert len(result.calls) == 2 and result.text == "Done adding."
    assert service.offered[2] is None  # the last request offers no tools


async def test_a_repeated_call_is_not_run_again_and_the_model_answers_from_the_result() -> None:
    # Qwen2.5-Coder-0.5B called Math.multiply with the same numbers every round, then answered nothing.
    again = tools(("Math-multiply", {"a": 1234, "b": 5678}))
    engine, service = engine_with(again, again, "The product is 7006652.")
    result = await engine.send(engine.create().id, "What is 1234 times 5678?")
    assert [c.result for c in result.calls] == ["7006652"] and result.text == "The product is 7006652."
    assert service.offered[1] and service.offered[2] is None  # after the repeat: no tools, an answer


async def test_a_failing_turn_is_an_error_event_and_stores_nothing() -> None:
    engine, _ = engine_with()  # no scripted answer: the service fails
    conversation = engine.create()
    events = [e async for e in engine.stream(conversation.id, "Hello?")]
    assert isinstance(events[-1], ErrorEvent) and "no scripted answer" in events[-1].message
    assert engine.store.messages(conversation.id) == []


async def test_function_errors_go_back_to_the_model() -> None:
    engine, service = engine_with(tools(("Math-divide", {"a": 1, "b": 0})), "You cannot divide by zero.")
    result = await engine.send(engine.create().id, "1/0?")
    assert result.calls[0].ok is False and result.calls[0].result.startswith("error:")
    assert service.tool_results[1][0].startswith("error:") and "divide by zero" in service.tool_results[1][0]


def test_history_is_bounded_by_tokens_and_keeps_turns_whole() -> None:
    messages = []
    for n in range(20):
        messages += [Message("user", f"question {n} " + "word " * 50), Message("assistant", "answer " * 50)]
    one_turn = message_tokens(messages[0]) + message_tokens(messages[1])
    kept = fit(messages, budget=one_turn * 3 + 1)
    assert len(kept) == 6 and kept[0].content.startswith("question 17") and kept[-1] is messages[-1]
    calls = [Message("user", "q"), Message("assistant", "", tool_calls=()), Message("tool", "x" * 4000)]
    assert fit([*messages, *calls], budget=10)[0].content == "q"  # the newest turn is kept whole


async def test_the_prompt_follows_the_model_context_and_the_store_keeps_everything(tmp_path: Path) -> None:
    engine, service = engine_with(
        default="ok " * 40, tmp_path=tmp_path, context_tokens=1200, max_tokens=200, functions=[]
    )
    conversation = engine.create()
    for n in range(12):
        await engine.send(conversation.id, f"message {n} " + "lorem ipsum " * 30)
    assert len(engine.store.messages(conversation.id)) == 24
    sent = service.requests[-1].messages
    assert sent[0]["role"] == "system" and sent[-1]["content"].startswith("message 11")
    assert 2 < len(sent) < 24 and sum(len(m["content"]) for m in sent) / 3.5 < 1200


async def test_streaming_and_not_give_the_same_turn() -> None:
    engine, service = engine_with("Fresh bread every morning.", "Fresh bread every morning.")
    streamed = await collect(engine.stream(engine.create().id, "Why?", stream=True))
    whole = await engine.send(engine.create().id, "Why?")
    assert streamed.text == whole.text == "Fresh bread every morning."
    assert [r.streaming for r in service.requests] == [True, False]
    assert len([e for e in streamed.events if isinstance(e, TextDelta)]) == 4
    assert streamed.usage.completion_tokens == 4


async def test_the_repl_session_renders_engine_events_and_asks_for_approval() -> None:
    from kernel_app.commands.dispatch import ChatSession

    service = ToolScripted([tools(("memory-save", {"input": "x", "collection": "Notes"})), "Not saved."])
    session = ChatSession(build_kernel(Settings(), chat_service=service).kernel)
    seen: list[str] = []
    asked: list[str] = []
    reply = await session.handle(
        "Save x",
        approve=lambda request: asked.append(request.describe()) or False,
        on_event=lambda event: seen.append(event.type),
    )
    assert reply.text == "Not saved." and asked == ["memory.save(input='x', collection='Notes')"]
    assert seen[:3] == ["function_call_started", "approval_needed", "function_call_finished"] and seen[-1] == "done"


class SmallContext(ToolScripted):
    """A service that says its context window, as the embedded model does (``n_ctx``)."""

    n_ctx: int = 600


async def test_the_context_follows_the_service_in_use() -> None:
    service = SmallContext(default="ok", ai_model_id="gpt-4o")  # the name alone would say 128k
    engine = ConversationEngine(build_kernel(Settings(), chat_service=service).kernel, functions=[], max_tokens=100)
    assert engine.context_tokens == 600
    conversation = engine.create()
    for n in range(8):
        await engine.send(conversation.id, f"message {n} " + "lorem ipsum " * 20)
    sent = service.requests[-1].messages
    assert len(sent) < 17 and sent[-1]["content"].startswith("message 7")  # 16 stored messages, fewer sent
    assert sum(len(m["content"]) for m in sent) / 3.5 < 600 - 100
    named = ConversationEngine(build_kernel(Settings(), chat_service=ToolScripted(ai_model_id="gpt-4o")).kernel)
    assert named.context_tokens == 128_000


async def test_a_repl_plan_is_a_plan_proposed_event() -> None:
    from kernel_app.commands.dispatch import ChatSession

    plan = json.dumps({"steps": [{"function": "Math.add", "args": {"a": 1, "b": 2}, "output": "sum"}]})
    session = ChatSession(build_kernel(Settings(), chat_service=ToolScripted([plan])).kernel)
    seen: list[Any] = []
    reply = await session.handle("/plan Add 1 and 2", confirm=lambda text: True, on_event=seen.append)
    assert reply.text == "3" and seen[0].type == "plan_proposed"
    assert seen[0].steps == [{"function": "Math.add", "args": {"a": 1, "b": 2}}] and "Math.add" in seen[0].text


class ThreadRecordingStore(ConversationStore):
    """A local store that says it is PostgreSQL, and records which thread each durable write ran on."""

    def __init__(self, path: Path, backend: str) -> None:
        super().__init__(path)
        self.backend = backend
        self.threads: list[str] = []

    def append_many(self, conversation_id: str, messages: list[Message]) -> list[Message]:
        self.threads.append(threading.current_thread().name)
        return super().append_many(conversation_id, messages)

    def update(self, conversation_id: str, **changes: Any) -> None:
        self.threads.append(threading.current_thread().name)
        super().update(conversation_id, **changes)


@pytest.mark.parametrize(("backend", "on_the_loop"), [("postgresql", False), ("local", True)])
async def test_a_turns_durable_writes_leave_the_event_loop_on_postgresql(
    tmp_path: Path, backend: str, on_the_loop: bool
) -> None:
    # A durable COMMIT on PostgreSQL waits for the disk: the server's other turns go on meanwhile.
    store = ThreadRecordingStore(tmp_path / "conversations.sqlite3", backend)
    kernel = build_kernel(Settings(memory_dir=tmp_path / "store"), chat_service=ToolScripted(["Noted."])).kernel
    engine = ConversationEngine(kernel, store)
    conversation = engine.create()
    result = await engine.send(conversation.id, "We bake at night")
    assert result.text == "Noted."
    loop_thread = threading.current_thread().name
    assert len(store.threads) == 2  # the turn's messages, then the title from its first words
    assert all((name == loop_thread) is on_the_loop for name in store.threads), store.threads
    assert [m.content for m in store.messages(conversation.id)] == ["We bake at night", "Noted."]
    assert store.get(conversation.id).title


async def test_a_turn_continues_only_its_owners_conversation() -> None:
    engine, service = engine_with("Hello, Alice.")
    conversation = engine.create(owner="entra:t:alice")
    assert conversation.owner == "entra:t:alice"
    for given in (None, conversation):  # read by the engine, or by the caller before the turn
        with pytest.raises(ConversationNotFoundError):
            [e async for e in engine.stream(conversation.id, "Hi", owner="entra:t:bob", conversation=given)]
    assert service.requests == [] and engine.store.messages(conversation.id) == []  # nothing ran, nothing kept
    done = [e async for e in engine.stream(conversation.id, "Hi", owner="entra:t:alice")][-1]
    assert isinstance(done, Done) and done.text == "Hello, Alice."
