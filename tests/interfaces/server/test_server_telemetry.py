"""`kernel-app serve` with OTEL_EXPORTER_OTLP_ENDPOINT: the spans of a REST turn reach an OTLP/HTTP
collector with the GenAI attributes; `kernel-app --trace` prints a run's spans to stderr."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import cli_env, run_cli
from tests.support.copilot_client import ask
from tests.support.entra import CLIENT_ID, TENANT, USER_OID, IdentityProvider
from tests.support.otlp_collector import OtlpCollector
from tests.support.server import serve_process, wait_until_ready

pytestmark = pytest.mark.e2e  # kernel-app serve as a subprocess, a loopback collector and model


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    server = OtlpCollector().start()
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_rest_turn_reaches_the_otlp_collector(tool_server, collector: OtlpCollector, tmp_path: Path) -> None:
    tool_server.answers.extend([[("Math-add", {"a": 2, "b": 3})], "2 plus 3 is 5."])
    port = free_port()
    env = cli_env(
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=tool_server.base_url,
        OPENAI_API_KEY="test",
        KERNEL_APP_MODEL="gpt-4o-mini",
        KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"),
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_BSP_SCHEDULE_DELAY="100",  # ms: export the batch at once rather than after 5 s
    )
    proc = serve_process(port, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, url, within=60)
        conversation = httpx.post(f"{url}/v1/conversations", json={}, timeout=30).json()["id"]
        answer = httpx.post(
            f"{url}/v1/conversations/{conversation}/messages",
            json={"content": "What is 2 plus 3?", "stream": False},
            timeout=60,
        ).json()
        assert answer["text"] == "2 plus 3 is 5."
        (turn,) = collector.wait_for("invoke_agent")
        tools = collector.wait_for("execute_tool")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err
    assert turn.name == "invoke_agent kernel-app" and turn.parent_span_id == b""
    assert turn.service_name == "kernel-app"
    assert turn.attributes["gen_ai.conversation.id"] == conversation
    assert turn.attributes["gen_ai.provider.name"] == "openai"
    (tool,) = tools
    assert tool.attributes["gen_ai.tool.name"] == "Math.add" and tool.attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool.parent_span_id == turn.span_id
    chats = [s for s in collector.spans if s.name.startswith("chat ")]
    assert [c.name for c in chats] == ["chat gpt-4o-mini"] * 2
    for chat in chats:
        assert chat.trace_id == turn.trace_id and chat.parent_span_id == turn.span_id
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.provider.name"] == "openai"
        assert chat.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert chat.attributes["gen_ai.response.model"] == "gpt-4o-mini"
        assert (chat.attributes["gen_ai.usage.input_tokens"], chat.attributes["gen_ai.usage.output_tokens"]) == (10, 5)
        assert chat.attributes["gen_ai.conversation.id"] == conversation
        assert "gen_ai.input.messages" not in chat.attributes  # contents are opt-in
    assert sorted(tuple(c.attributes["gen_ai.response.finish_reasons"]) for c in chats) == [("stop",), ("tool_calls",)]


ALEX_OID = "00000000-0000-0000-9e5a-71c2a4b0d3f1"


def test_two_signed_in_users_turns_arrive_as_their_own_traces(
    tool_server, collector: OtlpCollector, tmp_path: Path
) -> None:
    """The Done-when of issue 22: two users signed in through a loopback Entra ID call one server, REST and
    chat-copilot as its web app calls it; each turn is one trace with the GenAI attributes and its user's
    principal (pseudonymous: tenant and object id), never the token."""
    idp = IdentityProvider()
    tool_server.answers.extend([[("Math-add", {"a": 2, "b": 3})], "2 plus 3 is 5.", "Hello, Alex.", "At nine."])
    port = free_port()
    with idp.serving() as authority:
        env = cli_env(
            KERNEL_APP_SERVICE="openai",
            OPENAI_BASE_URL=tool_server.base_url,
            OPENAI_API_KEY="test",
            KERNEL_APP_MODEL="gpt-4o-mini",
            KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"),
            KERNEL_APP_ENTRA_TENANT_ID=TENANT,
            KERNEL_APP_ENTRA_CLIENT_ID=CLIENT_ID,
            KERNEL_APP_ENTRA_AUTHORITY=authority,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        proc = serve_process(port, env, "--no-mcp")
        url = f"http://127.0.0.1:{port}"
        megan = {"Authorization": f"Bearer {idp.token()}"}
        alex_token = idp.token(oid=ALEX_OID, name="Alex Wilber", preferred_username="alex@contoso.example")
        alex = {"Authorization": f"Bearer {alex_token}"}
        try:
            _wait_ready_signed_in(proc, url, megan)
            conversation = httpx.post(f"{url}/v1/conversations", json={}, headers=megan, timeout=30).json()["id"]
            said = httpx.post(
                f"{url}/v1/conversations/{conversation}/messages",
                json={"content": "What is 2 plus 3?", "stream": False},
                headers=megan,
                timeout=60,
            )
            assert said.json()["text"] == "2 plus 3 is 5.", said.text
            other = httpx.post(f"{url}/v1/conversations", json={}, headers=alex, timeout=30).json()["id"]
            said = httpx.post(
                f"{url}/v1/conversations/{other}/messages", json={"content": "Hi", "stream": False}, headers=alex
            )
            assert said.json()["text"] == "Hello, Alex.", said.text
            # Alex again, as chat-copilot's web app asks once MSAL has the token
            created = httpx.post(f"{url}/copilot/chats", json={"title": "Bakery"}, headers=alex, timeout=30)
            chat_id = created.json()["chatSession"]["id"]
            asked = httpx.post(
                f"{url}/copilot/chats/{chat_id}/messages", json=ask("When?", chat_id), headers=alex, timeout=60
            )
            assert asked.status_code == 200 and asked.json()["value"] == "At nine.", asked.text
            deadline = time.monotonic() + 30
            while len(collector.wait_for("invoke_agent")) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # the last turn's model span is exported in the same batch or the next
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err
    turns = sorted(
        collector.wait_for("invoke_agent"), key=lambda s: s.attributes.get("gen_ai.conversation.id") != conversation
    )
    assert len(turns) == 3 and len({t.trace_id for t in turns}) == 3  # one trace per turn
    users = [t.attributes["enduser.id"] for t in turns]
    assert users == [f"entra:{TENANT}:{USER_OID}", f"entra:{TENANT}:{ALEX_OID}", f"entra:{TENANT}:{ALEX_OID}"]
    for turn in turns:
        assert turn.parent_span_id == b"" and turn.attributes["gen_ai.provider.name"] == "openai"
        chats = [s for s in collector.spans if s.name.startswith("chat ") and s.trace_id == turn.trace_id]
        assert chats and all(c.parent_span_id == turn.span_id for c in chats)
        for chat in chats:
            assert chat.attributes["gen_ai.request.model"] == "gpt-4o-mini"
            assert chat.attributes["gen_ai.usage.output_tokens"] > 0
            assert chat.attributes["gen_ai.response.finish_reasons"]
    (tool,) = collector.wait_for("execute_tool")
    assert tool.trace_id == turns[0].trace_id  # Megan's Math.add, in her turn's trace
    every_value = repr([s.attributes for s in collector.spans])
    assert idp.token()[:40] not in every_value and alex_token[:40] not in every_value  # never a token


def _wait_ready_signed_in(proc: subprocess.Popen[str], url: str, headers: dict[str, str]) -> None:
    """/readyz with sign-in on answers only a signed-in caller (wait_until_ready sends no token)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"kernel-app serve not ready: {proc.communicate(timeout=10)[1][-2000:]}")


def test_trace_prints_a_runs_spans_to_stderr() -> None:
    proc = run_cli("--trace", "run", "Text.upper", input="hello world", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "HELLO WORLD"  # stdout stays the output
    assert '"name": "execute_tool Text.upper"' in proc.stderr and '"gen_ai.tool.name": "Text.upper"' in proc.stderr
