"""An approval waiting in a streamed REST turn, answered on another server on the same PostgreSQL
(issue 19): the turn streams on A, the answer lands on B, A's turn runs the call once and finishes; a
second answer, on either server, gets a 409 with what happened. Real uvicorn servers, the scripted model."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation.events import ApprovalNeeded
from kernel_app.interfaces.server import create_app
from kernel_app.interfaces.server.api.approvals import (
    ApprovalDecided,
    RestApprovalRecord,
    RestApprovalStore,
    SharedApprovals,
)
from kernel_app.interfaces.server.pg_decisions import DecisionWakes
from memories.embedders import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import running
from tests.support.tool_scripted import ToolScripted, tools

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

SAVE = ("memory-save", {"input": "We bake at night", "collection": "notes", "id": "n1"})


@contextmanager
def _serving(folder: Path, database_url: str, service: ToolScripted) -> Iterator[str]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    app: Any = create_app(settings, chat_service=service, embedder=HashingEmbedder(64))
    try:
        with running(app) as url:
            yield url
    finally:
        app.state.kernel_app.store.close()


def _stream(
    url: str, cid: str, on_approval: Callable[[str], None], times: list[float] | None = None
) -> list[dict[str, Any]]:
    """Say something on ``url`` as a stream; ``on_approval(approval_id)`` when the turn asks; ``times``
    gets when each event arrived (``time.perf_counter``)."""
    seen: list[dict[str, Any]] = []
    with httpx.stream(
        "POST", f"{url}/v1/conversations/{cid}/messages", json={"content": "Remember we bake at night"}, timeout=60
    ) as response:
        assert response.status_code == 200
        buffer = ""
        for chunk in response.iter_text():
            buffer += chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                data = json.loads(block.split("data: ", 1)[1])
                seen.append(data)
                if times is not None:
                    times.append(time.perf_counter())
                if data["type"] == "approval_needed":
                    on_approval(data["approval_id"])
    return seen


def _answer(url: str, cid: str, approval_id: str, approved: bool = True) -> httpx.Response:
    return httpx.post(f"{url}/v1/conversations/{cid}/approvals/{approval_id}", json={"approved": approved}, timeout=30)


def _notes(url: str) -> int:
    listed = httpx.get(f"{url}/v1/memory", timeout=30).json()["data"]
    return sum(c["count"] for c in listed if c["name"] == "notes")


@pytest.mark.e2e  # two uvicorn servers on one PostgreSQL
def test_approved_on_the_other_server_the_waiting_turn_runs_the_call_once(tmp_path: Path, postgres_url: str) -> None:
    service_a, service_b = ToolScripted(), ToolScripted(default="never asked")
    service_a.queue(tools(SAVE), "Saved it.")
    with _serving(tmp_path / "a", postgres_url, service_a) as a, _serving(tmp_path / "b", postgres_url, service_b) as b:
        cid = httpx.post(f"{a}/v1/conversations", json={}).json()["id"]
        answers: list[httpx.Response] = []
        seen = _stream(a, cid, lambda approval_id: answers.append(_answer(b, cid, approval_id)))
        (answered,) = answers
        assert answered.status_code == 200, answered.text
        approval_id = seen[1]["approval_id"]
        assert answered.json() == {"approval_id": approval_id, "approved": True}  # the API's answer, as before
        finished = next(e for e in seen if e["type"] == "function_call_finished")
        assert finished["ok"] is True and finished["result"] == "n1"
        assert seen[-1]["type"] == "done" and seen[-1]["text"] == "Saved it."
        assert _notes(a) == _notes(b) == 1 and service_b.requests == []  # ran once, in A's turn
        for url in (a, b):  # a second answer, on either server: what happened
            again = _answer(url, cid, approval_id, approved=False)
            assert again.status_code == 409
            message = again.json()["error"]["message"]
            assert "answered already (done)" in message and "memory.save ran: n1" in message
        assert _notes(a) == 1
        unknown = _answer(b, cid, "approval_nope")
        assert unknown.status_code == 404


@pytest.mark.e2e  # two uvicorn servers on one PostgreSQL
@pytest.mark.parametrize("lost", [False, True], ids=["woken", "wake-up-lost"])
def test_an_answer_on_the_other_server_wakes_the_waiting_turn_well_under_its_poll(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, lost: bool
) -> None:
    # A's turn used to see B's answer at its next look at the row (every TICK); the LISTEN/NOTIFY wake-up
    # makes it at once, and with every notification lost the look still finds it
    monkeypatch.setattr(SharedApprovals, "TICK", 2.0)  # far over the wake-up: a look could not pass for one
    if lost:
        monkeypatch.setattr(DecisionWakes, "wake", lambda _self, _kind, _record_id: None)
    service_a = ToolScripted()
    service_a.queue(tools(SAVE), "Saved it.")
    with (
        _serving(tmp_path / "a", postgres_url, service_a) as a,
        _serving(tmp_path / "b", postgres_url, ToolScripted()) as b,
    ):
        cid = httpx.post(f"{a}/v1/conversations", json={}).json()["id"]
        answered: list[float] = []
        times: list[float] = []

        def answer_on_b(approval_id: str) -> None:
            assert _answer(b, cid, approval_id).status_code == 200
            answered.append(time.perf_counter())

        seen = _stream(a, cid, answer_on_b, times)
    finished = next(n for n, e in enumerate(seen) if e["type"] == "function_call_finished")
    assert seen[finished]["ok"] is True and seen[-1]["text"] == "Saved it."
    waited = times[finished] - answered[0]
    if lost:
        assert waited >= 0.5, waited  # found by the poll, not woken
    else:
        assert waited < 1.0, waited  # half the poll


@pytest.mark.e2e  # two uvicorn servers on one PostgreSQL
def test_two_answers_racing_on_two_servers_count_once(tmp_path: Path, postgres_url: str) -> None:
    service_a, service_b = ToolScripted(), ToolScripted(default="never asked")
    service_a.queue(tools(SAVE), "Saved it.")
    with _serving(tmp_path / "a", postgres_url, service_a) as a, _serving(tmp_path / "b", postgres_url, service_b) as b:
        cid = httpx.post(f"{a}/v1/conversations", json={}).json()["id"]
        codes: list[int] = []

        def race(approval_id: str) -> None:
            go = threading.Barrier(2)

            def answer(url: str) -> None:
                go.wait()
                codes.append(_answer(url, cid, approval_id).status_code)

            threads = [threading.Thread(target=answer, args=(url,)) for url in (a, b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)

        seen = _stream(a, cid, race)
        assert sorted(codes) == [200, 409]
        assert [e["type"] for e in seen].count("function_call_finished") == 1 and seen[-1]["text"] == "Saved it."
        assert _notes(a) == 1 and service_b.requests == []


@pytest.mark.e2e  # two uvicorn servers on one PostgreSQL
def test_rejected_on_the_other_server_nothing_runs(tmp_path: Path, postgres_url: str) -> None:
    service_a, service_b = ToolScripted(), ToolScripted(default="never asked")
    service_a.queue(tools(SAVE), "Not saved, then.")
    with _serving(tmp_path / "a", postgres_url, service_a) as a, _serving(tmp_path / "b", postgres_url, service_b) as b:
        cid = httpx.post(f"{a}/v1/conversations", json={}).json()["id"]
        answers: list[httpx.Response] = []
        seen = _stream(a, cid, lambda approval_id: answers.append(_answer(b, cid, approval_id, approved=False)))
        assert [r.status_code for r in answers] == [200]
        finished = next(e for e in seen if e["type"] == "function_call_finished")
        assert finished["ok"] is False and seen[-1]["text"] == "Not saved, then."
        assert _notes(a) == 0
        again = _answer(a, cid, seen[1]["approval_id"])
        assert again.status_code == 409 and "Rejected: memory.save does not run." in again.json()["error"]["message"]


def _waiting(approvals: SharedApprovals, *, beat: float) -> None:
    approvals.store.add(RestApprovalRecord("ap-1", "c1", "memory.save", "call-1", waiter="other:1", beat=beat))


def test_an_answer_to_a_turn_whose_server_stopped_runs_nothing() -> None:
    approvals = SharedApprovals(RestApprovalStore(":memory:"), "here:1")
    _waiting(approvals, beat=time.time() - SharedApprovals.STALE - 1)  # no turn stamped it lately
    with pytest.raises(ApprovalDecided, match=r"answered already \(expired\).*stopped"):
        asyncio.run(approvals.answer("c1", "ap-1", True))
    assert asyncio.run(approvals.answer("other-conversation", "ap-1", True)) is False  # not this conversation's


def test_a_turn_waiting_past_its_time_is_a_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SharedApprovals, "TICK", 0.01)
    approvals = SharedApprovals(RestApprovalStore(":memory:"), "here:1")
    _waiting(approvals, beat=time.time())
    asked = ApprovalNeeded(approval_id="ap-1", call_id="call-1", function="memory.save")
    assert asyncio.run(approvals.wait(asked, timeout=0.05)) is False
    record = approvals.store.get("ap-1")
    assert record is not None and record.state == "expired" and "did not run" in record.outcome
