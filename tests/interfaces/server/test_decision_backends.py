"""The pending-decision store's contract on both backends: the SQLite side store and PostgreSQL.

``open_backend()`` opens, through ``open_decisions``, a store of a small record kind declared here, as
Teams and chat-copilot declare theirs; each call is another store object (another connection or
pool), as a second server would be. The PostgreSQL one lives in a fresh database on the embedded
server of tests/support/postgres.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kernel_app.interfaces.server.chat_copilot.plan_store import CopilotPlans, WaitingPlan
from kernel_app.interfaces.server.pg_decisions import PgDecisionStore, open_decisions
from kernel_app.interfaces.server.side_store import DecisionStore
from kernel_app.interfaces.server.teams.call_store import CallRecord, CallStore
from tests.support import postgres as pg_support

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url


@dataclass
class Ask:
    id: str
    goal: str
    steps: list[str]
    arguments: dict[str, Any]
    group: bool
    note: str | None = None
    state: str = "waiting"
    outcome: str = ""
    card_id: str | None = None
    created_at: float = field(default_factory=time.time)


class Asks(DecisionStore[Ask]):
    DB_NAME = "asks.sqlite3"
    TABLE = "asks"
    RECORD = Ask
    INTERRUPTED = "{goal} may not have finished"
    KEEP_DECIDED = 3


Opener = Callable[..., Any]


@pytest.fixture(params=["local", pytest.param("postgresql", marks=pytest.mark.e2e)])  # a real server: e2e
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    opened: list[Any] = []

    def factory(spec: type[DecisionStore[Any]] = Asks, folder: str = "data") -> Any:
        store = open_decisions(spec, tmp_path / folder / "conversations.sqlite3", url)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def _ask(record_id: str, **changes: Any) -> Ask:
    return Ask(
        record_id, f"goal {record_id}", ["Math.add", "Text.upper"], {"a": 1, "nested": {"b": [2]}}, True, **changes
    )


def test_the_factory_picks_the_backend(open_backend: Opener, request: pytest.FixtureRequest) -> None:
    store = open_backend()
    postgres = request.node.callspec.params["open_backend"] == "postgresql"
    assert isinstance(store, PgDecisionStore) == postgres and isinstance(store, Asks) != postgres


def test_a_record_round_trips_with_its_types(open_backend: Opener) -> None:
    store = open_backend()
    record = _ask("r1")
    store.add(record)
    assert open_backend().get("r1") == record  # another store object: it was committed
    assert store.get("missing") is None


def test_decide_once_then_finish_once(open_backend: Opener) -> None:
    store = open_backend()
    store.add(_ask("r1"))
    assert store.decide("r1", "approved", "Approved by Ann", card_id="card-1")
    assert not store.decide("r1", "rejected", "Rejected by Bob", card_id="card-2")  # too late: nothing changes
    got = store.get("r1")
    assert (got.state, got.outcome, got.card_id) == ("approved", "Approved by Ann", "card-1")
    store.finish("r1", "done", "ran")
    store.finish("r1", "failed", "a later failure does not undo done")
    assert (store.get("r1").state, store.get("r1").outcome) == ("done", "ran")
    store.add(_ask("r2"))
    store.finish("r2", "done", "not approved: finish does nothing")
    assert store.get("r2").state == "waiting"
    assert store.decide("r2", "rejected", "no")  # a decision without a card id keeps none
    assert store.get("r2").card_id is None


def test_finish_writes_the_fields_running_settled(open_backend: Opener) -> None:
    store = open_backend()
    store.add(_ask("r1"))
    assert store.decide("r1", "approved", "running")
    store.finish("r1", "done", "ran", {"note": "1100", "arguments": {"a": 2}})
    got = open_backend().get("r1")  # as another server reads it
    assert (got.state, got.note, got.arguments, got.goal) == ("done", "1100", {"a": 2}, "goal r1")
    store.finish("r1", "failed", "late", {"note": "not written: it is done already"})
    assert store.get("r1").note == "1100"
    with pytest.raises(ValueError, match="finish cannot change"):
        store.finish("r1", "done", "ran", {"nope": 1})


def test_a_running_record_is_updated_until_it_ends(open_backend: Opener) -> None:
    store = open_backend()
    store.add(_ask("r1"))
    assert not store.update_running("r1", {"note": "not running yet"})
    assert store.decide("r1", "approved", "running")
    assert store.update_running("r1", {"note": "step 1 done", "arguments": {"done": [1]}})
    got = open_backend().get("r1")  # as another server reads it
    assert (got.state, got.note, got.arguments) == ("approved", "step 1 done", {"done": [1]})
    store.finish("r1", "done", "ran", {"note": "all done"})
    assert not store.update_running("r1", {"note": "too late"})
    assert store.get("r1").note == "all done"
    with pytest.raises(ValueError, match="cannot change"):
        store.update_running("r1", {"state": "waiting"})


def test_records_are_found_by_a_text_field_oldest_first(open_backend: Opener) -> None:
    store = open_backend()
    store.add(_ask("later", note="conversation 1", created_at=time.time()))
    store.add(_ask("earlier", note="conversation 1", created_at=time.time() - 10))
    store.add(_ask("elsewhere", note="conversation 2"))
    store.add(_ask("none"))
    assert store.decide("later", "approved", "running")  # found whatever its state
    assert [r.id for r in open_backend().having("note", "conversation 1")] == ["earlier", "later"]
    assert store.having("note", "conversation 3") == []
    with pytest.raises(ValueError, match="cannot look records up by steps"):
        store.having("steps", "Math.add")  # a list, not text
    with pytest.raises(ValueError, match="cannot look records up by nope"):
        store.having("nope", "x")


def test_a_late_record_expires_and_nothing_runs(open_backend: Opener) -> None:
    store = open_backend()
    store.add(_ask("old", created_at=time.time() - 100))
    store.add(_ask("new"))
    assert store.expire_if_late(store.get("old"), 10, "too late")
    assert not store.expire_if_late(store.get("new"), 10, "too late")
    assert (store.get("old").state, store.get("old").outcome) == ("expired", "too late")
    assert not store.decide("old", "approved", "a click after the expiry")


def test_decided_records_are_pruned_to_the_newest(open_backend: Opener) -> None:
    store = open_backend()
    for number in range(5):
        store.add(_ask(f"d{number}"))
        store.decide(f"d{number}", "rejected", "no")
        time.sleep(0.002)  # distinct updated_at: the newest decided are kept
    store.add(_ask("waiting"))
    kept = [f"d{n}" for n in range(5) if store.get(f"d{n}") is not None]
    assert kept == ["d2", "d3", "d4"] and store.get("waiting") is not None


def test_a_restart_marks_what_was_running_as_interrupted(open_backend: Opener) -> None:
    store = open_backend()
    store.add(_ask("running"))
    store.decide("running", "approved", "Approved")
    store.close()
    restarted = open_backend()  # the same data folder: the same server, started again
    assert restarted.interrupt_running() == 1
    got = restarted.get("running")
    assert (got.state, got.outcome) == ("interrupted", "goal running may not have finished")
    assert restarted.interrupt_running() == 0


def test_two_stores_racing_on_one_approval_decide_it_once(open_backend: Opener) -> None:
    stores = [open_backend(), open_backend()]  # locally: two servers on one data folder
    stores[0].add(_ask("contested"))
    clickers = 8
    start = threading.Barrier(clickers)
    won: list[str] = []

    def click(number: int) -> None:
        start.wait()
        if stores[number % 2].decide("contested", "approved", f"Approved by {number}"):
            won.append(f"Approved by {number}")  # the caller that wins runs the plan

    threads = [threading.Thread(target=click, args=(n,)) for n in range(clickers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(won) == 1
    assert all(store.get("contested").outcome == won[0] for store in stores)


def _call(record_id: str, **changes: Any) -> CallRecord:
    return CallRecord(
        record_id, "conv-1", "c1", "aad-user-1", "Ada", False, "memory.save", {"input": "x"},
        "call_1", "write", "Remember x", {"type": "message"}, **changes,
    )  # fmt: skip


def test_a_waiting_turn_and_clicks_on_two_servers_run_a_call_once(open_backend: Opener) -> None:
    """The hand-off's store side: the waiting turn stamps its row until a click (on any server) decides
    it; then the turn and the clicked server race to take it, and one of them runs it."""
    owner, clicked = open_backend(CallStore), open_backend(CallStore)  # two servers
    owner.add(_call("approval_1", waiter="server-a", beat=1.0))
    assert owner.update_waiting("approval_1", {"beat": 2.0})
    assert clicked.get("approval_1").beat == 2.0  # the other server sees the turn still waits
    assert not clicked.claim("approval_1", "server-b")  # nothing to take before it is approved
    assert clicked.decide("approval_1", "approved", "Approved by Ada")
    assert not owner.update_waiting("approval_1", {"beat": 3.0})  # decided: the turn's next look stops it
    takers = 8
    start = threading.Barrier(takers)
    took: list[str] = []

    def take(number: int) -> None:
        start.wait()
        runner = f"server-{number}"
        if (owner, clicked)[number % 2].claim("approval_1", runner):
            took.append(runner)  # the one that takes it runs the call

    threads = [threading.Thread(target=take, args=(n,)) for n in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(took) == 1 and clicked.get("approval_1").taken_by == took[0]
    assert owner.get("approval_1").beat == 2.0
    with pytest.raises(TypeError, match="claim needs a taken_by field"):
        open_backend().claim("r1", "server-a")  # a kind without the hand-off has no claim
    with pytest.raises(ValueError, match="cannot change state"):
        owner.update_waiting("approval_1", {"state": "approved"})


def test_a_side_file_from_before_a_field_was_added_gets_its_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "teams.sqlite3"
    old = CallStore(path)
    old.add(_call("approval_old"))
    old.close()
    with sqlite3.connect(path) as conn:  # as the file was before the hand-off's fields
        for column in ("waiter", "beat", "taken_by"):
            conn.execute(f"ALTER TABLE calls DROP COLUMN {column}")
    reopened = CallStore(path)
    got = reopened.get("approval_old")
    assert got is not None and (got.waiter, got.beat, got.taken_by, got.said) == ("", 0.0, "", "Remember x")
    reopened.add(_call("approval_new", waiter="server-a", beat=5.0))
    assert reopened.get("approval_new").waiter == "server-a"


def test_chat_copilots_plans_keep_their_records(open_backend: Opener) -> None:
    store = open_backend(CopilotPlans)
    plan = WaitingPlan(
        "m1", "chat", "ann", "Ann", "a SWOT", "/plan a SWOT", {"steps": [{"function": "A.b", "args": {}}]}, True
    )
    store.add(plan)
    assert store.get("m1") == plan
    assert store.decide("m1", "approved", "ok", card_id="ignored: a copilot plan has no card")
    assert store.get("m1").state == "approved"


def test_only_the_winning_decision_writes_its_edits(open_backend: Opener) -> None:
    # Two servers decide one chat-copilot plan with different edits: the loser's must not replace the
    # winner's, or the approved plan would run with edits its approver never posted.
    first, second = open_backend(CopilotPlans), open_backend(CopilotPlans)
    first.add(WaitingPlan("m2", "chat", "ann", "Ann", "a SWOT", "/plan a SWOT", {"steps": []}, True))
    assert first.decide("m2", "approved", "approved by Ann", changes={"edits": ["1 input=bakery"]})
    assert not second.decide("m2", "approved", "approved by Bob", changes={"edits": ["1 input=florist"]})
    decided = second.get("m2")
    assert (decided.state, decided.outcome, decided.edits) == ("approved", "approved by Ann", ["1 input=bakery"])
    with pytest.raises(ValueError, match="cannot change outcome"):
        first.decide("m2", "rejected", "x", changes={"outcome": "y"})


# region PostgreSQL only


def test_postgres_leaves_another_servers_running_records_alone(postgres_url: str, tmp_path: Path) -> None:
    a = open_decisions(Asks, tmp_path / "a" / "conversations.sqlite3", postgres_url)
    b = open_decisions(Asks, tmp_path / "b" / "conversations.sqlite3", postgres_url)
    try:
        a.add(_ask("on-a"))
        assert a.decide("on-a", "approved", "Approved")
        assert b.interrupt_running() == 0  # b starting does not report a's running plan as interrupted
        assert b.get("on-a").state == "approved"
        assert a.interrupt_running() == 1
    finally:
        a.close()
        b.close()


def test_postgres_kinds_share_the_table_but_not_their_ids(postgres_url: str, tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    asks, plans = open_decisions(Asks, path, postgres_url), open_decisions(CopilotPlans, path, postgres_url)
    try:
        asks.add(_ask("same-id"))
        assert plans.get("same-id") is None
    finally:
        asks.close()
        plans.close()


# endregion
