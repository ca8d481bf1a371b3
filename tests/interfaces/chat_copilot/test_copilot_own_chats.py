"""chat-copilot with sign-in (issue 22): a chat is its participants' only, on the REST API and the hub.

Two users of the loopback identity provider (two object ids), calling as the signed-in web app does: REST
with the bearer token, the SignalR hub with it (pysignalr sends it as a header; the browser's
``access_token`` is tests/interfaces/server/test_entra_server.py's). Every route of another's chat answers
as for a chat that does not exist; the user id is the token's, never the body's or the hub call's; a chat
is shared through chat-copilot's invite (joining it), and then only its asker decides a plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.base.identity import Identity
from kernel_app.conversation import open_conversation_store
from kernel_app.interfaces.server.chat_copilot.hub import INVOCATION, SEPARATOR, Connection, Hub
from tests.support import postgres as pg_support
from tests.support.copilot_client import HubClient, approval, ask
from tests.support.entra import CLIENT_ID, TENANT, USER_OID, IdentityProvider
from tests.support.server import SUM_PLAN, make_app, running
from tests.support.tool_scripted import ToolScripted

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

BOB_OID = "00000000-0000-0000-bbbb-0000000000b0"
BOB_KEY = "b" * 24
ALICE_ID, BOB_ID = f"{USER_OID}.{TENANT}", f"{BOB_OID}.{TENANT}"


@dataclass
class Served:
    base: str  # the web app's base URL (/copilot)
    service: ToolScripted
    alice: dict[str, str]
    bob: dict[str, str]
    bob_id: str  # Bob as the web app names him


# Bob is another signed-in user, or a caller with an API key (accepted beside sign-in): one user per key.
@pytest.fixture(params=[("local", "user"), ("postgresql", "user"), ("local", "key")], ids="-".join)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    backend, bob_is = request.param
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    idp = IdentityProvider()
    with idp.serving() as authority:
        settings = Settings(
            database_url=url, entra_tenant_id=TENANT, entra_client_id=f"api://{CLIENT_ID}", entra_authority=authority
        )
        service = ToolScripted()
        store = open_conversation_store(tmp_path / "memory", database_url=url)
        with running(make_app(tmp_path, service, settings, store=store, api_keys=[BOB_KEY])) as base:
            if bob_is == "key":
                bob, bob_id = bearer(BOB_KEY), Identity.for_key(BOB_KEY).principal
            else:
                bob, bob_id = bearer(idp.token(oid=BOB_OID, name="Bob")), BOB_ID
            yield Served(f"{base}/copilot", service, bearer(idp.token()), bob, bob_id)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def hub_of(base: str, headers: dict[str, str]) -> AsyncIterator[HubClient]:
    hub = HubClient(base, headers=headers)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def invoke(hub: HubClient, target: str, arguments: list[Any]) -> str | None:
    """A hub method, waiting for its completion; its error, or None (one invocation at a time)."""
    completed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def done(message: Any) -> None:
        if not completed.done():
            completed.set_result(message)

    hub.client.on_error(done)  # pysignalr hands an error completion to its error callback, not to on_invocation
    await hub.client.send(target, arguments, on_invocation=done)
    message = await asyncio.wait_for(completed, 10)
    return getattr(message, "error", None)


def same_answer(answer: httpx.Response, nothing: httpx.Response, real_id: str) -> bool:
    """Another's chat answers exactly as a chat that does not exist (its id aside)."""
    return (answer.status_code, answer.text.replace(real_id, "nothing_here")) == (nothing.status_code, nothing.text)


async def test_another_users_chat_is_not_found_on_every_route(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
        created = await http.post("/chats", json={"title": "Alice's bakery"}, headers=served.alice)
        chat_id = created.json()["chatSession"]["id"]
        files = [("formFiles", ("hours.md", b"# Hours\n\nWe open at seven.", "text/markdown"))]
        uploaded = await http.post(f"/chats/{chat_id}/documents", files=files, headers=served.alice)
        assert uploaded.status_code == 200, uploaded.text
        [document] = (await http.get(f"/chats/{chat_id}/documents", headers=served.alice)).json()
        assert [c["id"] for c in (await http.get("/chats", headers=served.alice)).json()] == [chat_id]
        assert (await http.get("/chats", headers=served.bob)).json() == []

        plan = json.dumps({"state": 1, "generatedPlanMessageId": "m1"})
        routes = [
            ("GET", "/chats/{id}", None, None),
            ("PATCH", "/chats/{id}", {"title": "Mine now"}, None),
            ("GET", "/chats/{id}/messages", None, None),
            ("POST", "/chats/{id}/messages", ask("Hi", "{id}"), None),
            ("POST", "/chats/{id}/plan", ask("Yes", "{id}", proposedPlan=plan), None),
            ("GET", "/chats/{id}/participants", None, None),
            ("GET", "/chats/{id}/documents", None, None),
            ("POST", "/chats/{id}/documents", None, files),
            ("GET", "/chats/{id}/documents/" + document["id"], None, None),
            ("GET", "/chats/{id}/memories", None, None),
            ("DELETE", "/chats/{id}", None, None),
        ]
        for method, path, body, upload in routes:
            request = json.loads(json.dumps(body).replace("{id}", chat_id)) if body else None
            nothing_body = json.loads(json.dumps(body).replace("{id}", "nothing_here")) if body else None
            answer = await http.request(method, path.format(id=chat_id), json=request, files=upload, headers=served.bob)
            nothing = await http.request(
                method, path.format(id="nothing_here"), json=nothing_body, files=upload, headers=served.bob
            )
            assert answer.status_code == 404, (method, path, answer.text)
            assert same_answer(answer, nothing, chat_id), (method, path)
        assert served.service.requests == []  # Bob's message never reached the model
        kept = (await http.get(f"/chats/{chat_id}", headers=served.alice)).json()
        assert kept["title"] == "Alice's bakery"  # nor did his edit or his delete change it
        people = (await http.get(f"/chats/{chat_id}/participants", headers=served.alice)).json()
        assert [p["userId"] for p in people] == [ALICE_ID]


async def test_the_hub_joins_and_relays_as_the_signed_in_user(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
        created = await http.post("/chats", json={"title": "Alice's bakery"}, headers=served.alice)
        chat_id = created.json()["chatSession"]["id"]
        async with hub_of(served.base, served.alice) as alice, hub_of(served.base, served.bob) as bob:
            await alice.join(chat_id)
            # Bob is no participant: he cannot listen in, relay into it, or say he types there
            for target, arguments in (
                ("AddClientToGroupAsync", [chat_id]),
                ("SendMessageAsync", [chat_id, ALICE_ID, {"content": "from Bob", "userId": ALICE_ID}]),
                ("SendUserTypingStateAsync", [chat_id, ALICE_ID, True]),
            ):
                assert await invoke(bob, target, arguments) == f"no chat {chat_id!r}", target
            assert await invoke(bob, "AddClientToGroupAsync", ["nothing_here"]) == "no chat 'nothing_here'"
            assert alice.received == []
            # chat-copilot's invite: Bob joins with the chat's id; now he sees it and its messages
            joined = await http.post(f"/chats/{chat_id}/participants", headers=served.bob)
            assert joined.json() == {"userId": served.bob_id, "chatId": chat_id}
            assert [c["id"] for c in (await http.get("/chats", headers=served.bob)).json()] == [chat_id]
            await bob.join(chat_id)
            # what Alice's browser relays names her, whatever it says
            message = {"content": "Hello Bob", "userId": "mallory", "userName": "Alice"}
            assert await invoke(alice, "SendMessageAsync", [chat_id, "mallory", message]) is None
            assert await invoke(alice, "SendUserTypingStateAsync", [chat_id, "mallory", True]) is None
            await bob.wait(lambda h: bool(h.of("ReceiveMessage")) and bool(h.of("ReceiveUserTypingState")))
            [[_, sender, relayed]] = bob.of("ReceiveMessage")
            assert (sender, relayed["userId"], relayed["content"]) == (ALICE_ID, ALICE_ID, "Hello Bob")
            assert bob.of("ReceiveUserTypingState") == [[chat_id, ALICE_ID, True]]


async def test_only_the_asker_decides_a_plan_even_in_a_shared_chat(served: Served) -> None:
    served.service.queue(SUM_PLAN)
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
        created = await http.post("/chats", json={"title": "Sums"}, headers=served.alice)
        chat_id = created.json()["chatSession"]["id"]
        await http.post(f"/chats/{chat_id}/participants", headers=served.bob)  # invited: sees the chat
        async with hub_of(served.base, served.alice) as hub:
            await hub.join(chat_id)
            asked = await http.post(
                f"/chats/{chat_id}/messages", json=ask("/plan add 110 and 990", chat_id), headers=served.alice
            )
            assert asked.status_code == 200, asked.text
            await hub.wait(lambda h: any(m[2]["type"] == 1 for m in h.of("ReceiveMessage")))
            [plan_message] = [m[2] for m in hub.of("ReceiveMessage") if m[2]["type"] == 1]
            approve = ask("Yes, proceed", chat_id, proposedPlan=approval(plan_message, 1))
            refused = await http.post(f"/chats/{chat_id}/plan", json=approve, headers=served.bob)
            assert refused.status_code == 404 and refused.json()["error"]["code"] == "plan_not_found"
            assert "Math" not in json.dumps(hub.of("ReceiveBotResponseStatus"))  # nothing ran
            ran = await http.post(f"/chats/{chat_id}/plan", json=approve, headers=served.alice)
            assert ran.status_code == 200 and ran.json()["value"] == "1100"


# region the hub alone (no server)


class Socket:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text[: -len(SEPARATOR)]))


async def test_a_local_hub_relays_what_the_client_says_as_before() -> None:
    hub = Hub()  # key-less local use: no user on the connection, every chat open
    sender, listener = Connection(Socket()), Connection(Socket())  # type: ignore[arg-type]  # send_text only
    hub.join(listener, "c1")
    await hub._invoke(sender, "SendMessageAsync", ["c1", "ana", {"content": "hi", "userId": "ana"}])
    relayed = {
        "type": INVOCATION,
        "target": "ReceiveMessage",
        "arguments": ["c1", "ana", {"content": "hi", "userId": "ana"}],
    }
    assert listener.socket.sent == [relayed]  # type: ignore[attr-defined]


# endregion
