"""The conversation store: what it keeps, and that a kill -9 loses no acknowledged message."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernel_app.conversation import ConversationNotFoundError, ConversationStore, Message, ToolCall
from kernel_app.conversation.store import ConversationStoreError, default_store_path
from tests.support.cli import ROOT, cli_env


def test_conversations_and_messages_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    with ConversationStore(path) as store:
        first = store.create(title="Bakery", service="local", model="SmolLM2")
        second = store.create()
        store.append(second.id, Message("user", "hi"))
        call = ToolCall("call_1", "Math.add", {"a": 2, "b": 3})
        store.append_many(
            first.id,
            [
                Message("user", "2+3?"),
                Message("assistant", "", tool_calls=(call,)),
                Message("tool", "5", name="Math.add", call_id="call_1"),
                Message("assistant", "5", tokens=1),
            ],
        )
    with ConversationStore(path) as store:  # reopened: everything is on disk
        assert [c.id for c in store.list()] == [first.id, second.id]  # most recently updated first
        got = store.get(first.id)
        assert (got.title, got.service, got.model, got.message_count) == ("Bakery", "local", "SmolLM2", 4)
        messages = store.messages(first.id)
        assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
        assert messages[1].tool_calls == (call,) and messages[2].call_id == "call_1"
        assert store.messages(first.id, after=messages[1].seq)[0].content == "5"
        assert store.delete(first.id) and not store.delete(first.id)
        with pytest.raises(ConversationNotFoundError, match="chat --list"):
            store.get(first.id)
        with pytest.raises(ConversationNotFoundError):
            store.append(first.id, Message("user", "lost?"))
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE t (x)")
    with pytest.raises(ConversationStoreError, match="not a Kernel App conversation store"):
        ConversationStore(path)


def test_the_store_sits_beside_the_memory_store(tmp_path: Path) -> None:
    assert default_store_path(tmp_path / "memory") == tmp_path / "memory" / "conversations.sqlite3"


WRITER = textwrap.dedent(
    """
    import sys
    from kernel_app.conversation import ConversationStore, Message
    store = ConversationStore(sys.argv[1])
    store.create(id="c1")
    n = 0
    while True:
        n += 1
        stored = store.append("c1", Message("user", f"message {n} " + "x" * 2000))
        print(stored.seq, flush=True)  # acknowledged: append returned after COMMIT
    """
)


@pytest.mark.e2e
def test_kill_9_mid_write_loses_no_acknowledged_message(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT
    )
    acknowledged: list[int] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) >= 150:
            break
    os.kill(proc.pid, signal.SIGKILL)  # mid-write: the loop never pauses
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with ConversationStore(path) as store:
        seqs = [m.seq for m in store.messages("c1")]
    assert set(acknowledged) <= set(seqs)
    assert seqs == sorted(seqs) and len(seqs) >= len(acknowledged)
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
