"""Each user's own data (issue 22) on a served app: two callers, every route tried as the other one.

The callers are two signed-in users of the loopback identity provider (tests/support/entra.py: two object
ids) or two API keys; the stores are the local files or PostgreSQL. Whatever is another's answers 404, as
if it did not exist (never 403: that would tell it does), list endpoints list one's own, another's
approval is refused with 404 and nothing runs. chat-copilot's REST and hub are in
tests/interfaces/chat_copilot/test_copilot_own_chats.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from kernel_app.base.config import Settings
from kernel_app.conversation import open_conversation_store
from tests.support import postgres as pg_support
from tests.support.entra import CLIENT_ID, TENANT, IdentityProvider
from tests.support.server import SUM_PLAN, make_app, running
from tests.support.tool_scripted import ToolScripted, tools

pytestmark = pytest.mark.e2e  # the app served by uvicorn on loopback, a loopback identity provider

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

ALICE_KEY, BOB_KEY = "a" * 24, "b" * 24
BOB_OID = "00000000-0000-0000-bbbb-0000000000b0"


@dataclass
class TwoUsers:
    url: str
    service: ToolScripted
    alice: dict[str, str]  # her Authorization header
    bob: dict[str, str]


@pytest.fixture(
    params=[
        ("entra", "local"),
        ("entra", "postgresql"),
        ("keys", "local"),
        ("keys", "postgresql"),
    ],
    ids=lambda p: "-".join(p),
)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TwoUsers]:
    sign_in, backend = request.param
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    service = ToolScripted()
    store = open_conversation_store(tmp_path / "memory", database_url=url)
    if sign_in == "keys":
        settings = Settings(database_url=url)
        with running(make_app(tmp_path, service, settings, store=store, api_keys=[ALICE_KEY, BOB_KEY])) as base:
            yield TwoUsers(base, service, bearer(ALICE_KEY), bearer(BOB_KEY))
        return
    idp = IdentityProvider()
    with idp.serving() as authority:
        settings = Settings(
            database_url=url, entra_tenant_id=TENANT, entra_client_id=f"api://{CLIENT_ID}", entra_authority=authority
        )
        with running(make_app(tmp_path, service, settings, store=store)) as base:
            yield TwoUsers(base, service, bearer(idp.token()), bearer(idp.token(oid=BOB_OID, name="Bob")))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def not_found(response: httpx.Response) -> bool:
    return response.status_code == 404


def same_answer(answer: httpx.Response, nothing: httpx.Response, real_id: str) -> bool:
    """Another's thing answers exactly as a thing that does not exist (its id aside)."""
    return (answer.status_code, answer.text.replace(real_id, "nothing_here")) == (nothing.status_code, nothing.text)


def test_conversations_are_their_owners_only(served: TwoUsers) -> None:
    url, service, alice, bob = served.url, served.service, served.alice, served.bob
    mine = httpx.post(f"{url}/v1/conversations", json={"title": "Alice's"}, headers=alice).json()["id"]
    theirs = httpx.post(f"{url}/v1/conversations", json={"title": "Bob's"}, headers=bob).json()["id"]
    service.queue("Hello, Alice.")
    said = {"content": "Hi", "stream": False}
    assert httpx.post(f"{url}/v1/conversations/{mine}/messages", json=said, headers=alice, timeout=30).is_success
    assert [c["id"] for c in httpx.get(f"{url}/v1/conversations", headers=alice).json()["data"]] == [mine]
    assert [c["id"] for c in httpx.get(f"{url}/v1/conversations", headers=bob).json()["data"]] == [theirs]

    # Bob tries every route on Alice's conversation: each answers as for one that does not exist.
    routes = {
        "get": ("GET", "/v1/conversations/{id}", None),
        "continue": ("POST", "/v1/conversations/{id}/messages", said),
        "stream": ("POST", "/v1/conversations/{id}/messages", {"content": "Hi"}),
        "approve": ("POST", "/v1/conversations/{id}/approvals/approval_x", {"approved": True}),
        "delete": ("DELETE", "/v1/conversations/{id}", None),
    }
    for route, (method, path, body) in routes.items():
        answer = httpx.request(method, url + path.format(id=mine), json=body, headers=bob)
        nothing = httpx.request(method, url + path.format(id="nothing_here"), json=body, headers=bob)
        assert not_found(answer), (route, answer.status_code, answer.text)
        assert same_answer(answer, nothing, mine), route  # no existence leak
    assert len(service.requests) == 1  # Bob's turns never reached the model
    kept = httpx.get(f"{url}/v1/conversations/{mine}", headers=alice).json()
    assert [m["content"] for m in kept["messages"]] == ["Hi", "Hello, Alice."]
    assert httpx.delete(f"{url}/v1/conversations/{mine}", headers=alice).status_code == 204


def test_an_approval_is_answered_by_the_asker_only(served: TwoUsers) -> None:
    url, service, alice, bob = served.url, served.service, served.alice, served.bob
    cid = httpx.post(f"{url}/v1/conversations", json={}, headers=alice).json()["id"]
    service.queue(tools(("memory-save", {"input": "We bake at night", "collection": "notes", "id": "n1"})), "Saved.")
    seen: list[dict[str, Any]] = []
    refused: list[int] = []

    with httpx.stream(
        "POST", f"{url}/v1/conversations/{cid}/messages", json={"content": "Remember it"}, headers=alice, timeout=30
    ) as response:
        buffer = ""
        for chunk in response.iter_text():
            buffer += chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                event = json.loads(block.split("data: ", 1)[1])
                seen.append(event)
                if event["type"] == "approval_needed":
                    answer = f"{url}/v1/conversations/{cid}/approvals/{event['approval_id']}"
                    refused.append(httpx.post(answer, json={"approved": True}, headers=bob).status_code)
                    assert httpx.post(answer, json={"approved": True}, headers=alice).status_code == 200
    assert refused == [404]
    finished = [e for e in seen if e["type"] == "function_call_finished"]
    assert [(e["ok"], e["result"]) for e in finished] == [(True, "n1")]  # ran once, on Alice's answer
    # what the function saved is in Alice's collection "notes", not in Bob's (nor listed for him)
    names = {c["name"] for c in httpx.get(f"{url}/v1/memory", headers=alice).json()["data"]}
    assert names == {"notes"}
    assert httpx.get(f"{url}/v1/memory", headers=bob).json()["data"] == []


def test_plans_are_seen_and_executed_by_their_asker_only(served: TwoUsers) -> None:
    url, service, alice, bob = served.url, served.service, served.alice, served.bob
    service.queue(SUM_PLAN)
    plan = httpx.post(f"{url}/v1/plans", json={"goal": "110 plus 990?"}, headers=alice, timeout=30).json()
    routes = (("GET", "/v1/plans/{id}"), ("POST", "/v1/plans/{id}/execute"), ("POST", "/v1/plans/{id}/reject"))
    for method, path in routes:
        answer = httpx.request(method, url + path.format(id=plan["id"]), headers=bob)
        nothing = httpx.request(method, url + path.format(id="nothing_here"), headers=bob)
        assert not_found(answer) and same_answer(answer, nothing, plan["id"]), answer.text
    assert httpx.get(f"{url}/v1/plans/{plan['id']}", headers=alice).json()["status"] == "proposed"  # not run
    cid = httpx.post(f"{url}/v1/conversations", json={"title": "Sums"}, headers=alice).json()["id"]
    executed = httpx.post(
        f"{url}/v1/plans/{plan['id']}/execute", json={"conversation_id": cid}, headers=alice, timeout=30
    ).json()
    assert (executed["status"], executed["result"]) == ("done", "1100")
    # A conversation's plans, with their steps' results: Alice's to list; to Bob, no such conversation.
    listed = httpx.get(f"{url}/v1/plans", params={"conversation_id": cid}, headers=alice).json()["data"]
    assert [p["id"] for p in listed] == [plan["id"]]
    assert not_found(httpx.get(f"{url}/v1/plans", params={"conversation_id": cid}, headers=bob))


def test_a_stored_response_is_continued_and_read_by_its_owner_only(served: TwoUsers) -> None:
    url, service, alice, bob = served.url, served.service, served.alice, served.bob
    service.queue("Noted: the oven is old.")
    first = httpx.post(
        f"{url}/v1/responses", json={"model": "kernel-app", "input": "The oven is old."}, headers=alice, timeout=30
    ).json()
    continued = {"model": "kernel-app", "input": "What is old?", "previous_response_id": first["id"]}
    for answer in (
        httpx.get(f"{url}/v1/responses/{first['id']}", headers=bob),
        httpx.post(f"{url}/v1/responses", json=continued, headers=bob),
        httpx.delete(f"{url}/v1/responses/{first['id']}", headers=bob),
    ):
        assert not_found(answer), answer.text
    assert len(service.requests) == 1
    assert httpx.get(f"{url}/v1/responses/{first['id']}", headers=alice).json()["id"] == first["id"]
    service.queue("The oven.")
    assert httpx.post(f"{url}/v1/responses", json=continued, headers=alice, timeout=30).status_code == 200
    assert "The oven is old." in service.requests[-1].prompt  # Alice's stored turn came with it


def test_memory_collections_are_per_user_unless_shared(served: TwoUsers) -> None:
    url, alice, bob = served.url, served.alice, served.bob
    record = {"text": "The oven is old", "id": "w1"}
    assert httpx.post(f"{url}/v1/memory/docs/records", json=record, headers=alice).status_code == 201
    files = [("files", ("hours.md", b"# Hours\n\nWe open at seven.", "text/markdown"))]
    assert httpx.post(f"{url}/v1/memory/docs/documents", files=files, headers=alice, timeout=30).status_code == 201
    listed = httpx.get(f"{url}/v1/memory", headers=alice).json()["data"]
    assert [c["name"] for c in listed] == ["docs"]  # her own name, not the stored one
    assert httpx.get(f"{url}/v1/memory", headers=bob).json()["data"] == []
    search = {"query": "oven", "min_relevance": -1}
    for answer in (
        httpx.post(f"{url}/v1/memory/docs/search", json=search, headers=bob),
        httpx.get(f"{url}/v1/memory/docs/records", headers=bob),
        httpx.get(f"{url}/v1/memory/docs/records/w1", headers=bob),
        httpx.delete(f"{url}/v1/memory/docs/records/w1", headers=bob),
        httpx.delete(f"{url}/v1/memory/docs", headers=bob),
        httpx.get(f"{url}/v1/memory/docs/documents/hours.md", headers=bob),
        httpx.post(f"{url}/v1/memory/docs/ask", json={"question": "How old is the oven?"}, headers=bob),
    ):
        assert not_found(answer), answer.text
        assert "w1" not in answer.text and "The oven is old" not in answer.text
    # Bob's own "docs" is his: saving there leaves Alice's as it was
    assert httpx.post(f"{url}/v1/memory/docs/records", json={"text": "Bob's", "id": "b1"}, headers=bob).is_success
    mine = httpx.get(f"{url}/v1/memory/docs/records", headers=alice).json()["data"]
    assert "w1" in {r["id"] for r in mine} and "b1" not in {r["id"] for r in mine}
    downloaded = httpx.get(f"{url}/v1/memory/docs/documents/hours.md", headers=alice)
    assert downloaded.status_code == 200 and b"seven" in downloaded.content
    assert httpx.delete(f"{url}/v1/memory/docs", headers=alice).status_code == 204


async def test_mcp_memory_tools_see_the_callers_collections(served: TwoUsers) -> None:
    url, alice, bob = served.url, served.alice, served.bob
    save = {"input": "The oven is old", "collection": "docs", "id": "w1"}
    recall = {"input": "oven", "collection": "docs", "min_relevance": -1}
    async with (
        streamablehttp_client(f"{url}/mcp", headers=alice) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        assert not (await session.call_tool("memory-save", save)).isError
        found = await session.call_tool("memory-recall", recall)
        assert "[w1] The oven is old" in found.content[0].text  # type: ignore[union-attr]
    async with (
        streamablehttp_client(f"{url}/mcp", headers=bob) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        found = await session.call_tool("memory-recall", recall)
        assert found.content == [] or found.content[0].text == ""  # type: ignore[union-attr]
    async with httpx.AsyncClient() as http:
        assert [c["name"] for c in (await http.get(f"{url}/v1/memory", headers=alice)).json()["data"]] == ["docs"]
        assert (await http.get(f"{url}/v1/memory", headers=bob)).json()["data"] == []


def test_shared_collections_are_everyones(tmp_path: Path) -> None:
    settings = Settings(shared_collections=["handbook"])
    with running(make_app(tmp_path, ToolScripted(), settings, api_keys=[ALICE_KEY, BOB_KEY])) as url:
        record = {"text": "Holidays: ask a week ahead", "id": "h1"}
        assert httpx.post(f"{url}/v1/memory/handbook/records", json=record, headers=bearer(ALICE_KEY)).is_success
        assert httpx.post(f"{url}/v1/memory/notes/records", json=record, headers=bearer(ALICE_KEY)).is_success
        seen = httpx.get(f"{url}/v1/memory/handbook/records", headers=bearer(BOB_KEY)).json()["data"]
        assert [r["id"] for r in seen] == ["h1"]
        assert [c["name"] for c in httpx.get(f"{url}/v1/memory", headers=bearer(BOB_KEY)).json()["data"]] == [
            "handbook"
        ]


def test_threads_do_not_leak_the_scope(served: TwoUsers) -> None:
    """Requests of both users at once: each sees their own collections (the scope is per request)."""
    url, alice, bob = served.url, served.alice, served.bob
    failures: list[str] = []

    def save_and_check(headers: dict[str, str], text: str) -> None:
        for n in range(5):
            httpx.post(
                f"{url}/v1/memory/docs/records", json={"text": f"{text} {n}", "id": f"{text}{n}"}, headers=headers
            )
        ids = {r["id"] for r in httpx.get(f"{url}/v1/memory/docs/records", headers=headers).json()["data"]}
        if ids != {f"{text}{n}" for n in range(5)}:
            failures.append(f"{text}: {sorted(ids)}")

    threads = [threading.Thread(target=save_and_check, args=args) for args in ((alice, "a"), (bob, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
