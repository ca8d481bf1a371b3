"""`kernel-app serve` as a user runs it: a subprocess on loopback, in front of a loopback OpenAI stub."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import openai
import pytest

from tests.support.cli import cli_env, run_cli
from tests.support.server import serve_process, wait_until_ready

pytestmark = pytest.mark.e2e  # kernel-app serve as a subprocess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_refuses_other_addresses_without_keys() -> None:
    proc = run_cli("serve", "--host", "0.0.0.0", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "refusing to listen on 0.0.0.0 without API keys or sign-in: set KERNEL_APP_API_KEYS" in proc.stderr
    assert "KERNEL_APP_ENTRA_TENANT_ID" in proc.stderr
    short = run_cli("serve", "--host", "0.0.0.0", KERNEL_APP_API_KEYS="short", timeout=60)
    assert short.returncode == 2 and "at least 16 characters" in short.stderr
    # half a sign-in configuration (the flag beside the environment) says what is missing, in one line
    half = run_cli("serve", "--host", "0.0.0.0", "--entra-tenant-id", "contoso", timeout=60)
    assert half.returncode == 2 and "set entra_client_id too" in half.stderr
    assert len(half.stderr.strip().splitlines()) == 1


def test_serve_over_a_hosted_model(openai_server, tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=openai_server.base_url,
        OPENAI_API_KEY="test",
        KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"),
    )
    proc = serve_process(port, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, url, within=60)
        openai_server.queue("Plain hello.", "Streamed hello there.")
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        ids = [m.id for m in client.models.list()]
        assert ids == ["kernel-app", "gpt-4o-mini"]
        answer = client.chat.completions.create(model="kernel-app", messages=[{"role": "user", "content": "Hi"}])
        assert answer.choices[0].message.content == "Plain hello."
        sent = openai_server.requests[-1].body
        assert any(t["function"]["name"] == "Math-add" for t in sent["tools"])  # the kernel's functions
        stream = client.chat.completions.create(
            model="kernel-app", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Streamed hello there."
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"Kernel App serving on http://127.0.0.1:{port}" in err and "Traceback" not in err


def test_serve_open_opens_the_web_page_once_it_listens(openai_server, tmp_path: Path) -> None:
    import httpx

    port = free_port()
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"  # a stand-in browser: webbrowser runs $BROWSER with the URL
    browser.write_text(f"import pathlib, sys\npathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n")
    env = cli_env(
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=openai_server.base_url,
        OPENAI_API_KEY="test",
        KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"),
        BROWSER=f"{sys.executable} {browser} %s",
    )
    proc = serve_process(port, env, "--open")
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_ready(proc, url.rstrip("/"), within=60)
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert opened.read_text() == url
        page = httpx.get(url)
        assert page.status_code == 200 and "<title>Kernel App</title>" in page.text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "web page at /" in err and "Traceback" not in err
