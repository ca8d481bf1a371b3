"""The chat REPL: `ChatSession` with the scripted service, and `kernel-app chat` over the loopback server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.commands.dispatch import ChatSession
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from tests.support.cli import run_cli

SUM_PLAN = json.dumps({"steps": [{"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}]})


def session_with(*answers: str, tmp_path: Path | None = None) -> tuple[ChatSession, ScriptedChatCompletion]:
    service = ScriptedChatCompletion(list(answers))
    settings = Settings(memory_dir=tmp_path / "store") if tmp_path else Settings()
    return ChatSession(build_kernel(settings, chat_service=service).kernel), service


async def test_chat_keeps_the_conversation_and_function_results() -> None:
    session, service = session_with("Hello! How can I help?", "You added 2 and 3, which is 5.")
    first = await session.handle("Hi there")
    assert (first.kind, first.text) == ("answer", "Hello! How can I help?")
    ran = await session.handle("/run Math.add a=2 b=3")
    assert (ran.kind, ran.text) == ("result", "5")
    await session.handle("What did I just add?")
    last = service.requests[-1].messages
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert last[3]["content"] == "(ran Math.add on: no input)" and last[4]["content"] == "5"
    assert session.usage.calls == 2


async def test_streamed_answers_go_to_the_callback() -> None:
    session, _ = session_with("Fresh bread every morning.")
    pieces: list[str] = []
    reply = await session.handle("Why do people like the bakery?", on_chunk=pieces.append)
    assert reply.streamed and "".join(pieces) == "Fresh bread every morning." == reply.text


async def test_plan_is_shown_and_runs_only_when_approved() -> None:
    session, _ = session_with(SUM_PLAN, SUM_PLAN)
    shown: list[str] = []
    refused = await session.handle("/plan What is the sum of 110 and 990?", confirm=lambda p: shown.append(p) or False)
    assert refused.text == "Not run." and "Math.add(a=110, b=990)" in shown[0]

    async def yes(plan_text: str) -> bool:
        return True

    ran = await session.handle("/plan What is the sum of 110 and 990?", confirm=yes)
    assert (ran.kind, ran.text) == ("result", "1100")


async def test_bad_input_is_an_error_reply_never_an_exception(tmp_path: Path) -> None:
    service = ScriptedChatCompletion(default="I'd rather write a poem.")  # every planning answer is prose
    session = ChatSession(build_kernel(Settings(memory_dir=tmp_path / "store"), chat_service=service).kernel)
    cases = {
        "/run Math.nothing": "no function Math.nothing",
        "/run Math.add": "Math.add needs 'a': add a=VALUE",
        "/run Math.divide a=1 b=0": "divide",
        "/ask": "usage: /ask COLLECTION QUESTION",
        "/ask Nowhere what is saved?": "no memory collection named 'Nowhere'",
        "/teleport": "unknown command /teleport",
        "/plan Make a SWOT": "no valid plan after 4 answer(s)",
    }
    for line, expected in cases.items():
        reply = await session.handle(line)
        assert reply.is_error and expected in reply.text, (line, reply.text)
    assert (await session.handle("/reset")).kind == "help" and len(session.history.messages) == 1
    assert (await session.handle("/exit")).kind == "exit"


@pytest.mark.e2e
async def test_ask_answers_from_memory_with_sources(tmp_path: Path) -> None:
    session, service = session_with("Deliver late at night [opportunity-0].", tmp_path=tmp_path)
    kernel = session.kernel
    await kernel.invoke(
        kernel.get_function("memory", "save"),
        input="Late-night delivery could bring in more money",
        collection="SWOT",
        id="opportunity-0",
    )
    reply = await session.handle("/ask SWOT How could we bring in more money late at night?")
    assert reply.text == "Deliver late at night [opportunity-0].\n\nSources: [opportunity-0]"
    assert "[opportunity-0] Late-night delivery" in service.requests[0].prompt


async def test_the_conversation_is_trimmed_to_the_last_turns() -> None:
    service = ScriptedChatCompletion(default="ok")
    session = ChatSession(build_kernel(Settings(), chat_service=service).kernel, max_turns=2)
    for n in range(5):
        await session.handle(f"message {n}")
    contents = [m.content for m in session.history.messages]
    assert contents[0] == session.system and contents[1:] == ["message 3", "ok", "message 4", "ok"]


def test_chat_cli_over_the_loopback_server(openai_server, tmp_path: Path) -> None:
    openai_server.queue("Hello! Ask me about your business.", "You added 2 and 3: 5.", SUM_PLAN)
    lines = "Hi\n/run Math.add a=2 b=3\nWhat did I add?\n/plan What is the sum of 110 and 990?\ny\n/nope\n"
    proc = run_cli(
        "chat",
        input=lines,
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=openai_server.base_url,
        KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"),
    )
    assert proc.returncode == 1, proc.stderr  # a line failed: a script must be able to tell
    out = proc.stdout
    assert "you> Hi\nHello! Ask me about your business.\n" in out
    assert "you> /run Math.add a=2 b=3\n5\n" in out and "You added 2 and 3: 5." in out
    assert "Run this plan? [y/N, e to edit a step] y\n1100\n" in out
    assert "error: line 6: unknown command /nope" in proc.stderr
    assert proc.stderr.strip().endswith("error: 1 line(s) failed: line 6")
    third = openai_server.requests[1].body
    assert third["stream"] is True and any(m["content"] == "5" for m in third["messages"])
