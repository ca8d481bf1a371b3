"""What the Teams and chat-copilot adapters share: their side stores' SQLite opening and records waiting
for a decision, the REPL commands they offer (and /help), which calls run unasked (the OpenAI-compatible
endpoint's too), how a reply reads, and where uploads are kept. The adapters' own tests cover them end
to end; these pin the shared pieces down directly."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kernel_app.commands.dispatch import HELP, Reply
from kernel_app.interfaces.server.chat_surface import (
    MAX_ERROR_CHARS,
    Offered,
    approver,
    command_of,
    reply_text,
    runs_unasked,
    sentence,
    sorry,
    uses_model,
)
from kernel_app.interfaces.server.markdown import help_markdown
from kernel_app.interfaces.server.side_store import DecisionStore, SideStore


class _Notes(SideStore):
    DB_NAME = "notes.sqlite3"
    SCHEMA = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)"


class _Tags(SideStore):
    DB_NAME = "notes.sqlite3"  # a second table in the same file, as Teams' links and plans
    SCHEMA = "CREATE TABLE IF NOT EXISTS tags (note INTEGER NOT NULL, tag TEXT NOT NULL)"


# region side stores


def test_a_side_store_is_wal_and_fully_synchronous_beside_the_conversation_store(tmp_path: Path) -> None:
    store_path = tmp_path / "not-yet" / "conversations.sqlite3"
    notes = _Notes.beside(store_path)
    tags = _Tags.beside(store_path)
    try:
        assert notes.path == tags.path == str(tmp_path / "not-yet" / "notes.sqlite3")  # the folder was made
        assert notes._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert notes._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        notes._conn.execute("INSERT INTO notes (text) VALUES ('kept')")
    finally:
        notes.close()
        tags.close()
    with sqlite3.connect(tmp_path / "not-yet" / "notes.sqlite3") as reopened:
        tables = {row[0] for row in reopened.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"notes", "tags"}
        assert reopened.execute("SELECT text FROM notes").fetchall() == [("kept",)]


def test_a_side_store_beside_an_in_memory_store_is_in_memory(tmp_path: Path) -> None:
    notes = _Notes.beside(":memory:")
    try:
        assert notes.path == ":memory:"
        notes._conn.execute("INSERT INTO notes (text) VALUES ('x')")
        assert notes._conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 1
    finally:
        notes.close()
    assert list(tmp_path.iterdir()) == []


def test_the_adapters_stores_are_side_stores_with_their_own_files() -> None:
    from kernel_app.interfaces.server.chat_copilot.records import CopilotRecords
    from kernel_app.interfaces.server.teams.links import TeamsLinks
    from kernel_app.interfaces.server.teams.plan_store import PlanStore

    assert TeamsLinks.DB_NAME == PlanStore.DB_NAME == "teams.sqlite3"
    assert CopilotRecords.DB_NAME == "copilot.sqlite3"
    links = TeamsLinks.beside(":memory:")
    links.set("conv-1", "c1")
    links.set("conv-1", "c2")  # /reset points it elsewhere
    assert links.get("conv-1") == "c2" and links.get("conv-2") is None
    links.close()


# endregion

# region commands and /help

TEAMS = Offered(frozenset({"/run", "/plan", "/help"}), "{command} is not in Teams.", "no --vars in Teams.")


def test_help_is_a_markdown_list_of_the_offered_commands() -> None:
    shown = TEAMS.help(HELP)
    paragraphs = shown.split("\n\n")
    assert paragraphs[0] == HELP.intro
    items = paragraphs[1].splitlines()
    assert [item.split("**")[1] for item in items] == ["/run", "/plan", "/help"]
    assert items[1].endswith(": plan the goal with the plugins, show the numbered plan, ask, then run it")
    assert "answer from saved memory" not in shown  # /ask is not offered
    assert "[--vars FILE]" not in shown and "(or Ctrl-D)" not in shown  # the terminal's own notes
    assert paragraphs[2].startswith("Results flow") and "\n" not in paragraphs[2]  # prose stays, one paragraph
    assert shown == shown.rstrip()


def test_listings_and_errors_read_as_written_in_markdown() -> None:
    from kernel_app.commands.listing import Function, FunctionListing, PluginFunctions, Result, ResultsListing

    functions = FunctionListing((PluginFunctions("My_Plugin", (Function("My_Plugin.do_it", "does *it*"),)),))
    shown = reply_text(Reply(functions.text(), "help", listing=functions))
    assert shown.split("\n\n")[1:] == ["**My_Plugin**", "- `My_Plugin.do_it`: does `*it*`"]
    assert reply_text(Reply("", "help", listing=FunctionListing(()))) == "No functions are loaded."
    results = ResultsListing((Result("$last", "**Strengths**: a loyal_customer base"), Result("$sum", "5")))
    assert reply_text(Reply(results.text(), "help", listing=results)).splitlines() == [
        "- `$last`: `**Strengths**`: a `loyal_customer` base",
        "- `$sum`: 5",
    ]
    # An error's identifiers become code, so max_tokens does not turn half italic; its code stays code.
    assert sorry("unknown setting max_tokens_x: use `/set max_tokens N`") == (
        "Sorry, that did not work: unknown setting `max_tokens_x`: use `/set max_tokens N`"
    )
    assert sorry("usage: /run Plugin.Function [name=value ...] [text]") == (
        "Sorry, that did not work: usage: /run Plugin.Function [name=value ...] [text]"
    )


def test_a_surface_refuses_what_it_does_not_offer_in_its_own_words() -> None:
    assert TEAMS.refusal("/Export notes.md") == "/export is not in Teams."
    assert TEAMS.refusal("/run Math.add --vars /etc/passwd") == "no --vars in Teams."
    assert TEAMS.refusal("/run Math.add a=1 b=2") is None
    assert TEAMS.refusal("what is --vars?") is None  # free text is the model's
    assert command_of("  /PLAN a goal") == "/plan" and command_of("hello /run") == ""
    assert TEAMS.help(HELP) == help_markdown(HELP.offered(TEAMS.commands))


def test_teams_and_copilot_offer_what_their_comments_say() -> None:
    from kernel_app.interfaces.server.chat_copilot.bot import OFFERED as COPILOT
    from kernel_app.interfaces.server.teams.agent import OFFERED as IN_TEAMS

    for name in ("/export", "/history", "/resume", "/set", "/save", "/exit"):
        assert IN_TEAMS.refusal(name) and COPILOT.refusal(name)
    assert IN_TEAMS.refusal("/reset") is None and COPILOT.refusal("/reset")  # a new chat is the web app's button
    assert "**/new**" in IN_TEAMS.help(HELP) and "/new" not in COPILOT.help(HELP)


def test_only_messages_that_call_the_model_need_its_queue() -> None:
    for text in ("What is new?", "/run Writer.Translate hi", "/PLAN a goal", "/ask notes why?", "/save notes x"):
        assert uses_model(text), text
    for text in ("/help", "/functions", "/results", "/reset", "/new", "/export x.md", "/nonsense"):
        assert not uses_model(text), text


# endregion

# region approvals


def test_both_surfaces_run_prompt_functions_unasked_only_with_the_servers_flag() -> None:
    from kernel_app.conversation.events import ApprovalNeeded

    asked: list[str] = []

    async def ask(request: ApprovalNeeded) -> bool:
        asked.append(request.function)
        return False

    prompt = ApprovalNeeded("approval_1", "call_1", "Writer.Translate", {}, "model")
    write = ApprovalNeeded("approval_2", "call_2", "memory.save", {}, "write")
    flagged, plain = SimpleNamespace(approve_model_functions=True), SimpleNamespace(approve_model_functions=False)
    assert runs_unasked(flagged, "model") and not runs_unasked(flagged, "write") and not runs_unasked(plain, "model")
    assert asyncio.run(approver(flagged, ask)(prompt)) is True and asked == []
    assert asyncio.run(approver(flagged, ask)(write)) is False and asked == ["memory.save"]
    assert asyncio.run(approver(plain, ask)(prompt)) is False and asked == ["memory.save", "Writer.Translate"]


def test_the_openai_endpoint_follows_the_same_rule_and_refuses_what_the_others_ask() -> None:
    from kernel_app.conversation.engine import Refusal
    from kernel_app.conversation.events import ApprovalNeeded
    from kernel_app.interfaces.server.openai_compat import refusal

    prompt = ApprovalNeeded("approval_1", "call_1", "Writer.Translate", {}, "model")
    write = ApprovalNeeded("approval_2", "call_2", "memory.save", {}, "write")
    flagged, plain = SimpleNamespace(approve_model_functions=True), SimpleNamespace(approve_model_functions=False)
    assert asyncio.run(approver(flagged, refusal)(prompt)) is True
    refused = asyncio.run(approver(plain, refusal)(prompt))
    assert isinstance(refused, Refusal) and "when started with --approve-model-functions" in refused.reason
    for state in (flagged, plain):  # a function with an effect: no one can be asked over that API
        refused = asyncio.run(approver(state, refusal)(write))
        assert isinstance(refused, Refusal) and "no one can approve that" in refused.reason


# endregion

# region replies


def test_an_error_reply_is_one_short_friendly_sentence() -> None:
    text = reply_text(Reply("upstream exploded\nTraceback (most recent call last): ...", "error"))
    assert text == "Sorry, that did not work: upstream exploded"
    long = reply_text(Reply("x" * 1000, "error"))
    assert len(long) == len("Sorry, that did not work: ") + MAX_ERROR_CHARS and long.endswith("…")
    assert sorry("   ") == "Sorry, that did not work: that did not work"


def test_replies_read_the_same_in_both_adapters() -> None:
    assert reply_text(Reply("", "answer")) == "(no answer)"
    assert (
        reply_text(Reply("half a poem", "answer", cut=True))
        == "half a poem\n(cut: the answer reached its length limit)"
    )
    assert reply_text(Reply("Not run.", "plan")) == "Plan cancelled: nothing ran."
    assert reply_text(Reply("", "exit")).startswith("There is nothing to leave here")
    assert reply_text(Reply("42", "result")) == "42"
    assert sentence(" running Math.add. ") == "Running Math.add…"


# endregion

# region uploads


def test_uploads_are_kept_under_safe_names_and_a_wrong_kind_is_a_400(tmp_path: Path) -> None:
    from fastapi import UploadFile

    from kernel_app.interfaces.server.errors import ApiError
    from kernel_app.interfaces.server.uploads import keep_uploads, safe_name

    store = SimpleNamespace(path=tmp_path / "memory")
    files = [
        UploadFile(io.BytesIO(b"# Notes\nrye"), filename="../../evil notes.md"),
        UploadFile(io.BytesIO(b"plain"), filename="a.txt"),
    ]
    kept = asyncio.run(keep_uploads(store, "copilot-../x", files))
    folder = tmp_path / "memory" / "uploads" / safe_name("copilot-../x")
    assert kept == [(folder / "evil notes.md", 11), (folder / "a.txt", 5)]
    assert folder.parent == tmp_path / "memory" / "uploads"  # the collection cannot climb out
    assert (folder / "evil notes.md").read_bytes() == b"# Notes\nrye"
    with pytest.raises(ApiError) as refused:
        asyncio.run(keep_uploads(store, "c", [UploadFile(io.BytesIO(b"MZ"), filename="tool.exe")]))
    assert refused.value.status == 400 and str(refused.value) == "tool.exe: upload .txt, .md or .pdf files"


# endregion


# region decision stores


@dataclass
class _Ask:
    id: str
    owner: str
    group: bool
    steps: list[dict[str, Any]]
    note: str | None = None
    state: str = "waiting"
    outcome: str = ""
    created_at: float = field(default_factory=time.time)


class _Asks(DecisionStore[_Ask]):
    DB_NAME = "asks.sqlite3"
    TABLE = "asks"
    RECORD = _Ask
    INTERRUPTED = "{owner}'s ask may not have finished"


def test_a_decision_store_keeps_its_records_fields_decides_once_and_finishes_once(tmp_path: Path) -> None:
    assert "is_group INTEGER NOT NULL" in _Asks.SCHEMA and "note TEXT," in _Asks.SCHEMA  # None allowed
    store = _Asks(tmp_path / "asks.sqlite3")
    steps = [{"function": "Math.add", "args": {"a": 1, "b": "ü"}}]
    store.add(_Ask("a", "ada", True, steps))
    store.add(_Ask("b", "bob", False, [], created_at=time.time() - 100))
    got = store.get("a")  # JSON and bool columns come back as they went in
    assert got is not None and (got.owner, got.group, got.steps, got.note) == ("ada", True, steps, None)
    assert store.decide("a", "approved", "running") and not store.decide("a", "rejected", "no")
    store.finish("a", "done", "ran")
    store.finish("a", "failed", "the message after it failed")  # done stays done
    assert (store.get("a").state, store.get("a").outcome) == ("done", "ran")  # type: ignore[union-attr]
    late = store.get("b")
    assert late is not None and store.expire_if_late(late, 10, "too late") and not store.decide("b", "approved", "")
    store.add(_Ask("c", "cy", False, []))
    store.decide("c", "approved", "running")
    assert _Asks(tmp_path / "asks.sqlite3").interrupt_running() == 1
    assert store.get("c").outcome == "cy's ask may not have finished"  # type: ignore[union-attr]
    assert store.get("missing") is None


# endregion
