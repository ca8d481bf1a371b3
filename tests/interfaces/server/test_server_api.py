"""The REST API under /v1 against uvicorn on 127.0.0.1, driven with httpx: functions, conversations
(SSE with an approval answered over HTTP), plans, memory, health, limits."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import ChatHistory, ChatMessageContent
from semantic_kernel.functions import kernel_function

from kernel_app.base.effects import read_only
from kernel_app.base.partial_output import send_part
from kernel_app.conversation import ConversationStore
from kernel_app.conversation.calls import result_is_answer
from kernel_app.conversation.interrupted import CALL_CUT_SHORT, CUT_SHORT
from tests.support.server import SUM_PLAN, make_app, running, saved_notes
from tests.support.sse import sse_events
from tests.support.tool_scripted import ToolScripted, Typing, tools

pytestmark = pytest.mark.e2e  # the app served by uvicorn on loopback


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted]]:
    service = ToolScripted()
    with running(make_app(tmp_path, service)) as url:
        yield url, service


def events_of(response: httpx.Response) -> list[dict[str, Any]]:
    return sse_events(response.text)


def test_health_readiness_and_the_api_reference(served: tuple[str, ToolScripted]) -> None:
    url, _ = served
    health = httpx.get(f"{url}/healthz")
    assert health.json()["status"] == "ok" and health.headers["server-timing"].startswith("app;dur=")
    ready = httpx.get(f"{url}/readyz").json()
    assert ready["status"] == "ready" and ready["model"] == "scripted" and ready["functions"] > 10
    # Which process answered (README, Deploy): on every response, errors too, as /readyz names it.
    missing = httpx.get(f"{url}/v1/conversations/nope")
    assert missing.status_code == 404
    assert health.headers["x-kernel-app-instance"] == missing.headers["x-kernel-app-instance"] == ready["instance"]
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    for path in ("/v1/chat/completions", "/v1/functions/{name}/invoke", "/v1/conversations/{conversation_id}/messages"):
        assert path in paths
    assert "swagger-ui" in httpx.get(f"{url}/docs").text


def test_the_function_catalogue_and_invoking_one(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    catalogue = {f["name"]: f for f in httpx.get(f"{url}/v1/functions").json()["data"]}
    assert catalogue["Math.add"]["effect"] == "read" and catalogue["memory.save"]["effect"] == "write"
    assert [p["name"] for p in catalogue["Math.add"]["parameters"]] == ["a", "b"]
    assert catalogue["Writer.ShortPoem"]["kind"] == "prompt"
    ran = httpx.post(f"{url}/v1/functions/Math.add/invoke", json={"arguments": {"a": "2", "b": "3"}}).json()
    assert ran["function"] == "Math.add" and ran["result"] == "5"
    missing = httpx.post(f"{url}/v1/functions/Nope.nothing/invoke", json={})
    assert missing.status_code == 404 and "Nope.nothing" in missing.json()["error"]["message"]
    failed = httpx.post(f"{url}/v1/functions/Math.divide/invoke", json={"arguments": {"a": "1", "b": "0"}})
    assert failed.status_code == 422 and "divide" in failed.json()["error"]["message"]
    service.queue("Warm bread at dawn")
    streamed = httpx.post(
        f"{url}/v1/functions/Writer.ShortPoem/invoke", json={"input": "bread", "stream": True}, timeout=30
    )
    events = events_of(streamed)
    assert events[0]["type"] == "function_call_started" and events[-1]["type"] == "done"
    assert "".join(e["text"] for e in events if e["type"] == "text_delta") == "Warm bread at dawn"
    assert events[-1]["text"] == "Warm bread at dawn"


def test_a_conversation_with_an_approval_over_http(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    conversation = httpx.post(f"{url}/v1/conversations", json={"title": "Notes"}).json()
    cid = conversation["id"]
    save = tools(("memory-save", {"input": "We bake at night", "collection": "Notes", "id": "n1"}))
    service.queue(save, "Saved it.")
    seen: list[dict[str, Any]] = []

    def answer_when_asked(response: httpx.Response) -> None:
        buffer = ""
        for chunk in response.iter_text():
            buffer += chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                data = json.loads(block.split("data: ", 1)[1])
                seen.append(data)
                if data["type"] == "approval_needed":
                    answered = httpx.post(
                        f"{url}/v1/conversations/{cid}/approvals/{data['approval_id']}", json={"approved": True}
                    )
                    assert answered.status_code == 200

    with httpx.stream(
        "POST", f"{url}/v1/conversations/{cid}/messages", json={"content": "Remember we bake at night"}, timeout=30
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        answer_when_asked(response)
    kinds = [e["type"] for e in seen]
    assert kinds[:2] == ["function_call_started", "approval_needed"] and kinds[-1] == "done"
    assert seen[1]["function"] == "memory.save" and seen[1]["effect"] == "write"
    finished = next(e for e in seen if e["type"] == "function_call_finished")
    assert finished["ok"] is True and finished["result"] == "n1"
    assert seen[-1]["text"] == "Saved it." and seen[-1]["conversation_id"] == cid

    stored = httpx.get(f"{url}/v1/conversations/{cid}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert stored["messages"][1]["tool_calls"][0]["function"] == "memory.save"
    service.queue("You told me you bake at night.")
    again = httpx.post(
        f"{url}/v1/conversations/{cid}/messages", json={"content": "What did I say?", "stream": False}
    ).json()
    assert again["text"] == "You told me you bake at night."
    assert "Remember we bake at night" in service.requests[-1].prompt  # the stored turn is in the prompt
    assert service.requests[-1].streaming is False
    assert [c["id"] for c in httpx.get(f"{url}/v1/conversations").json()["data"]] == [cid]
    unknown = httpx.post(f"{url}/v1/conversations/{cid}/approvals/approval_nope", json={"approved": True})
    assert unknown.status_code == 404
    assert httpx.delete(f"{url}/v1/conversations/{cid}").status_code == 204
    gone = httpx.post(f"{url}/v1/conversations/{cid}/messages", json={"content": "Hello?"})
    assert gone.status_code == 404 and gone.json()["error"]["message"].startswith("no conversation")


def test_plans_are_proposed_then_executed_once(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue(SUM_PLAN)
    proposed = httpx.post(f"{url}/v1/plans", json={"goal": "What is 110 plus 990?"}, timeout=30)
    assert proposed.status_code == 201, proposed.text
    plan = proposed.json()
    assert plan["status"] == "proposed" and plan["result"] is None
    assert plan["plan"]["steps"][0]["function"] == "Math.add" and "Math.add(a=110, b=990)" in plan["text"]
    executed = httpx.post(f"{url}/v1/plans/{plan['id']}/execute").json()
    assert (executed["status"], executed["result"]) == ("done", "1100")
    twice = httpx.post(f"{url}/v1/plans/{plan['id']}/execute")
    assert twice.status_code == 409
    assert httpx.get(f"{url}/v1/plans/{plan['id']}").json()["result"] == "1100"
    assert httpx.get(f"{url}/v1/plans/plan_nope").status_code == 404


def test_a_plan_is_executed_as_edited_into_a_conversation_or_rejected(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue(SUM_PLAN, SUM_PLAN)
    plan = httpx.post(f"{url}/v1/plans", json={"goal": "What is 110 plus 990?"}, timeout=30).json()
    cid = httpx.post(f"{url}/v1/conversations", json={"title": "Sums"}).json()["id"]
    edited = {**plan["plan"], "steps": [{**plan["plan"]["steps"][0], "args": {"a": 110, "b": 1000}}]}
    bad = {**plan["plan"], "steps": [{**plan["plan"]["steps"][0], "args": {"a": 1, "c": 2}}]}
    refused = httpx.post(f"{url}/v1/plans/{plan['id']}/execute", json={"plan": bad})
    assert refused.status_code == 400 and refused.json()["error"]["message"].startswith("plan: ")
    assert httpx.get(f"{url}/v1/plans/{plan['id']}").json()["status"] == "proposed"  # still waits
    nowhere = httpx.post(f"{url}/v1/plans/{plan['id']}/execute", json={"conversation_id": "nope"})
    assert nowhere.status_code == 404
    executed = httpx.post(f"{url}/v1/plans/{plan['id']}/execute", json={"plan": edited, "conversation_id": cid})
    assert (executed.json()["result"], executed.json()["plan"]["steps"][0]["args"]) == ("1110", {"a": 110, "b": 1000})
    stored = httpx.get(f"{url}/v1/conversations/{cid}").json()["messages"]
    assert [m["content"] for m in stored] == ["(planned and ran: What is 110 plus 990?)", "1110"]
    other = httpx.post(f"{url}/v1/plans", json={"goal": "What is 110 plus 990?"}, timeout=30).json()
    assert httpx.post(f"{url}/v1/plans/{other['id']}/reject").json()["status"] == "rejected"
    assert httpx.post(f"{url}/v1/plans/{other['id']}/execute").status_code == 409  # a rejected plan never runs
    assert httpx.post(f"{url}/v1/plans/{other['id']}/reject").status_code == 409


def test_memory_save_search_ask_delete(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    for text, kind in (("Fresh bread every morning", "strength"), ("Rent is rising", "threat")):
        saved = httpx.post(f"{url}/v1/memory/SWOT/records", json={"text": text, "metadata": {"kind": kind}})
        assert saved.status_code == 201
    assert httpx.get(f"{url}/v1/memory").json()["data"] == [
        {"name": "SWOT", "count": 2, "embedder": "hashing-64", "dimensions": 64}
    ]
    hits = httpx.post(f"{url}/v1/memory/SWOT/search", json={"query": "bread", "where": {"kind": "threat"}}).json()[
        "data"
    ]
    assert [h["text"] for h in hits] == ["Rent is rising"]
    record_id = httpx.post(f"{url}/v1/memory/SWOT/search", json={"query": "Fresh bread every morning"}).json()["data"][
        0
    ]["id"]
    service.queue(f"Your bread is fresh every morning [{record_id}].")
    answer = httpx.post(
        f"{url}/v1/memory/SWOT/ask", json={"question": "Fresh bread every morning?", "min_relevance": 0.0}
    ).json()
    assert answer["cited"] == [record_id] and answer["text"].endswith(f"Sources: [{record_id}]")
    cited = httpx.get(f"{url}/v1/memory/SWOT/records/{record_id}").json()  # what a source links to
    assert (cited["text"], cited["metadata"], cited["collection"]) == (
        "Fresh bread every morning",
        {"kind": "strength"},
        "SWOT",
    )
    assert httpx.get(f"{url}/v1/memory/SWOT/records/nope").status_code == 404
    assert httpx.delete(f"{url}/v1/memory/SWOT/records/{record_id}").status_code == 204
    assert httpx.delete(f"{url}/v1/memory/SWOT/records/{record_id}").status_code == 404
    assert httpx.post(f"{url}/v1/memory/Nowhere/search", json={"query": "x"}).status_code == 404


class SlowScripted(ToolScripted):
    """Answers after a pause that lets other requests arrive meanwhile (the loop stays free)."""

    delay: ClassVar[float] = 0.6

    async def _inner_get_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings
    ) -> list[ChatMessageContent]:
        await asyncio.sleep(self.delay)
        return await super()._inner_get_chat_message_contents(chat_history, settings)


def test_a_full_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    service = SlowScripted(default="ok")
    app = make_app(tmp_path, service, concurrency=1, queue=1)
    body = {"model": "kernel-app", "messages": [{"role": "user", "content": "Hi"}]}
    with running(app) as url:
        statuses: list[int] = []
        retry_after: list[str] = []

        def ask() -> None:
            response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_after.append(response.headers["retry-after"])
                assert response.json()["error"]["code"] == "busy"

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [200, 200, 429, 429]  # one running, one queued, the rest refused
    assert retry_after == ["5", "5"]


def test_a_restarted_server_continues_the_conversation(tmp_path: Path) -> None:
    path = tmp_path / "memory" / "conversations.sqlite3"
    service = ToolScripted(["Noted: Lyon.", "In Lyon."])
    with running(make_app(tmp_path, service)) as url:
        cid = httpx.post(f"{url}/v1/conversations", json={}).json()["id"]
        httpx.post(f"{url}/v1/conversations/{cid}/messages", json={"content": "We are in Lyon", "stream": False})
    with running(make_app(tmp_path, service, store=ConversationStore(path))) as url:
        reply = httpx.post(
            f"{url}/v1/conversations/{cid}/messages", json={"content": "Where are we?", "stream": False}
        ).json()
    assert reply["text"] == "In Lyon."
    assert [m["content"] for m in service.requests[-1].messages[1:]] == [
        "We are in Lyon",
        "Noted: Lyon.",
        "Where are we?",
    ]


class CountingStore(ConversationStore):
    """Counts the reads of a conversation's row: on PostgreSQL each is a round trip the event loop waits for."""

    gets = 0

    def get(self, conversation_id: str, *, owner: str | None = None) -> Any:
        self.gets += 1
        return super().get(conversation_id, owner=owner)


def test_a_turn_reads_its_conversation_once(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "memory" / "conversations.sqlite3")
    with running(make_app(tmp_path, ToolScripted(["Noted."]), store=store)) as url:
        cid = httpx.post(f"{url}/v1/conversations", json={}).json()["id"]
        store.gets = 0
        said = httpx.post(f"{url}/v1/conversations/{cid}/messages", json={"content": "Hello", "stream": False})
        assert said.status_code == 200 and said.json()["text"] == "Noted."
        assert store.gets == 1  # the route's 404 check; the engine takes the row from it
        missing = httpx.post(f"{url}/v1/conversations/nope/messages", json={"content": "Hi", "stream": False})
        assert missing.status_code == 404


def test_a_client_that_disconnects_cancels_its_turn(tmp_path: Path) -> None:
    service = ToolScripted([tools(("memory-save", {"input": "x", "collection": "Notes"}))])
    app = make_app(tmp_path, service)
    state = app.state.kernel_app
    with running(app) as url:
        cid = httpx.post(f"{url}/v1/conversations", json={}).json()["id"]
        with httpx.stream("POST", f"{url}/v1/conversations/{cid}/messages", json={"content": "Save x"}) as response:
            for chunk in response.iter_text():
                if "approval_needed" in chunk:
                    break  # leave without answering: the connection closes
        deadline = time.monotonic() + 10
        while (state.approvals or state.gate.running) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.approvals == {} and state.gate.running == 0
        stored = httpx.get(f"{url}/v1/conversations/{cid}").json()["messages"]
    # what the turn produced, marked interrupted: the call it asked for was never approved, so never ran
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "Save x"),
        ("assistant", ""),
        ("tool", CALL_CUT_SHORT),
        ("assistant", CUT_SHORT),
    ]
    assert saved_notes(tmp_path) == []


def test_a_client_that_disconnects_mid_answer_leaves_the_text_it_was_sent(tmp_path: Path) -> None:
    service = Typing(["Croissants sell best before nine every morning in Lyon."])
    app = make_app(tmp_path, service)
    with running(app) as url:
        cid = httpx.post(f"{url}/v1/conversations", json={}).json()["id"]
        received = ""
        with httpx.stream("POST", f"{url}/v1/conversations/{cid}/messages", json={"content": "When?"}) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["type"] == "text_delta":
                    received += json.loads(line[6:])["text"]
                    if len(received.split()) == 2:
                        break  # two words in (0.4 s apart), the client leaves
        deadline = time.monotonic() + 10
        while not (stored := httpx.get(f"{url}/v1/conversations/{cid}").json()["messages"]):
            assert time.monotonic() < deadline, "the cut turn was not stored"
            time.sleep(0.05)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    answer = stored[1]["content"]
    assert answer.startswith(received.strip()) and answer.endswith(CUT_SHORT)
    assert "Lyon" not in answer  # the rest was never generated


class Stuck(SlowScripted):
    """Would answer only after half a minute; records that its generation was cancelled."""

    delay: ClassVar[float] = 30.0
    cancelled: ClassVar[list[str]] = []

    async def _inner_get_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings
    ) -> list[ChatMessageContent]:
        try:
            return await super()._inner_get_chat_message_contents(chat_history, settings)
        except asyncio.CancelledError:
            self.cancelled.append(str(chat_history.messages[-1].content))
            raise


@pytest.mark.parametrize("route", ["openai", "conversation", "function"])
def test_a_client_that_leaves_a_non_streamed_request_cancels_its_generation(tmp_path: Path, route: str) -> None:
    service = Stuck(default="late")
    app = make_app(tmp_path, service, concurrency=1, queue=0)
    state = app.state.kernel_app
    word = f"leaving-{route}-{tmp_path.name}"
    with running(app) as url:
        if route == "openai":
            path, body = (
                "/v1/chat/completions",
                {"model": "kernel-app", "messages": [{"role": "user", "content": word}]},
            )
        elif route == "conversation":
            cid = httpx.post(f"{url}/v1/conversations", json={}).json()["id"]
            path, body = f"/v1/conversations/{cid}/messages", {"content": word, "stream": False}
        else:
            path, body = "/v1/functions/Writer.Summarize/invoke", {"input": word}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}{path}", json=body, timeout=0.5)  # gives up and closes the connection
        deadline = time.monotonic() + 10  # far less than the 30 s the model would take
        while state.gate.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.gate.running == 0  # the one place at the model is free again (queue 0: else a 429)
        assert any(word in text for text in Stuck.cancelled)


def test_limits_cors_body_size_and_the_deadline(tmp_path: Path) -> None:
    service = SlowScripted(default="late")
    app = make_app(tmp_path, service, cors_origins=["http://localhost:3000"], max_body_bytes=2000, request_timeout=0.2)
    with running(app) as url:
        preflight = httpx.options(
            f"{url}/v1/models",
            headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = httpx.get(f"{url}/v1/models", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        big = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "kernel-app", "messages": [{"role": "user", "content": "x" * 5000}]},
        )
        assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
        slow = httpx.post(
            f"{url}/v1/chat/completions", json={"model": "kernel-app", "messages": [{"role": "user", "content": "Hi"}]}
        )
        assert slow.status_code == 502 and "no progress for 0.2 s" in slow.json()["error"]["message"]
        assert app.state.kernel_app.gate.running == 0


def test_documents_are_uploaded_and_ingested_with_progress(served: tuple[str, ToolScripted]) -> None:
    url, _ = served
    menu = b"# Menu\n\nSourdough loaves every morning.\n\n# Hours\n\nOpen from six until two.\n"
    files = [
        ("files", ("menu.md", menu, "text/markdown")),
        ("files", ("notes.txt", b"Rent rises in May.", "text/plain")),
    ]
    response = httpx.post(f"{url}/v1/memory/Shop/documents", params={"stream": "true"}, files=files, timeout=60)
    assert response.status_code == 200
    events = events_of(response)
    assert [e["type"] for e in events] == ["ingest_progress", "ingest_progress", "done"]
    assert events[1]["done"] == events[1]["total"] == 2
    assert events[-1]["added"] == 2 and events[-1]["chunks"] >= 2 and events[-1]["failed"] == []
    again = httpx.post(f"{url}/v1/memory/Shop/documents", files=files[:1], timeout=60)
    assert again.status_code == 201 and again.json()["skipped_unchanged"] == 1  # unchanged: not stored twice
    hits = httpx.post(f"{url}/v1/memory/Shop/search", json={"query": "Sourdough loaves every morning"}).json()
    assert "Sourdough" in hits["data"][0]["text"] and hits["data"][0]["metadata"]["heading"] == "Menu"
    bad = httpx.post(f"{url}/v1/memory/Shop/documents", files=[("files", ("x.exe", b"MZ", "application/x"))])
    assert bad.status_code == 400 and "upload .txt, .md or .pdf" in bad.json()["error"]["message"]
    assert httpx.delete(f"{url}/v1/memory/Shop").status_code == 204
    assert httpx.delete(f"{url}/v1/memory/Shop").status_code == 404


def test_paging_bounds_are_validated(served: tuple[str, ToolScripted]) -> None:
    url, _ = served  # found by the fuzzer: an offset past SQLite's integers was a 500
    response = httpx.get(f"{url}/v1/conversations", params={"offset": 2**70})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_eight_clients_on_a_one_at_a_time_model_are_served_in_arrival_order(tmp_path: Path) -> None:
    class Quick(SlowScripted):
        delay: ClassVar[float] = 0.15

    service = Quick(default="ok")
    app = make_app(tmp_path, service, concurrency=1, queue=8)
    arrived: list[str] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:  # the order the server saw them in
        if scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
            arrived.append(dict(scope["headers"])[b"x-client"].decode())
        await app(scope, receive, send)

    with running(recording) as url:
        statuses: list[int] = []

        def ask(number: int) -> None:
            body = {"model": "kernel-app", "messages": [{"role": "user", "content": f"client {number}"}]}
            response = httpx.post(
                f"{url}/v1/chat/completions", json=body, headers={"X-Client": str(number)}, timeout=60
            )
            statuses.append(response.status_code)

        threads = [threading.Thread(target=ask, args=(number,)) for number in range(8)]
        for thread in threads:
            thread.start()
            time.sleep(0.05)  # all arrive while the first is still generating
        for thread in threads:
            thread.join()
    assert statuses == [200] * 8  # every one answered: none refused, none failed
    assert [r.messages[-1]["content"] for r in service.requests] == [f"client {n}" for n in arrived]


def test_a_keyless_server_answers_only_loopback_host_names(served: tuple[str, ToolScripted]) -> None:
    url, _ = served
    rebound = httpx.get(f"{url}/v1/models", headers={"Host": "attacker.example:8000"})
    assert rebound.status_code == 421 and rebound.json()["error"]["code"] == "host_not_allowed"
    assert httpx.get(f"{url}/v1/models", headers={"Host": "localhost:8000"}).status_code == 200


def test_readiness_can_ask_the_model(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue("OK")
    probed = httpx.get(f"{url}/readyz", params={"probe": "true"}, timeout=30)
    assert probed.status_code == 200 and probed.json()["model_answered"] is True
    assert service.requests[-1].settings["max_tokens"] == 1
    failing = httpx.get(f"{url}/readyz", params={"probe": "true"}, timeout=30)  # nothing queued: it fails
    assert failing.status_code == 503 and "no scripted answer" in failing.json()["reason"]


def test_readiness_waits_for_the_embedded_model_and_says_why_it_failed(tmp_path: Path) -> None:
    """The embedded model loads at start-up on a thread; /readyz is 503 with the reason until it has."""
    pytest.importorskip("xllamacpp")
    from kernel_app.base.config import Settings
    from kernel_app.interfaces.server import create_app

    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"GGUF" + bytes(60))  # passes the magic check, fails in llama.cpp
    settings = Settings(model=str(bogus), memory_dir=tmp_path / "memory")
    app = create_app(settings, store=ConversationStore(tmp_path / "c.sqlite3"), mcp=False)
    with running(app) as url:
        deadline = time.monotonic() + 30
        while (ready := httpx.get(f"{url}/readyz")).json()["reason"] == "loading the model":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ready.status_code == 503 and ready.json()["reason"].startswith("the model did not load: ")
        assert "broken.gguf" in ready.json()["reason"] and "\n" not in ready.json()["reason"]
        assert httpx.get(f"{url}/healthz").status_code == 200  # alive, just not ready


class SlowTables:
    """Two SWOT tables, sent 0.3 s apart while the function runs (BusinessThinking.SWOT's streaming)."""

    TABLES = ("| Strengths |\n|---|\n| Fresh bread |\n", "\n| Threats |\n|---|\n| Supermarkets |\n")

    @result_is_answer
    @read_only
    @kernel_function(name="tables", description="Two SWOT tables of a business.")
    async def tables(self, input: str) -> str:
        for table in self.TABLES:
            send_part(table)
            await asyncio.sleep(0.3)
        return "".join(self.TABLES)


def test_a_swot_streams_over_sse_a_table_at_a_time(tmp_path: Path) -> None:
    service = ToolScripted([tools(("Shop-tables", {"input": "a bakery"}))])
    app = make_app(tmp_path, service)
    app.state.kernel_app.kernel.add_plugin(SlowTables(), "Shop")
    with running(app) as url:
        cid = httpx.post(f"{url}/v1/conversations", json={}).json()["id"]
        arrived: list[tuple[str, float]] = []
        with httpx.stream(
            "POST", f"{url}/v1/conversations/{cid}/messages", json={"content": "A SWOT of a bakery"}, timeout=30
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    arrived.append((data["type"], time.monotonic()))
                    if data["type"] == "text_delta":
                        arrived[-1] = (data["text"], arrived[-1][1])
        stored = httpx.get(f"{url}/v1/conversations/{cid}").json()["messages"]
    texts = [(what, at) for what, at in arrived if what in SlowTables.TABLES]
    assert [what for what, _ in texts] == list(SlowTables.TABLES)  # each table once, the answer not again
    finished = next(at for what, at in arrived if what == "function_call_finished")
    assert texts[0][1] < finished - 0.2  # the first table came while the function was still running
    assert stored[-1]["content"] == "".join(SlowTables.TABLES)
