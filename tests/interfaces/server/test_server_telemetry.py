"""`kernel-app serve` with OTEL_EXPORTER_OTLP_ENDPOINT: the spans of a REST turn reach an OTLP/HTTP
collector with the GenAI attributes; `kernel-app --trace` prints a run's spans to stderr."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import ROOT, cli_env, run_cli
from tests.support.otlp_collector import OtlpCollector
from tests.support.server import wait_until_ready

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
    proc = subprocess.Popen(
        [sys.executable, "-m", "kernel_app", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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


def test_trace_prints_a_runs_spans_to_stderr() -> None:
    proc = run_cli("--trace", "run", "Text.upper", input="hello world", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "HELLO WORLD"  # stdout stays the output
    assert '"name": "execute_tool Text.upper"' in proc.stderr and '"gen_ai.tool.name": "Text.upper"' in proc.stderr
