"""Two servers on one PostgreSQL share their conversations (issue 19's "a conversation continues on any
instance"), over the real REST API on loopback: each server opens its conversation store itself, from
the ``database_url`` setting, as ``kernel-app serve`` does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server.app import create_app
from kernel_app.providers.scripted import ScriptedChatCompletion
from memories import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import running

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

pytestmark = pytest.mark.e2e  # two uvicorn servers on one PostgreSQL, and kernel-app subprocesses


@contextmanager
def _serving(folder: Path, database_url: str, service: ScriptedChatCompletion) -> Iterator[str]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    app: Any = create_app(settings, chat_service=service, embedder=HashingEmbedder(64))
    assert app.state.kernel_app.store.backend == "postgresql"
    try:
        with running(app) as url:
            yield url
    finally:
        app.state.kernel_app.store.close()


def _say(url: str, conversation_id: str, content: str) -> dict[str, Any]:
    reply = httpx.post(
        f"{url}/v1/conversations/{conversation_id}/messages", json={"content": content, "stream": False}, timeout=60
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_conversation_started_on_one_server_continues_on_another(tmp_path: Path, postgres_url: str) -> None:
    answers_a = ScriptedChatCompletion(["Noted: you bake at night.", "Lyon."])
    answers_b = ScriptedChatCompletion(["You bake at night, in Lyon."])
    with (
        _serving(tmp_path / "a", postgres_url, answers_a) as a,
        _serving(tmp_path / "b", postgres_url, answers_b) as b,
    ):
        created = httpx.post(f"{a}/v1/conversations", json={"title": "Bakery"})
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        assert _say(a, cid, "Remember: we bake at night in Lyon.")["text"] == "Noted: you bake at night."

        assert _say(b, cid, "When do we bake?")["text"] == "You bake at night, in Lyon."
        # B's model was sent A's turn: the user's words and A's answer, before B's own question.
        sent = [(m["role"], m["content"]) for m in answers_b.requests[-1].messages if m["role"] != "system"]
        assert sent == [
            ("user", "Remember: we bake at night in Lyon."),
            ("assistant", "Noted: you bake at night."),
            ("user", "When do we bake?"),
        ]
        assert len(answers_a.requests) == 1  # A answered only its own turn

        assert _say(a, cid, "Where?")["text"] == "Lyon."  # and back on A: it sees B's turn too
        sent = [m["content"] for m in answers_a.requests[-1].messages if m["role"] != "system"]
        assert sent[-3:] == ["When do we bake?", "You bake at night, in Lyon.", "Where?"]

        for url in (a, b):  # listed by both, with every message, in the order they were said
            listed = httpx.get(f"{url}/v1/conversations").json()["data"]
            assert [(c["id"], c["title"], c["message_count"]) for c in listed] == [(cid, "Bakery", 6)]
            got = httpx.get(f"{url}/v1/conversations/{cid}").json()
            assert [m["content"] for m in got["messages"]] == [
                "Remember: we bake at night in Lyon.",
                "Noted: you bake at night.",
                "When do we bake?",
                "You bake at night, in Lyon.",
                "Where?",
                "Lyon.",
            ]
        assert httpx.delete(f"{a}/v1/conversations/{cid}").status_code == 204
        assert httpx.get(f"{b}/v1/conversations/{cid}").status_code == 404  # gone for B too


def test_a_conversation_held_over_http_continues_in_the_repl_of_another_instance(
    openai_server: Any, tmp_path: Path, postgres_url: str
) -> None:
    """The chat command opens the store through the same factory: with database_url it resumes a
    conversation a server wrote, though its own data folder has never seen it."""
    from tests.support.cli import run_cli

    with _serving(tmp_path / "server", postgres_url, ScriptedChatCompletion(["Noted: we open at six."])) as url:
        cid = httpx.post(f"{url}/v1/conversations", json={"title": "Hours"}).json()["id"]
        _say(url, cid, "We open at six")
    env = {
        "KERNEL_APP_SERVICE": "openai",
        "OPENAI_BASE_URL": openai_server.base_url,
        "KERNEL_APP_MEMORY_DIR": str(tmp_path / "laptop"),  # empty: no SQLite store holds the conversation
        "KERNEL_APP_DATABASE_URL": postgres_url,
    }
    listed = run_cli("chat", "--list", **env)
    assert listed.returncode == 0, listed.stderr
    assert cid in listed.stdout and "2 msgs" in listed.stdout
    openai_server.queue("You open at six.")
    resumed = run_cli("chat", "--resume", cid, input="When do we open?\n", **env)
    assert resumed.returncode == 0, resumed.stderr
    assert "You open at six." in resumed.stdout
    sent = [m["content"] for m in openai_server.requests[-1].body["messages"][1:]]
    assert sent == ["We open at six", "Noted: we open at six.", "When do we open?"]
    assert not (tmp_path / "laptop" / "conversations.sqlite3").exists()
