"""chat-copilot's web app contract over HTTP, against uvicorn on 127.0.0.1 with the scripted model:
probes, CORS, chats (the engine's conversations), messages newest first, documents answered with
citations, and who may reach the surface."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kernel_app.conversation import ConversationStore, Message
from tests.support import postgres as pg_support
from tests.support.cli import run_cli
from tests.support.copilot_client import USER, ask
from tests.support.server import make_app, running
from tests.support.tool_scripted import ToolScripted, Typing

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted, Path]]:
    service = ToolScripted()
    with running(make_app(tmp_path, service)) as url:
        yield url, service, tmp_path


def test_the_probes_answer_in_the_web_apps_shapes(served: tuple[str, ToolScripted, Path]) -> None:
    url, _, _ = served
    base = f"{url}/copilot"
    maintenance = httpx.get(f"{base}/maintenanceStatus")
    assert maintenance.status_code == 200 and maintenance.content == b""  # a JSON body would hold the app
    assert httpx.get(f"{base}/authConfig").json() == {
        "authType": "None",
        "aadAuthority": "",
        "aadClientId": "",
        "aadApiScope": "",
    }
    info = httpx.get(f"{base}/info").json()
    assert info["memoryStore"]["selectedType"] in info["memoryStore"]["types"]
    assert info["availablePlugins"] == [] and info["version"]
    assert info["isContentSafetyEnabled"] is True  # the offline screen, on by default (docs/content-safety.md)
    assert httpx.get(f"{base}/speechToken").json() == {"token": None, "region": None, "isSuccess": False}
    assert httpx.get(f"{url}/v1/models").status_code == 200  # our own API is where it was


def test_cors_lets_the_web_apps_origin_in_and_no_other(served: tuple[str, ToolScripted, Path]) -> None:
    url, _, _ = served
    preflight = {"Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "authorization"}
    allowed = httpx.options(f"{url}/copilot/chats/x", headers={"Origin": "http://localhost:3000", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "PATCH" in allowed.headers["access-control-allow-methods"]
    other = httpx.options(f"{url}/copilot/chats/x", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    simple = httpx.get(f"{url}/copilot/chats", headers={"Origin": "http://localhost:3000"})
    assert simple.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_serves_cors_origin_lets_the_web_app_in_from_there_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve --cors-origin`` (create_app's ``cors_origins``) reaches the web app's endpoints and hub, beside
    ``KERNEL_APP_COPILOT_ORIGINS``: from an origin only the flag names, the app used to hang on "Connecting…"."""
    monkeypatch.setenv("KERNEL_APP_COPILOT_ORIGINS", "http://from-env.example")
    flag = "http://app.example:8080"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-requested-with"}
    with running(make_app(tmp_path, ToolScripted(), cors_origins=[flag])) as url:
        for origin in (flag, "http://from-env.example"):
            for path in ("/copilot/chats", "/copilot/messageRelayHub/negotiate"):
                answer = httpx.options(f"{url}{path}", headers={"Origin": origin, **preflight})
                assert answer.status_code == 200, (origin, path)
                assert answer.headers["access-control-allow-origin"] == origin
        simple = httpx.get(f"{url}/copilot/chats", headers={"Origin": flag})
        assert simple.headers["access-control-allow-origin"] == flag
        other = httpx.options(f"{url}/copilot/chats", headers={"Origin": "http://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers
        assert asyncio.run(_hub_opens(url, flag))
        assert not asyncio.run(_hub_opens(url, "http://evil.example"))


async def _hub_opens(url: str, origin: str) -> bool:
    """Whether the hub completes SignalR's handshake for a page from ``origin``."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    hub = url.replace("http://", "ws://", 1) + "/copilot/messageRelayHub"
    try:
        async with connect(hub, origin=origin) as socket:  # type: ignore[arg-type]
            await socket.send('{"protocol":"json","version":1}\x1e')
            return await asyncio.wait_for(socket.recv(), 5) == "{}\x1e"
    except (ConnectionClosed, InvalidStatus):
        return False


def test_a_chat_is_a_conversation_of_the_store(served: tuple[str, ToolScripted, Path]) -> None:
    url, service, tmp_path = served
    base = f"{url}/copilot"
    created = httpx.post(f"{base}/chats", json={"title": "Copilot @ Lyon bakery"})
    assert created.status_code == 201
    session, greeting = created.json()["chatSession"], created.json()["initialBotMessage"]
    assert set(session) == {
        "id",
        "title",
        "createdOn",
        "systemDescription",
        "safeSystemDescription",
        "memoryBalance",
        "enabledPlugins",
        "version",
    }
    chat_id = session["id"]
    assert greeting["authorRole"] == 1 and greeting["type"] == 0 and greeting["chatId"] == chat_id
    assert [c["id"] for c in httpx.get(f"{base}/chats").json()] == [chat_id]
    assert httpx.get(f"{base}/chats/{chat_id}").json()["title"] == "Copilot @ Lyon bakery"

    edited = httpx.patch(
        f"{base}/chats/{chat_id}", json={"title": "Lyon", "systemDescription": "Be brief.", "memoryBalance": 0.3}
    ).json()
    assert (edited["title"], edited["systemDescription"], edited["memoryBalance"]) == ("Lyon", "Be brief.", 0.3)

    service.queue("Croissants sell best before nine.")
    answer = httpx.post(f"{base}/chats/{chat_id}/messages", json=ask("When do croissants sell?", chat_id), timeout=30)
    assert answer.status_code == 200
    result = answer.json()
    assert result["value"] == "Croissants sell best before nine."
    usage = json.loads(next(v["value"] for v in result["variables"] if v["key"] == "tokenUsage"))
    assert usage["responseCompletion"] == 5 and usage["metaPromptTemplate"] > 0

    store = ConversationStore(tmp_path / "memory" / "conversations.sqlite3")
    assert [m.content for m in store.messages(chat_id)] == [
        "When do croissants sell?",
        "Croissants sell best before nine.",
    ]
    listed = run_cli("--memory-dir", str(tmp_path / "memory"), "chat", "--list", timeout=60)
    assert listed.returncode == 0 and chat_id in listed.stdout and "Lyon" in listed.stdout

    assert httpx.delete(f"{base}/chats/{chat_id}").status_code == 204
    gone = httpx.get(f"{base}/chats/{chat_id}")
    assert gone.status_code == 404 and "GET /chats" in gone.json()["error"]["message"]
    assert not store.exists(chat_id) and httpx.get(f"{base}/chats").json() == []


def test_messages_come_newest_first_with_skip_and_count(served: tuple[str, ToolScripted, Path]) -> None:
    url, service, tmp_path = served
    base = f"{url}/copilot"
    chat_id = httpx.post(f"{base}/chats", json={"title": "t"}).json()["chatSession"]["id"]
    for number in (1, 2):
        service.queue(f"answer {number}")
        httpx.post(f"{base}/chats/{chat_id}/messages", json=ask(f"question {number}", chat_id), timeout=30)
    # A turn added in the terminal (kernel-app chat --resume) shows in the web app too.
    ConversationStore(tmp_path / "memory" / "conversations.sqlite3").append_many(
        chat_id, [Message("user", "from the terminal"), Message("assistant", "terminal answer")]
    )
    listed = httpx.get(f"{base}/chats/{chat_id}/messages", params={"skip": 0, "count": 100}).json()
    assert [m["content"] for m in listed][:6] == [
        "terminal answer",
        "from the terminal",
        "answer 2",
        "question 2",
        "answer 1",
        "question 1",
    ]
    assert len(listed) == 7 and listed[-1]["authorRole"] == 1  # the greeting is the oldest
    first = listed[5]
    assert (first["authorRole"], first["type"], first["userId"]) == (0, 0, USER)
    assert isinstance(first["timestamp"], int) and first["citations"] is None
    page = httpx.get(f"{base}/chats/{chat_id}/messages", params={"skip": 2, "count": 2}).json()
    assert [m["content"] for m in page] == ["answer 2", "question 2"]
    participants = httpx.get(f"{base}/chats/{chat_id}/participants").json()
    assert participants == [{"userId": USER, "chatId": chat_id}]
    assert httpx.get(f"{base}/chats/{chat_id}/memories", params={"type": "WorkingMemory"}).json() == []
    empty = httpx.post(f"{base}/chats/{chat_id}/messages", json=ask("  ", chat_id))
    assert empty.status_code == 400 and "input" in empty.json()["error"]["message"]


def test_an_uploaded_document_answers_with_citations_and_is_downloaded(served: tuple[str, ToolScripted, Path]) -> None:
    url, service, _ = served
    base = f"{url}/copilot"
    chat_id = httpx.post(f"{base}/chats", json={"title": "docs"}).json()["chatSession"]["id"]
    notes = b"# Opening hours\n\nThe Lyon bakery opens at seven every morning and closes at noon on Sunday.\n"
    uploaded = httpx.post(
        f"{base}/chats/{chat_id}/documents", files=[("formFiles", ("hours.md", notes, "text/markdown"))], timeout=60
    )
    assert uploaded.status_code == 200, uploaded.text
    message = uploaded.json()
    assert message["type"] == 2 and json.loads(message["content"])["documents"][0]["name"] == "hours.md"
    sources = httpx.get(f"{base}/chats/{chat_id}/documents").json()
    assert [(s["name"], s["size"], s["chatId"]) for s in sources] == [("hours.md", len(notes), chat_id)]
    got = httpx.get(f"{base}/chats/{chat_id}/documents/{sources[0]['id']}")  # its bytes, from uploads/
    assert got.status_code == 200 and got.content == notes
    assert got.headers["content-type"].startswith("text/markdown")
    assert got.headers["content-disposition"] == "attachment; filename*=UTF-8''hours.md"
    missing = httpx.get(f"{base}/chats/{chat_id}/documents/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "document_not_found"

    def cite(request: object) -> str:  # the model answers from the note it was given, citing its id
        record_id = re.search(r"\[([^\[\]]+#0)\]", request.prompt).group(1)  # type: ignore[attr-defined]
        return f"The bakery opens at seven [{record_id}]."

    service.queue(cite)
    answer = httpx.post(
        f"{base}/chats/{chat_id}/messages", json=ask("When does the Lyon bakery open every morning?", chat_id)
    )
    assert answer.json()["value"] == "The bakery opens at seven [" + answer.json()["value"].split("[", 1)[1]
    bot = httpx.get(f"{base}/chats/{chat_id}/messages").json()[0]
    assert bot["authorRole"] == 1 and bot["content"].startswith("The bakery opens at seven")
    [citation] = bot["citations"]
    assert set(citation) == {"link", "sourceContentType", "sourceName", "snippet", "relevanceScore"}
    assert citation["sourceName"] == "hours.md" and "opens at seven" in citation["snippet"]
    assert 0.2 <= citation["relevanceScore"] <= 1
    assert f"[{citation['link']}]" in bot["content"]  # what the answer cites: the web app shows it as [1]

    refused = httpx.post(f"{base}/chats/{chat_id}/documents", files=[("formFiles", ("a.exe", b"MZ", "x/y"))])
    assert refused.status_code == 400 and refused.json()["error"]["message"].startswith("a.exe: upload .txt")


def test_with_api_keys_the_surface_is_off_and_hosts_are_checked(tmp_path: Path) -> None:
    key = "k" * 24
    with running(make_app(tmp_path, ToolScripted(), api_keys=[key])) as url:
        off = httpx.get(f"{url}/copilot/maintenanceStatus", headers={"Authorization": f"Bearer {key}"})
        assert off.status_code == 404
    with running(make_app(tmp_path, ToolScripted())) as url:
        foreign = httpx.get(f"{url}/copilot/chats", headers={"Host": "evil.example"})
        assert foreign.status_code == 421


def test_commands_that_reach_the_server_are_refused_and_help_lists_the_rest(
    served: tuple[str, ToolScripted, Path],
) -> None:
    url, service, _ = served
    base = f"{url}/copilot"
    chat_id = httpx.post(f"{base}/chats", json={"title": "t"}).json()["chatSession"]["id"]
    for line in ("/reset", "/export x.md", "/set max_tokens 99"):
        refused = httpx.post(f"{base}/chats/{chat_id}/messages", json=ask(line, chat_id)).json()["value"]
        assert refused == f"{line.split()[0]} is not available here: type /help for the commands."
    shown = httpx.post(f"{base}/chats/{chat_id}/messages", json=ask("/help", chat_id)).json()["value"]
    assert "/plan" in shown and "/run" in shown and "/export" not in shown and "/resume" not in shown
    assert "\n- **/plan** `" in shown and "\n  /" not in shown  # a markdown list, not the terminal's columns
    ran = httpx.post(f"{base}/chats/{chat_id}/messages", json=ask("/run Math.add a=2 b=3", chat_id), timeout=30)
    assert ran.json()["value"] == "5" and service.requests == []  # a native function: no model call


def test_with_the_models_queue_full_commands_that_do_not_use_it_still_answer(tmp_path: Path) -> None:
    from tests.support.tool_scripted import Blocking

    service = Blocking()
    service.queue("At last.")
    with running(make_app(tmp_path, service, concurrency=1, queue=0)) as url:
        base = f"{url}/copilot"
        first, second = (httpx.post(f"{base}/chats", json={"title": t}).json()["chatSession"]["id"] for t in "ab")
        answered: list[httpx.Response] = []
        long = ask("A long question", first)
        busy = threading.Thread(
            target=lambda: answered.append(httpx.post(f"{base}/chats/{first}/messages", json=long, timeout=30))
        )
        busy.start()
        try:
            assert service.entered.wait(10)  # the model's one place is taken and none may wait

            def answer(text: str) -> str:
                response = httpx.post(f"{base}/chats/{second}/messages", json=ask(text, second), timeout=10)
                return str(response.json()["value"])

            shown = answer("/help")
            assert "/plan" in shown and "busy" not in shown
            assert "Math.add" in answer("/functions")
            assert answer("/results").startswith("no results yet")
            assert answer("What is new?") == "Sorry, I am busy with other questions: try again in 5 seconds."
        finally:
            service.release.set()
            busy.join(30)
    assert [r.json()["value"] for r in answered] == ["At last."]
    assert len(service.requests) == 1  # only the long question reached the model


@pytest.mark.e2e  # uvicorn, and PostgreSQL for one backend
@pytest.mark.parametrize("backend", ["local", "postgresql"])
def test_a_client_that_leaves_mid_reply_still_gets_the_whole_turn_stored(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """The web app's turn runs apart from the request that asked (its reply streams over the hub), so a
    client that disconnects cuts nothing: the turn ends and is stored whole, on either store."""
    from kernel_app.base.config import Settings
    from kernel_app.interfaces.server import create_app
    from memories.embedders import HashingEmbedder

    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    service = Typing(["Croissants sell best before nine."])  # 0.4 s a word
    app = create_app(
        Settings(memory_dir=tmp_path / "memory", database_url=url), chat_service=service, embedder=HashingEmbedder(64)
    )
    try:
        with running(app) as base:
            chat_id = httpx.post(f"{base}/copilot/chats", json={"title": "t"}).json()["chatSession"]["id"]
            with pytest.raises(httpx.ReadTimeout):  # gives up after a word or two and closes the connection
                httpx.post(f"{base}/copilot/chats/{chat_id}/messages", json=ask("When?", chat_id), timeout=0.6)
            deadline = time.monotonic() + 15
            while not [m for m in app.state.kernel_app.store.messages(chat_id) if m.role == "assistant"]:
                assert time.monotonic() < deadline, "the turn was not stored"
                time.sleep(0.05)
            shown = httpx.get(f"{base}/copilot/chats/{chat_id}/messages").json()
    finally:
        app.state.kernel_app.store.close()
    assert [m["content"] for m in shown][:2] == ["Croissants sell best before nine.", "When?"]
