"""Several ``kernel-app serve`` processes on one PostgreSQL, as a user deploys them (issue 19): ``--workers 2``
answers conversations started on either worker, and ``kill -9`` of one server in the middle of a streaming
turn leaves the other serving, loses nothing acknowledged, and the cut turn is marked interrupted."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from kernel_app.conversation.pg_store import INTERRUPTED
from tests.support import postgres as pg_support
from tests.support.cli import ROOT, cli_env, run_cli
from tests.support.openai_stub import OpenAIStubServer
from tests.support.server import wait_until_ready

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

pytestmark = pytest.mark.e2e  # kernel-app serve subprocesses on a real PostgreSQL

INSTANCE = "X-Kernel-App-Instance"
LEASE_S = 2.0  # KERNEL_APP_TURN_LEASE_S: a dead server's turn is marked within about this long


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def model() -> Iterator[OpenAIStubServer]:
    stub = OpenAIStubServer().start()
    try:
        yield stub
    finally:
        stub.stop()


@contextmanager
def _serve(
    folder: Path, database_url: str, model: OpenAIStubServer, *args: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    env = cli_env(
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=model.base_url,
        OPENAI_API_KEY="test",
        KERNEL_APP_MEMORY_DIR=str(folder),
        KERNEL_APP_DATABASE_URL=database_url,
        KERNEL_APP_TURN_LEASE_S=str(LEASE_S),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "kernel_app", "serve", "--port", str(port), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, url, within=90)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=30)


def _say(url: str, conversation_id: str, content: str) -> httpx.Response:
    reply = httpx.post(
        f"{url}/v1/conversations/{conversation_id}/messages", json={"content": content, "stream": False}, timeout=60
    )
    assert reply.status_code == 200, reply.text
    return reply


def test_workers_without_a_database_is_a_one_line_error() -> None:
    proc = run_cli("serve", "--workers", "2", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--workers 2 needs database_url (--database-url or KERNEL_APP_DATABASE_URL)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_two_workers_answer_conversations_started_on_either(
    tmp_path: Path, postgres_url: str, model: OpenAIStubServer
) -> None:
    model.default_answer = "Noted."
    with _serve(tmp_path, postgres_url, model, "--workers", "2") as (url, _):
        # Each request on a new connection, several at once: the kernel hands them to both workers.
        def start(n: int) -> tuple[str, str]:
            reply = httpx.post(f"{url}/v1/conversations", json={"title": f"c{n}"}, timeout=60)
            assert reply.status_code == 201, reply.text
            return reply.json()["id"], reply.headers[INSTANCE]

        with ThreadPoolExecutor(8) as pool:
            started = list(pool.map(start, range(24)))
            said = list(pool.map(lambda c: _say(url, c[0], "We bake at night."), started))
        starters = {worker for _, worker in started}
        answerers = {reply.headers[INSTANCE] for reply in said}
        assert len(starters | answerers) == 2, (starters, answerers)  # requests landed on both workers
        crossed = [c for (c, first), reply in zip(started, said, strict=True) if reply.headers[INSTANCE] != first]
        assert crossed, "no conversation was continued on the other worker"
        for conversation_id, _ in started:
            shown = httpx.get(f"{url}/v1/conversations/{conversation_id}", timeout=30).json()
            assert [(m["role"], m["content"]) for m in shown["messages"]] == [
                ("user", "We bake at night."),
                ("assistant", "Noted."),
            ]
        ready = httpx.get(f"{url}/readyz", timeout=30).json()
        assert ready["queue"]["scope"] == "this instance" and ready["database"]["shared"] is True


def test_kill_9_mid_turn_the_other_server_serves_and_marks_the_turn_interrupted(
    tmp_path: Path, postgres_url: str, model: OpenAIStubServer
) -> None:
    with (
        _serve(tmp_path / "a", postgres_url, model) as (a, proc_a),
        _serve(tmp_path / "b", postgres_url, model) as (b, _),
    ):
        cid = httpx.post(f"{a}/v1/conversations", json={"title": "Bakery"}).json()["id"]
        model.queue("Noted: ovens at night.")
        _say(a, cid, "Remember: ovens at night.")  # acknowledged: it must survive

        model.word_delay = 0.5
        model.queue(" ".join(["slowly"] * 60))  # about 30 s: A is killed long before it ends
        with httpx.stream(
            "POST", f"{a}/v1/conversations/{cid}/messages", json={"content": "Tell me a long story."}, timeout=60
        ) as stream:
            lines = stream.iter_lines()
            while "slowly" not in next(lines):  # the answer has started streaming
                pass
            proc_a.send_signal(signal.SIGKILL)
            proc_a.wait(10)
        model.word_delay = 0.0

        # B keeps answering at once, for another conversation too.
        other = httpx.post(f"{b}/v1/conversations", json={"title": "Other"}).json()["id"]
        model.queue("Still here.")
        assert _say(b, other, "Anyone there?").json()["text"] == "Still here."

        deadline = time.monotonic() + 10 * LEASE_S
        while True:
            messages = httpx.get(f"{b}/v1/conversations/{cid}", timeout=30).json()["messages"]
            if len(messages) > 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", "Remember: ovens at night."),
            ("assistant", "Noted: ovens at night."),
            ("user", "Tell me a long story."),
            ("assistant", INTERRUPTED),
        ]
        # The conversation goes on, on B, with the interrupted turn in its history.
        model.queue("Once upon a time, at night.")
        assert _say(b, cid, "Try again?").json()["text"] == "Once upon a time, at night."
        sent = json.dumps(model.requests[-1].body["messages"])
        assert "Remember: ovens at night." in sent and "interrupted" in sent
