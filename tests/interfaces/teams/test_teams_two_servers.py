"""Teams' call cards on two servers sharing one PostgreSQL (issue 19): the turn waiting for a card's
click lives on the server that asked; a click landing on the other server is recorded there and run
once, by the waiting turn on its own server, however the clicks land and race.

Real uvicorn servers, a fake connector as ``serviceUrl``, the scripted model; the waiting turn looks at
its row every ``TICK`` seconds (shortened here so the tests wait less), and at once when the click's
NOTIFY wakes it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server import create_app
from kernel_app.interfaces.server.pg_decisions import DecisionWakes
from kernel_app.interfaces.server.teams import teams_config
from kernel_app.interfaces.server.teams.calls import CallCards
from memories.embedders import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import running
from tests.support.teams import FakeConnector, activity, card_click, fake_connector, post
from tests.support.tool_scripted import ToolScripted, tools

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

pytestmark = pytest.mark.e2e  # two uvicorn servers on one PostgreSQL

SAVE = ("memory-save", {"collection": "notes", "input": "The Lyon bakery opens at 7."})


@pytest.fixture(autouse=True)
def quick_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CallCards, "TICK", 0.2)
    monkeypatch.setattr(CallCards, "STALE", 1.5)


@contextmanager
def _teams_server(folder: Path, database_url: str, service: ToolScripted) -> Iterator[tuple[str, Any]]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    app: Any = create_app(
        settings, chat_service=service, embedder=HashingEmbedder(64), teams=teams_config({}, anonymous=True)
    )
    try:
        with running(app) as url:
            yield url, app
    finally:
        app.state.kernel_app.store.close()


def _ask(url: str, service: ToolScripted, connector: FakeConnector) -> tuple[str, str]:
    """A message whose answer calls memory.save: its card's approval id and the card message's id."""
    service.queue(tools(SAVE), "Saved: it opens at 7.")
    assert post(url, activity(connector, "Remember when the bakery opens.", channel="test")).status_code == 202
    (message,) = [s for s in connector.take() if s.card is not None]
    assert message.card is not None
    approval_id = {a["verb"]: a for a in message.card["actions"]}["approveCall"]["data"]["approvalId"]
    return approval_id, message.id


def _click(url: str, connector: FakeConnector, approval_id: str, card_id: str) -> httpx.Response:
    body = card_click(connector, "approveCall", "", card_id)
    body["value"]["action"]["data"] = {"approvalId": approval_id}
    response = post(url, body)
    assert response.status_code == 200, response.text
    return response


def _ran(service: ToolScripted) -> int:
    """How many of the model's requests carried memory.save's result (the turn went on after it ran)."""
    refused = ("The user did not approve", "error")
    return len([r for r in service.tool_results if r and not r[0].startswith(refused)])


def _notes(url: str) -> int:
    """How many notes the shared memory holds: each run of memory.save added one."""
    listed = httpx.get(f"{url}/v1/memory", timeout=30).json()["data"]
    return sum(c["count"] for c in listed if c["name"] == "notes")


def _settle(connector: FakeConnector, service_a: ToolScripted, service_b: ToolScripted) -> list[str]:
    """Wait for the answer, then past STALE (when the other server would run the call if it thought no
    turn waited): what was said, once things are quiet."""
    connector.wait_for(lambda s: s.type == "message" and s.text == "Saved: it opens at 7.")
    time.sleep(CallCards.STALE + 1.0)
    return [s.text for s in connector.take() if s.type == "message"]


def test_a_click_on_the_other_server_runs_the_call_once_in_the_waiting_turn(tmp_path: Path, postgres_url: str) -> None:
    service_a, service_b = ToolScripted(), ToolScripted(default="never asked")
    with (
        fake_connector() as connector,
        _teams_server(tmp_path / "a", postgres_url, service_a) as (a, _),
        _teams_server(tmp_path / "b", postgres_url, service_b) as (b, _),
    ):
        approval_id, card_id = _ask(a, service_a, connector)
        clicked = _click(b, connector, approval_id, card_id).json()["value"]
        assert "Approved by Ada: memory.save runs." in str(clicked["body"])  # the waiting turn runs it
        said = _settle(connector, service_a, service_b)
        assert said == ["Saved: it opens at 7."]  # A's turn went on with the call's result
        assert _ran(service_a) == 1 and service_b.requests == []  # run once, on A; B's model unasked
        assert _notes(a) == _notes(b) == 1
        again = _click(b, connector, approval_id, card_id).json()["value"]  # a second click: the outcome
        assert "memory.save ran." in str(again["body"])
        time.sleep(0.5)
        assert connector.take() == [] and _ran(service_a) == 1 and _notes(b) == 1


@pytest.mark.parametrize("lost", [False, True], ids=["woken", "wake-up-lost"])
def test_a_click_on_the_other_server_wakes_the_waiting_turn_well_under_its_look(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, lost: bool
) -> None:
    # the LISTEN/NOTIFY wake-up: A's turn goes on at once, not at its next look at the row; with every
    # notification lost, the look still finds the click
    monkeypatch.setattr(CallCards, "TICK", 2.0)  # far over the wake-up: a look could not pass for one
    monkeypatch.setattr(CallCards, "STALE", 10.0)  # B leaves the call to A's waiting turn
    if lost:
        monkeypatch.setattr(DecisionWakes, "wake", lambda _self, _kind, _record_id: None)
    service_a = ToolScripted()
    with (
        fake_connector() as connector,
        _teams_server(tmp_path / "a", postgres_url, service_a) as (a, _),
        _teams_server(tmp_path / "b", postgres_url, ToolScripted(default="never asked")) as (b, _),
    ):
        approval_id, card_id = _ask(a, service_a, connector)
        clicked = time.perf_counter()
        _click(b, connector, approval_id, card_id)
        connector.wait_for(lambda s: s.type == "message" and s.text == "Saved: it opens at 7.")
        waited = time.perf_counter() - clicked
    assert _ran(service_a) == 1
    if lost:
        assert waited >= 0.5, waited  # found by the look, not woken
    else:
        assert waited < 1.0, waited  # half the look


def test_two_clicks_racing_on_two_servers_run_the_call_once(tmp_path: Path, postgres_url: str) -> None:
    service_a, service_b = ToolScripted(), ToolScripted(default="never asked")
    with (
        fake_connector() as connector,
        _teams_server(tmp_path / "a", postgres_url, service_a) as (a, _),
        _teams_server(tmp_path / "b", postgres_url, service_b) as (b, _),
    ):
        approval_id, card_id = _ask(a, service_a, connector)
        go = threading.Barrier(2)
        cards: list[str] = []

        def click(url: str) -> None:
            go.wait()
            cards.append(str(_click(url, connector, approval_id, card_id).json()["value"]["body"]))

        threads = [threading.Thread(target=click, args=(url,)) for url in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(cards) == 2 and all("Approved by Ada: memory.save" in card for card in cards)
        assert _settle(connector, service_a, service_b) == ["Saved: it opens at 7."]
        assert _ran(service_a) == 1 and service_b.requests == [] and _notes(a) == 1


def test_with_no_turn_waiting_anywhere_the_clicked_server_runs_the_call(tmp_path: Path, postgres_url: str) -> None:
    """A's turn is gone (A stopped); B, on the same database but its own data folder, runs the call."""
    service_a, service_b = ToolScripted(), ToolScripted(default="never asked")
    with fake_connector() as connector:
        with _teams_server(tmp_path / "a", postgres_url, service_a) as (a, _):
            approval_id, card_id = _ask(a, service_a, connector)
        with _teams_server(tmp_path / "b", postgres_url, service_b) as (b, _):
            clicked = _click(b, connector, approval_id, card_id).json()["value"]
            assert "runs now; its result follows." in str(clicked["body"])
            sent = connector.wait_for(lambda s: s.type == "message" and "memory.save" in s.text)
            (answer,) = [s.text for s in sent if s.type == "message"]
            assert "I ran memory.save as you approved. Its result:" in answer
            assert service_b.requests == [] and _ran(service_a) == 0 and _notes(b) == 1
