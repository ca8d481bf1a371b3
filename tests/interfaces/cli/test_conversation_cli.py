"""`kernel-app chat --list` and `--resume [ID]` over the stored conversations."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_app.conversation import ConversationStore, default_store_path
from tests.support.cli import run_cli

pytestmark = pytest.mark.e2e  # kernel-app in a subprocess, over a loopback server


def test_resume_continues_the_stored_conversation(openai_server, tmp_path: Path) -> None:
    env = {
        "KERNEL_APP_SERVICE": "openai",
        "OPENAI_BASE_URL": openai_server.base_url,
        "KERNEL_APP_MEMORY_DIR": str(tmp_path / "memory"),
    }
    assert "no stored conversations yet" in run_cli("chat", "--list", **env).stdout
    openai_server.queue("Noted: a bakery in Lyon.", "Your bakery is in Lyon.")
    first = run_cli("chat", input="My business is a bakery in Lyon\n", **env)
    assert first.returncode == 0, first.stderr
    listed = run_cli("chat", "--list", **env)
    assert "2 msgs  My business is a bakery in Lyon" in listed.stdout
    with ConversationStore(default_store_path(tmp_path / "memory")) as store:
        conversation_id = store.latest().id
    resumed = run_cli("chat", "--resume", input="Where is my business?\n", **env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing conversation {conversation_id}" in resumed.stdout
    assert "Your bakery is in Lyon." in resumed.stdout
    sent = openai_server.requests[-1].body["messages"]
    assert [m["content"] for m in sent[1:]] == [
        "My business is a bakery in Lyon",
        "Noted: a bakery in Lyon.",
        "Where is my business?",
    ]
    by_id = run_cli("chat", "--resume", conversation_id, "--list", **env)
    assert "4 msgs" in by_id.stdout
    unknown = run_cli("chat", "--resume", "nope", **env)
    assert unknown.returncode == 2 and "no conversation 'nope'" in unknown.stderr


def test_a_conversation_held_over_http_continues_in_the_repl(openai_server, tmp_path: Path) -> None:
    import httpx

    from tests.support.server import make_app, running
    from tests.support.tool_scripted import ToolScripted

    service = ToolScripted(["Noted: the bakery opens at six."])
    with running(make_app(tmp_path, service, mcp=False)) as url:
        cid = httpx.post(f"{url}/v1/conversations", json={"title": "Hours"}).json()["id"]
        httpx.post(f"{url}/v1/conversations/{cid}/messages", json={"content": "We open at six", "stream": False})
    openai_server.queue("You open at six.")
    env = {
        "KERNEL_APP_SERVICE": "openai",
        "OPENAI_BASE_URL": openai_server.base_url,
        "KERNEL_APP_MEMORY_DIR": str(tmp_path / "memory"),  # make_app's store: memory/conversations.sqlite3
    }
    resumed = run_cli("chat", "--resume", cid, input="When do we open?\n", **env)
    assert resumed.returncode == 0, resumed.stderr
    assert "You open at six." in resumed.stdout
    sent = [m["content"] for m in openai_server.requests[-1].body["messages"][1:]]
    assert sent == ["We open at six", "Noted: the bakery opens at six.", "When do we open?"]
