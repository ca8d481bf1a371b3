"""chat-copilot's SignalR hub with real clients on 127.0.0.1: a raw WebSocket as the web app opens it
(no negotiation) and pysignalr, over the scripted model. Streamed replies, statuses, plan messages and
their approval through POST /chats/{id}/plan, relays to the group, pings."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from kernel_app.conversation import ConversationStore
from tests.support.cli import TESTS
from tests.support.copilot_client import USER, HubClient, approval, ask, web_app
from tests.support.server import make_app, running
from tests.support.tool_scripted import ToolScripted, tools

PING_INTERVAL = 0.3  # seconds: the server's keep-alive, short so the test does not wait
SUM_PLAN = json.dumps({"steps": [{"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}]})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted, Path]]:
    service = ToolScripted()
    with running(make_app(tmp_path, service, copilot={"ping_interval": PING_INTERVAL})) as url:
        yield url, service, tmp_path


def ws(url: str) -> str:
    return url.replace("http://", "ws://", 1)


async def frames(socket: Any, count: int, timeout: float = 5) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while len(found) < count:
        raw = await asyncio.wait_for(socket.recv(), timeout)
        found += [json.loads(part) for part in raw.split("\x1e") if part]
    return found


async def test_the_handshake_and_pings_as_the_web_app_connects(served: tuple[str, ToolScripted, Path]) -> None:
    url, _, _ = served
    for path in ("/copilot/messageRelayHub", "/messageRelayHub"):  # the web app drops its base's path
        async with connect(ws(url) + path, origin="http://localhost:3000") as socket:  # type: ignore[arg-type]
            await socket.send('{"protocol":"json","version":1}\x1e')
            assert await asyncio.wait_for(socket.recv(), 5) == "{}\x1e"
            began = asyncio.get_running_loop().time()
            [ping] = await frames(socket, 1)
            assert ping == {"type": 6} and asyncio.get_running_loop().time() - began < 60
            await socket.send(json.dumps({"type": 1, "invocationId": "7", "target": "Nope", "arguments": []}) + "\x1e")
            [completion] = [f for f in await frames(socket, 1) if f["type"] == 3]
            assert completion["invocationId"] == "7" and "Nope" in completion["error"]
    async with connect(ws(url) + "/messageRelayHub") as socket:
        await socket.send('{"protocol":"messagepack","version":1}\x1e')
        assert "json" in json.loads((await socket.recv()).rstrip("\x1e"))["error"]
    with pytest.raises(Exception, match=r"403|1008"):  # another site's page may not listen in
        async with connect(ws(url) + "/messageRelayHub", origin="http://evil.example") as socket:  # type: ignore[arg-type]
            await socket.send('{"protocol":"json","version":1}\x1e')
            await asyncio.wait_for(socket.recv(), 5)


async def test_a_reply_streams_to_the_group(served: tuple[str, ToolScripted, Path]) -> None:
    url, service, _ = served
    service.queue("Croissants sell best before nine.")
    async with web_app(url) as (http, hub, chat_id):
        other = HubClient(f"{url}/copilot")
        await other.start()
        try:
            await other.join(chat_id)
            await hub.client.send("SendUserTypingStateAsync", [chat_id, USER, True])
            await hub.client.send("SendMessageAsync", [chat_id, USER, {"content": "When do croissants sell?"}])
            await other.wait(lambda c: bool(c.of("ReceiveMessage")) and bool(c.of("ReceiveUserTypingState")))
            assert other.of("ReceiveUserTypingState") == [[chat_id, USER, True]]
            assert other.of("ReceiveMessage")[0][2] == {"content": "When do croissants sell?"}

            answer = (
                await http.post(f"/chats/{chat_id}/messages", json=ask("When do croissants sell?", chat_id))
            ).json()
            await hub.wait(lambda c: any(args[1] is None for args in c.of("ReceiveBotResponseStatus")))
        finally:
            await other.stop()
    assert not [
        m for m in hub.of("ReceiveMessage") if m[2].get("content") == "When do croissants sell?"
    ]  # not to the sender
    statuses = [args[1] for args in hub.of("ReceiveBotResponseStatus")]
    assert statuses[0] == "Generating bot response" and statuses[-1] is None
    [[chat, sender, bot]] = hub.of("ReceiveMessage")
    assert (chat, sender, bot["authorRole"], bot["type"], bot["content"]) == (chat_id, USER, 1, 0, "")
    updates = [args[0] for args in hub.of("ReceiveMessageUpdate")]
    assert {u["id"] for u in updates} == {bot["id"]}
    texts = [u["content"] for u in updates if not u["tokenUsage"]]
    assert len(texts) >= 3 and all(later.startswith(earlier) for earlier, later in pairwise(texts))  # cumulative
    assert texts[-1] == "Croissants sell best before nine."
    assert updates[-1]["tokenUsage"]["responseCompletion"] == 5  # the last one carries the usage
    assert answer["value"] == "Croissants sell best before nine."
    assert (
        json.loads(next(v["value"] for v in answer["variables"] if v["key"] == "tokenUsage"))
        == updates[-1]["tokenUsage"]
    )


async def test_citations_come_in_the_bot_messages_first_sending(served: tuple[str, ToolScripted, Path]) -> None:
    """The web app takes citations from ReceiveMessage only (an update changes content or usage): a document
    answer's message carries them there, as chat-copilot's backend sends them, and the same after a reload."""
    url, service, _ = served
    notes = b"# Opening hours\n\nThe Lyon bakery opens at seven every morning and closes at noon on Sunday.\n"

    def cite(request: object) -> str:  # the model answers from the note it was given, citing its id
        record_id = re.search(r"\[([^\[\]]+#0)\]", request.prompt).group(1)  # type: ignore[attr-defined]
        return f"The bakery opens at seven [{record_id}]."

    service.queue(cite)
    async with web_app(url) as (http, hub, chat_id):
        files = [("formFiles", ("hours.md", notes, "text/markdown"))]
        assert (await http.post(f"/chats/{chat_id}/documents", files=files, timeout=60)).status_code == 200
        question = "When does the Lyon bakery open every morning?"
        assert (await http.post(f"/chats/{chat_id}/messages", json=ask(question, chat_id))).status_code == 200
        await hub.wait(lambda c: any(args[1] is None for args in c.of("ReceiveBotResponseStatus")))
        reloaded = (await http.get(f"/chats/{chat_id}/messages")).json()[0]
    [bot] = [args[2] for args in hub.of("ReceiveMessage") if args[2]["authorRole"] == 1 and args[2]["type"] == 0]
    [citation] = bot["citations"]
    assert citation["sourceName"] == "hours.md" and "opens at seven" in citation["snippet"]
    assert bot["content"].startswith("The bakery opens at seven")
    assert reloaded["id"] == bot["id"] and reloaded["citations"] == bot["citations"]
    assert {args[0]["id"] for args in hub.of("ReceiveMessageUpdate")} == {bot["id"]}


async def test_a_plan_is_approved_once_with_edited_arguments(served: tuple[str, ToolScripted, Path]) -> None:
    url, service, tmp_path = served
    service.queue(SUM_PLAN)
    async with web_app(url) as (http, hub, chat_id):
        proposed = await http.post(f"/chats/{chat_id}/messages", json=ask("/plan add 110 and 990", chat_id))
        await hub.wait(lambda c: any(m[2]["type"] == 1 for m in c.of("ReceiveMessage")))
        [[_, sender, plan_message]] = [m for m in hub.of("ReceiveMessage") if m[2]["type"] == 1]
        assert sender == USER and proposed.status_code == 200  # the HTTP answer came back; the plan waits
        content = json.loads(plan_message["content"])
        assert (content["type"], content["state"], content["generatedPlanMessageId"]) == (0, 4, plan_message["id"])
        assert content["originalUserInput"] == "/plan add 110 and 990" and content["userIntent"] == "add 110 and 990"
        [step] = content["proposedPlan"]["steps"]
        assert (step["skill_name"], step["name"], step["outputs"]) == ("Math", "add", ["sum"])
        assert step["parameters"] == [{"Key": "a", "Value": "110"}, {"Key": "b", "Value": "990"}]

        def edit(plan: dict[str, Any]) -> None:
            plan["proposedPlan"]["steps"][0]["parameters"][0]["Value"] = "5"

        body = ask("Yes, proceed", chat_id, proposedPlan=approval(plan_message, 1, edit))
        stranger = ask("Yes, proceed", chat_id, proposedPlan=approval(plan_message, 1), userId="someone-else")
        refused = await http.post(f"/chats/{chat_id}/plan", json=stranger)
        assert refused.status_code == 403 and "only the user who asked" in refused.json()["error"]["message"]
        first, second = await asyncio.gather(
            http.post(f"/chats/{chat_id}/plan", json=body), http.post(f"/chats/{chat_id}/plan", json=body)
        )
        assert sorted([first.status_code, second.status_code]) == [200, 409]
        ran = first if first.status_code == 200 else second
        assert ran.json()["value"] == "995"  # 5 + 990: the edit was honoured
        await hub.wait(lambda c: c.of("ReceiveBotResponseStatus")[-1][1] is None)
        again = await http.post(f"/chats/{chat_id}/plan", json=body)
        assert again.status_code == 409
        listed = (await http.get(f"/chats/{chat_id}/messages")).json()
    assert "Step 1/1 Math.add…" in [args[1] for args in hub.of("ReceiveBotResponseStatus")]
    result = [u[0] for u in hub.of("ReceiveMessageUpdate") if u[0]["tokenUsage"]][-1]
    assert result["content"] == "995" and result["type"] == 0
    assert [m["content"] for m in listed][:2] == ["995", "Yes, proceed"]
    assert json.loads(listed[2]["content"])["state"] == 1  # the plan message shows it was approved
    stored = ConversationStore(tmp_path / "memory" / "conversations.sqlite3").messages(chat_id)
    assert [m.content for m in stored if m.role == "assistant"] == ["995"]  # it ran once


async def test_a_rejected_plan_runs_nothing(served: tuple[str, ToolScripted, Path]) -> None:
    url, service, tmp_path = served
    service.queue(SUM_PLAN)
    async with web_app(url) as (http, hub, chat_id):
        await http.post(f"/chats/{chat_id}/messages", json=ask("/plan add 110 and 990", chat_id))
        await hub.wait(lambda c: any(m[2]["type"] == 1 for m in c.of("ReceiveMessage")))
        [plan_message] = [m[2] for m in hub.of("ReceiveMessage") if m[2]["type"] == 1]
        rejected = await http.post(
            f"/chats/{chat_id}/plan", json=ask("No, cancel", chat_id, proposedPlan=approval(plan_message, 2))
        )
        assert rejected.status_code == 200 and rejected.json()["value"] == "Plan cancelled: nothing ran."
        bad = await http.post(f"/chats/{chat_id}/plan", json=ask("?", chat_id, proposedPlan="{"))
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("proposedPlan: not JSON")
    assert ConversationStore(tmp_path / "memory" / "conversations.sqlite3").messages(chat_id) == []


async def test_a_function_with_an_effect_in_free_text_asks_first(served: tuple[str, ToolScripted, Path]) -> None:
    url, service, tmp_path = served
    service.queue(tools(("memory-save", {"input": "Opens at seven", "collection": "notes"})), "Saved it.")
    async with web_app(url) as (http, hub, chat_id):
        await http.post(f"/chats/{chat_id}/messages", json=ask("Remember that we open at seven", chat_id))
        await hub.wait(lambda c: any(m[2]["type"] == 1 for m in c.of("ReceiveMessage")))
        [plan_message] = [m[2] for m in hub.of("ReceiveMessage") if m[2]["type"] == 1]
        [step] = json.loads(plan_message["content"])["proposedPlan"]["steps"]
        assert (step["skill_name"], step["name"]) == ("memory", "save")
        approved = await http.post(
            f"/chats/{chat_id}/plan", json=ask("Yes, proceed", chat_id, proposedPlan=approval(plan_message, 1))
        )
        assert approved.json()["value"] == "Saved it."
        assert "Running memory.save…" in [args[1] for args in hub.of("ReceiveBotResponseStatus")]  # once approved
        edited_chat = await http.patch(f"/chats/{chat_id}", json={"title": "Hours"})
        await hub.wait(lambda c: bool(c.of("ChatEdited")))
        assert hub.of("ChatEdited")[0][0]["title"] == "Hours" and edited_chat.status_code == 200
        assert (await http.delete(f"/chats/{chat_id}")).status_code == 204
        await hub.wait(lambda c: bool(c.of("ChatDeleted")))
        assert hub.of("ChatDeleted") == [[chat_id, USER]]
    from memories import MemoryStore
    from memories.embedders import HashingEmbedder

    saved = MemoryStore(tmp_path / "memory", embedder=HashingEmbedder(64)).list("notes", 10, 0)
    assert [r.text for r in saved] == ["Opens at seven"]


async def test_the_answer_after_an_approved_call_comes_below_its_card(served: tuple[str, ToolScripted, Path]) -> None:
    """No empty bot message above the card that the answer later fills out of order: the bot's message is
    first sent with the model's first text, after the card, live and after a reload."""
    url, service, _ = served
    service.queue(tools(("memory-save", {"input": "Opens at seven", "collection": "notes"})), "Saved it.")
    async with web_app(url) as (http, hub, chat_id):
        await http.post(f"/chats/{chat_id}/messages", json=ask("Remember that we open at seven", chat_id))
        await hub.wait(lambda c: any(m[2]["type"] == 1 for m in c.of("ReceiveMessage")))
        [plan_message] = [m[2] for m in hub.of("ReceiveMessage") if m[2]["type"] == 1]
        approved = await http.post(
            f"/chats/{chat_id}/plan", json=ask("Yes, proceed", chat_id, proposedPlan=approval(plan_message, 1))
        )
        assert approved.json()["value"] == "Saved it."
        await hub.wait(lambda c: any(args[1] is None for args in c.of("ReceiveBotResponseStatus")[-1:]))
        reloaded = (await http.get(f"/chats/{chat_id}/messages")).json()
    sent = [m[2] for m in hub.of("ReceiveMessage")]
    assert [m["type"] for m in sent] == [1, 0]  # the card, then the answer's message
    answer = sent[1]
    assert {u[0]["id"] for u in hub.of("ReceiveMessageUpdate")} == {answer["id"]}
    assert [u[0]["content"] for u in hub.of("ReceiveMessageUpdate")][-1] == "Saved it."
    oldest_first = [(m["authorRole"], m["type"], m["content"]) for m in reversed(reloaded)][1:]  # greeting
    assert [kind[:2] for kind in oldest_first] == [(0, 0), (1, 1), (0, 0), (1, 0)]  # asked, card, yes, answer
    assert oldest_first[-1][2] == "Saved it." and reloaded[0]["id"] == answer["id"]


FIRST = "Let me note that."  # what SaysFirst streams before its first answer


class SaysFirst(ToolScripted):
    """Streams a sentence before its first answer (a call), as a model may before calling a function."""

    async def _inner_get_streaming_chat_message_contents(self, chat_history: Any, settings: Any, *args: Any) -> Any:
        from semantic_kernel.contents import AuthorRole, StreamingChatMessageContent

        if not self.requests:
            said = FIRST + " "
            yield [
                StreamingChatMessageContent(
                    role=AuthorRole.ASSISTANT, choice_index=0, content=said, ai_model_id=self.ai_model_id
                )
            ]
        async for chunk in super()._inner_get_streaming_chat_message_contents(chat_history, settings, *args):
            yield chunk


async def test_text_before_a_card_stays_above_it_and_the_answer_goes_below(tmp_path: Path) -> None:
    service = SaysFirst()
    service.queue(tools(("memory-save", {"input": "Opens at seven", "collection": "notes"})), "Saved it.")
    with running(make_app(tmp_path, service)) as url:
        async with web_app(url) as (http, hub, chat_id):
            await http.post(f"/chats/{chat_id}/messages", json=ask("Remember that we open at seven", chat_id))
            await hub.wait(lambda c: any(m[2]["type"] == 1 for m in c.of("ReceiveMessage")))
            [plan_message] = [m[2] for m in hub.of("ReceiveMessage") if m[2]["type"] == 1]
            approved = await http.post(
                f"/chats/{chat_id}/plan", json=ask("Yes, proceed", chat_id, proposedPlan=approval(plan_message, 1))
            )
            assert approved.status_code == 200
            await hub.wait(lambda c: any(args[1] is None for args in c.of("ReceiveBotResponseStatus")[-1:]))
            reloaded = (await http.get(f"/chats/{chat_id}/messages")).json()
    sent = [m[2] for m in hub.of("ReceiveMessage")]
    assert [m["type"] for m in sent] == [0, 1, 0]  # what it said first, the card, then the answer
    last = {u[0]["id"]: u[0]["content"] for u in hub.of("ReceiveMessageUpdate")}
    assert last == {sent[0]["id"]: FIRST + " ", sent[2]["id"]: "Saved it."}
    oldest_first = [(m["type"], m["content"].strip()) for m in reversed(reloaded) if m["authorRole"] == 1][1:]
    assert [text for kind, text in oldest_first if kind == 0] == [FIRST, "Saved it."]
    assert [kind for kind, _ in oldest_first] == [0, 1, 0]


async def test_a_call_waiting_for_approval_is_not_said_to_be_running(served: tuple[str, ToolScripted, Path]) -> None:
    url, service, _ = served
    service.queue(tools(("memory-save", {"input": "Opens at seven", "collection": "notes"})), "I did not save it.")
    async with web_app(url) as (http, hub, chat_id):
        await http.post(f"/chats/{chat_id}/messages", json=ask("Remember that we open at seven", chat_id))
        await hub.wait(lambda c: any(m[2]["type"] == 1 for m in c.of("ReceiveMessage")))
        before = [args[1] for args in hub.of("ReceiveBotResponseStatus")]
        [plan_message] = [m[2] for m in hub.of("ReceiveMessage") if m[2]["type"] == 1]
        rejected = await http.post(
            f"/chats/{chat_id}/plan", json=ask("No", chat_id, proposedPlan=approval(plan_message, 2))
        )
        assert rejected.json()["value"] == "I did not save it."
        await hub.wait(lambda c: c.of("ReceiveBotResponseStatus")[-1][1] is None)
    assert before[0] == "Generating bot response" and before[-1] is None  # cleared for the plan message
    statuses = [args[1] for args in hub.of("ReceiveBotResponseStatus")]
    assert not [s for s in statuses if s and s.startswith("Running memory")]  # rejected: it never ran


def test_the_negotiation_other_clients_do(served: tuple[str, ToolScripted, Path]) -> None:
    url, _, _ = served
    negotiated = httpx.post(f"{url}/copilot/messageRelayHub/negotiate").json()
    assert negotiated["connectionId"] and negotiated["availableTransports"][0]["transport"] == "WebSockets"


CLIENT_JS = TESTS / "support" / "copilot_signalr_client.js"


def _signalr_js() -> bool:
    """Node with @microsoft/signalr installed (NODE_PATH or a node_modules above tests/support)."""
    if shutil.which("node") is None:
        return False
    probe = subprocess.run(
        ["node", "-e", "require.resolve('@microsoft/signalr')"], cwd=CLIENT_JS.parent, capture_output=True, timeout=30
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _signalr_js(), reason="needs node and @microsoft/signalr@8.0.7 (.ci/run installs it)")
def test_the_web_apps_own_signalr_client(served: tuple[str, ToolScripted, Path]) -> None:
    url, service, _ = served
    base = f"{url}/copilot/"  # as REACT_APP_BACKEND_URI; the client resolves the hub at the server's root
    chat_id = httpx.post(f"{base}chats", json={"title": "js"}).json()["chatSession"]["id"]
    node = subprocess.Popen(
        ["node", str(CLIENT_JS), base, chat_id],
        cwd=CLIENT_JS.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert node.stderr is not None and "joined" in node.stderr.readline()
        service.queue("Hello from the kernel")
        answer = httpx.post(f"{base}chats/{chat_id}/messages", json=ask("hi", chat_id), timeout=30).json()
        out, err = node.communicate(timeout=40)
    finally:
        node.kill()
    assert node.returncode == 0, err
    seen = json.loads(out)
    updates = [args[0]["content"] for target, args in seen if target == "ReceiveMessageUpdate"]
    assert updates[-1] == answer["value"] == "Hello from the kernel"
    assert seen[-1] == ["ReceiveBotResponseStatus", [chat_id, None]]


TRANSLATE = ("Writer-Translate", {"input": "Good morning", "language": "French"})


@pytest.mark.parametrize("approve_model_functions", [False, True])
async def test_approve_model_functions_runs_prompt_functions_unasked_as_in_teams(
    tmp_path: Path, approve_model_functions: bool
) -> None:
    service = ToolScripted()
    service.queue(tools(TRANSLATE), "Bonjour", "In French: Bonjour.")
    app = make_app(tmp_path, service, approve_model_functions=approve_model_functions)
    with running(app) as url:
        async with web_app(url) as (http, hub, chat_id):
            answered = await http.post(f"/chats/{chat_id}/messages", json=ask("Good morning in French?", chat_id))
            plans = [m[2] for m in hub.of("ReceiveMessage") if m[2]["type"] == 1]
            if approve_model_functions:  # the server's flag approves it: no plan message
                assert plans == []
            else:  # a prompt function asks first, as a one-step plan message
                await hub.wait(lambda c: any(m[2]["type"] == 1 for m in c.of("ReceiveMessage")))
                [plan_message] = [m[2] for m in hub.of("ReceiveMessage") if m[2]["type"] == 1]
                [step] = json.loads(plan_message["content"])["proposedPlan"]["steps"]
                assert (step["skill_name"], step["name"]) == ("Writer", "Translate") and len(service.requests) == 1
                answered = await http.post(
                    f"/chats/{chat_id}/plan", json=ask("Yes", chat_id, proposedPlan=approval(plan_message, 1))
                )
            statuses = [args[1] for args in hub.of("ReceiveBotResponseStatus")]
    assert answered.json()["value"] == "In French: Bonjour."
    assert statuses.count("Running Writer.Translate…") == 1
    assert service.tool_results[-1] == ["Bonjour"]
