"""Issue 22's "Done when", its first part: two users on one ``kernel-app serve`` with Entra ID sign-in.

A loopback identity provider stands in for Entra ID (tests/support/entra.py); the model is the loopback
OpenAI-compatible stub. Each user calls exactly as chat-copilot's web app does once MSAL has their token:
REST with ``Authorization: Bearer``, the SignalR hub with the token in ``access_token``. Each sees only
their own chats, and a plan one proposes cannot be approved by the other (404, and it does not run),
while its asker's approval runs it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import cli_env
from tests.support.copilot_client import HubClient, approval, ask
from tests.support.entra import CLIENT_ID, TENANT, USER_OID, IdentityProvider
from tests.support.server import SUM_PLAN, serve_process

pytestmark = pytest.mark.e2e  # kernel-app serve as a subprocess, a loopback identity provider and model

BOB_OID = "00000000-0000-0000-bbbb-0000000000b0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ready_for(proc: subprocess.Popen[str], url: str, token: str, within: float) -> None:
    """``/readyz`` answers 200 to a signed-in user (with sign-in on, only ``/healthz`` is open)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(f"{url}/readyz", headers={"Authorization": f"Bearer {token}"}, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"kernel-app serve did not get ready: {proc.communicate(timeout=30)[1][-2000:]}")
        time.sleep(0.2)


@pytest.fixture
def serve(openai_server: Any, tmp_path: Path) -> Iterator[tuple[str, Any, IdentityProvider]]:
    idp = IdentityProvider()
    with idp.serving() as authority:
        port = free_port()
        env = cli_env(
            KERNEL_APP_SERVICE="openai",
            OPENAI_BASE_URL=openai_server.base_url,
            OPENAI_API_KEY="test",
            KERNEL_APP_MODEL="gpt-4o-mini",
            KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"),
            KERNEL_APP_ENTRA_TENANT_ID=TENANT,
            KERNEL_APP_ENTRA_CLIENT_ID=f"api://{CLIENT_ID}",
            KERNEL_APP_ENTRA_AUTHORITY=authority,
        )
        proc = serve_process(port, env)
        url = f"http://127.0.0.1:{port}"
        try:
            ready_for(proc, url, idp.token(), within=90)
            yield url, openai_server, idp
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err


async def test_two_signed_in_users_see_their_own_chats_and_approve_their_own_plans(
    serve: tuple[str, Any, IdentityProvider],
) -> None:
    url, model, idp = serve
    base = f"{url}/copilot"
    tokens = {"alice": idp.token(), "bob": idp.token(oid=BOB_OID, name="Bob")}
    headers = {who: {"Authorization": f"Bearer {token}"} for who, token in tokens.items()}
    hubs = {who: HubClient(base, access_token=token) for who, token in tokens.items()}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        config = (await http.get("/authConfig")).json()  # what the web app reads before MSAL signs in
        assert config["authType"] == "AzureAd" and config["aadClientId"] == CLIENT_ID
        chats = {}
        for who in ("alice", "bob"):
            created = await http.post("/chats", json={"title": f"{who}'s chat"}, headers=headers[who])
            assert created.status_code == 201, created.text
            chats[who] = created.json()["chatSession"]["id"]
        for who in ("alice", "bob"):
            listed = (await http.get("/chats", headers=headers[who])).json()
            assert [c["id"] for c in listed] == [chats[who]], who
        other = await http.get(f"/chats/{chats['alice']}/messages", headers=headers["bob"])
        assert other.status_code == 404
        for hub in hubs.values():
            await hub.start()
        try:
            await hubs["alice"].join(chats["alice"])
            await hubs["bob"].join(chats["bob"])
            # a reply streams to its own user's browser only
            model.queue("Croissants sell best before nine.")
            said = await http.post(
                f"/chats/{chats['alice']}/messages", json=ask("When?", chats["alice"]), headers=headers["alice"]
            )
            assert said.status_code == 200, said.text
            await hubs["alice"].wait(lambda h: any("Croissants" in str(a) for a in h.of("ReceiveMessageUpdate")))
            # Alice proposes a plan; Bob cannot approve it; Alice can, and it runs
            model.queue(SUM_PLAN)
            proposed = await http.post(
                f"/chats/{chats['alice']}/messages",
                json=ask("/plan add 110 and 990", chats["alice"]),
                headers=headers["alice"],
            )
            assert proposed.status_code == 200, proposed.text
            await hubs["alice"].wait(lambda h: any(m[2]["type"] == 1 for m in h.of("ReceiveMessage")))
            [plan] = [m[2] for m in hubs["alice"].of("ReceiveMessage") if m[2]["type"] == 1]
            approve = ask("Yes, proceed", chats["alice"], proposedPlan=approval(plan, 1))
            refused = await http.post(f"/chats/{chats['alice']}/plan", json=approve, headers=headers["bob"])
            assert refused.status_code == 404
            ran = await http.post(f"/chats/{chats['alice']}/plan", json=approve, headers=headers["alice"])
            assert ran.status_code == 200 and ran.json()["value"] == "1100"
            assert hubs["bob"].of("ReceiveMessage") == [] and hubs["bob"].of("ReceiveMessageUpdate") == []
        finally:
            for hub in hubs.values():
                await hub.stop()
        asked = [m for m in (await http.get(f"/chats/{chats['alice']}/messages", headers=headers["alice"])).json()]
        assert {m["userId"] for m in asked if m["authorRole"] == 0} == {f"{USER_OID}.{TENANT}"}
