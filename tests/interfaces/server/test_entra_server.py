"""Entra ID sign-in on a served app, its identity provider a loopback stand-in (tests/support/entra.py):
REST, the OpenAI-compatible endpoint (the token as the openai client's key), MCP over HTTP, and
chat-copilot's REST calls and SignalR hub as the signed-in web app makes them."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from websockets.asyncio.client import connect

from kernel_app.base.config import Settings
from tests.support.copilot_client import HubClient
from tests.support.entra import (
    CLIENT_ID,
    OTHER_TENANT,
    TENANT,
    USER_OID,
    IdentityProvider,
    SigningKey,
    tampered,
    unsigned,
)
from tests.support.server import make_app, running
from tests.support.tool_scripted import ToolScripted

pytestmark = pytest.mark.e2e

KEY = "k" * 24


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted, IdentityProvider]]:
    idp = IdentityProvider()
    with idp.serving() as authority:
        settings = Settings(entra_tenant_id=TENANT, entra_client_id=f"api://{CLIENT_ID}", entra_authority=authority)
        service = ToolScripted()
        with running(make_app(tmp_path, service, settings, api_keys=[KEY])) as url:
            yield url, service, idp


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_rest_lets_in_users_and_keys_and_refuses_every_bad_token(
    served: tuple[str, ToolScripted, IdentityProvider],
) -> None:
    url, _, idp = served
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/v1/models", headers=bearer(idp.token())).status_code == 200
    assert httpx.get(f"{url}/v1/models", headers=bearer(KEY)).status_code == 200
    refused = {
        "none": {},
        "expired": bearer(idp.token(exp=1_000_000)),
        "audience": bearer(idp.token(aud="api://another-app")),
        "issuer": bearer(idp.token(iss=f"{idp.authority}/{OTHER_TENANT}/v2.0")),
        "tampered": bearer(tampered(idp.token(), oid="someone-else")),
        "unsigned": bearer(unsigned(idp.claims())),
        "foreign-key": bearer(idp.token(key=SigningKey(kid=idp.keys[0].kid))),
        "wrong-key": bearer("w" * 24),
    }
    for name, headers in refused.items():
        answer = httpx.get(f"{url}/v1/models", headers=headers)
        assert answer.status_code == 401, name
        assert answer.headers["www-authenticate"].startswith("Bearer"), name
        assert "\n" not in answer.json()["error"]["message"], name
    for name, token in {"tenant": idp.token(tid=OTHER_TENANT), "scope": idp.token(scp="User.Read")}.items():
        assert httpx.get(f"{url}/v1/models", headers=bearer(token)).status_code == 403, name


def test_a_rotated_key_is_fetched_when_a_token_names_it(served: tuple[str, ToolScripted, IdentityProvider]) -> None:
    url, _, idp = served
    assert httpx.get(f"{url}/v1/models", headers=bearer(idp.token())).status_code == 200  # keys fetched now
    rotated = SigningKey()
    idp.keys = [rotated]  # the provider rolled its key; the server's validator refetches after its floor
    validator = _validator(url)
    validator._fetched_at = None  # as if the floor had passed (the unit tests check the floor itself)
    assert httpx.get(f"{url}/v1/models", headers=bearer(idp.token(key=rotated))).status_code == 200


def test_an_identity_provider_away_is_a_503_and_the_server_recovers_by_itself(
    served: tuple[str, ToolScripted, IdentityProvider], caplog: pytest.LogCaptureFixture
) -> None:
    url, _, idp = served
    idp.stop()  # before the first token: the server has neither the OpenID configuration nor the keys
    with caplog.at_level(logging.WARNING, "kernel_app.server.auth"):
        away = httpx.get(f"{url}/v1/models", headers=bearer(idp.token()))
    assert away.status_code == 503, away.text
    assert 1 <= int(away.headers["retry-after"]) <= 5
    assert "identity provider" in away.json()["error"]["message"]
    lines = [r.getMessage() for r in caplog.records if r.name == "kernel_app.server.auth"]
    assert len(lines) == 1 and "503" in lines[0] and idp.token()[:20] not in lines[0]
    assert httpx.get(f"{url}/v1/models", headers=bearer(KEY)).status_code == 200  # keys need no provider
    idp.start()  # back on the same address: the next try after Retry-After lets the user in
    deadline = time.monotonic() + 10
    status = 503
    while status == 503 and time.monotonic() < deadline:
        time.sleep(0.5)
        status = httpx.get(f"{url}/v1/models", headers=bearer(idp.token())).status_code
    assert status == 200


def _validator(url: str):  # the served app's validator, to stand in for a minute's wait
    from kernel_app.interfaces.server.security import Authenticate
    from tests.support.server import SERVED

    layer = SERVED[url].middleware_stack
    while not isinstance(layer, Authenticate):
        layer = layer.app
    return layer.entra


def test_the_openai_client_sends_the_token_as_its_key(served: tuple[str, ToolScripted, IdentityProvider]) -> None:
    url, service, idp = served
    service.queue("Hello, Megan.")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=idp.token(), max_retries=0, timeout=30)
    reply = client.chat.completions.create(model="kernel-app", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == "Hello, Megan."
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key=idp.token(exp=1_000_000), max_retries=0).models.list()


async def test_mcp_over_http_with_the_token(served: tuple[str, ToolScripted, IdentityProvider]) -> None:
    url, _, idp = served
    async with (
        streamablehttp_client(f"{url}/mcp", headers=bearer(idp.token())) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = {tool.name for tool in (await session.list_tools()).tools}
        assert "Math-add" in tools
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert answer.status_code == 401


async def test_chat_copilot_signs_its_user_in(served: tuple[str, ToolScripted, IdentityProvider]) -> None:
    url, service, idp = served
    base = f"{url}/copilot"
    token = idp.token()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        config = (await http.get("/authConfig")).json()  # before sign-in: open
        assert config == {
            "authType": "AzureAd",
            "aadAuthority": f"{idp.authority}/{TENANT}",
            "aadClientId": CLIENT_ID,
            "aadApiScope": f"api://{CLIENT_ID}/access_as_user",
        }
        assert (await http.get("/maintenanceStatus")).status_code == 200
        assert (await http.get("/chats")).status_code == 401
        assert (await http.post("/chats", json={"title": "x"}, headers=bearer(idp.token(exp=1)))).status_code == 401
        created = await http.post("/chats", json={"title": "Bakery"}, headers=bearer(token))
        assert created.status_code == 201, created.text
        chat_id = created.json()["chatSession"]["id"]
        # the browser's hub: negotiate and the WebSocket carry the token in access_token
        negotiated = await http.post(
            "/messageRelayHub/negotiate", params={"negotiateVersion": 1, "access_token": token}
        )
        assert negotiated.status_code == 200
        assert (await http.post("/messageRelayHub/negotiate", params={"negotiateVersion": 1})).status_code == 401
    ws = url.replace("http://", "ws://", 1) + "/messageRelayHub"
    async with connect(f"{ws}?access_token={token}", origin="http://localhost:3000") as socket:  # type: ignore[arg-type]
        await socket.send('{"protocol":"json","version":1}\x1e')
        assert await asyncio.wait_for(socket.recv(), 5) == "{}\x1e"
    with pytest.raises(Exception, match=r"403|1008"):  # no token: closed before it is accepted
        async with connect(ws, origin="http://localhost:3000") as socket:  # type: ignore[arg-type]
            await socket.send('{"protocol":"json","version":1}\x1e')
            await asyncio.wait_for(socket.recv(), 5)
    # a reply streams to a hub client signed in with the header (pysignalr sends it so)
    hub = HubClient(base, headers=bearer(token))
    await hub.start()
    try:
        await hub.join(chat_id)
        service.queue("Croissants sell best before nine.")
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=bearer(token)) as http:
            ask = {"input": "When do croissants sell?", "variables": [{"key": "chatId", "value": chat_id}]}
            answered = await http.post(f"/chats/{chat_id}/messages", json=ask)
            assert answered.status_code == 200, answered.text
            assert "Croissants" in json.dumps(answered.json())
            # the signed-in user is who asked, whatever the body claims (the web app's own user id form)
            claimed = {**ask, "variables": [*ask["variables"], {"key": "userId", "value": "mallory"}]}
            service.queue("At nine.")
            assert (await http.post(f"/chats/{chat_id}/messages", json=claimed)).status_code == 200
            listed = (await http.get(f"/chats/{chat_id}/messages")).json()
            asked = [m for m in listed if m.get("authorRole") == 0]
            assert asked and {(m["userId"], m["userName"]) for m in asked} == {(f"{USER_OID}.{TENANT}", "Megan Bowen")}
            people = (await http.get(f"/chats/{chat_id}/participants")).json()
            assert [p["userId"] for p in people] == [f"{USER_OID}.{TENANT}"]
        await hub.wait(lambda h: any("Croissants" in json.dumps(a) for a in h.of("ReceiveMessageUpdate")))
    finally:
        await hub.stop()
