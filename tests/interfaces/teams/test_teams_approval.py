"""Plan approval in Teams: /plan shows an Adaptive Card; Approve / Reject arrive as ``adaptiveCard/action``
invokes, answered at once with the card replaced; an approved plan runs after the invoke, once.

Real uvicorn server, real activities over HTTP, a fake connector as ``serviceUrl``; the planner's
model is the scripted service, the plan's step (Math.add) runs for real.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import SUM_PLAN, running
from tests.support.teams import FakeConnector, Sent, activity, card_click, fake_connector, post, teams_app
from tests.support.tool_scripted import ToolScripted


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted, FakeConnector]]:
    service = ToolScripted()
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        yield url, service, connector


def propose(served: tuple[str, ToolScripted, FakeConnector], channel: str = "test") -> tuple[str, Sent]:
    """Ask for a plan; returns its id and the message that carried the card."""
    url, service, connector = served
    service.queue(SUM_PLAN)
    assert post(url, activity(connector, "/plan What is 110 plus 990?", channel=channel)).status_code == 202
    sent = connector.take()
    (message,) = [s for s in sent if s.card is not None]
    card = message.card
    assert card is not None
    actions = {a["verb"]: a for a in card["actions"]}
    assert set(actions) == {"approvePlan", "rejectPlan"}
    assert {a["type"] for a in actions.values()} == {"Action.Execute"}
    assert "Math.add" in str(card["body"])
    plan_id = actions["approvePlan"]["data"]["planId"]
    assert actions["rejectPlan"]["data"]["planId"] == plan_id
    assert not any("1100" in s.text for s in sent)  # nothing ran
    return plan_id, message


def click(url: str, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = post(url, body)
    return response, time.perf_counter() - began


def card_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive", body
    return body["value"]


def test_approve_answers_at_once_then_runs_the_plan_with_streamed_progress_once(
    served: tuple[str, ToolScripted, FakeConnector],
) -> None:
    url, _, connector = served
    plan_id, message = propose(served, channel="msteams")
    response, seconds = click(url, card_click(connector, "approvePlan", plan_id, message.id, channel="msteams"))
    assert response.status_code == 200 and seconds < 1.0
    replaced = card_of(response)
    assert "actions" not in replaced and "Approved by Ada: running…" in str(replaced["body"])
    sent = connector.wait_for(lambda s: s.method == "PUT")
    final = [s for s in sent if s.type == "message" and s.method == "POST"]
    assert [s.text for s in final] == ["1100"] and (final[0].stream or {}).get("streamType") == "final"
    progress = [s for s in sent if (s.stream or {}).get("streamType") == "informative"]
    assert [s.text for s in progress] == ["Step 1/1 Math.add…"]
    update = next(s for s in sent if s.method == "PUT")
    assert update.path.endswith(f"/activities/{message.id}") and "Done" in str(update.card)
    # A second click (or a double click) shows the outcome and runs nothing again.
    again, seconds = click(url, card_click(connector, "approvePlan", plan_id, message.id, channel="msteams"))
    assert seconds < 1.0 and "actions" not in card_of(again)
    time.sleep(0.5)
    assert not any(s.text == "1100" for s in connector.take() if s.method == "POST" and s not in sent)


def test_only_the_user_who_asked_may_decide(served: tuple[str, ToolScripted, FakeConnector]) -> None:
    url, _, connector = served
    plan_id, message = propose(served)
    other = card_click(connector, "approvePlan", plan_id, message.id, user="user-2", name="Bob")
    response, seconds = click(url, other)
    assert response.status_code == 200 and seconds < 1.0
    assert response.json() == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.activity.message",
        "value": "Only Ada, who asked for this plan, can approve or reject it.",
    }
    time.sleep(0.3)
    assert connector.take() == []  # nothing ran, the card is untouched
    mine, _ = click(url, card_click(connector, "approvePlan", plan_id, message.id))
    assert "Approved by Ada" in str(card_of(mine)["body"])
    assert [s.text for s in connector.wait_for(lambda s: s.text == "1100") if s.type == "message"] == ["1100"]


def test_reject_replaces_the_card_and_runs_nothing(served: tuple[str, ToolScripted, FakeConnector]) -> None:
    url, _, connector = served
    plan_id, message = propose(served)
    response, seconds = click(url, card_click(connector, "rejectPlan", plan_id, message.id))
    assert seconds < 1.0 and "Rejected by Ada: nothing ran." in str(card_of(response)["body"])
    approve, _ = click(url, card_click(connector, "approvePlan", plan_id, message.id))  # too late
    assert "Rejected by Ada" in str(card_of(approve)["body"])
    time.sleep(0.5)
    assert connector.take() == []


def test_a_click_on_an_unknown_plan_says_so(served: tuple[str, ToolScripted, FakeConnector]) -> None:
    url, _, connector = served
    response, seconds = click(url, card_click(connector, "approvePlan", "plan_gone", "sent-9"))
    assert seconds < 1.0 and "no longer waiting" in str(card_of(response)["body"])
    assert connector.take() == []


@pytest.mark.e2e
def test_a_plan_the_planner_cannot_make_is_one_sentence_and_no_card(tmp_path: Path) -> None:
    service = ToolScripted(default="I would rather not plan.")  # every planning turn, repairs included
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        assert post(url, activity(connector, "/plan What is 110 plus 990?", channel="test")).status_code == 202
        messages = [s for s in connector.take() if s.type == "message"]
    assert len(messages) == 1 and messages[0].card is None
    text = messages[0].text
    assert text.startswith("Sorry, that did not work: no valid plan") and "\n" not in text
    assert "no scripted answer" not in text


@pytest.mark.e2e
def test_a_card_waiting_for_its_click_does_not_hold_the_model(tmp_path: Path) -> None:
    service = ToolScripted()
    with fake_connector() as connector, running(teams_app(tmp_path, service, concurrency=1, queue=0)) as url:
        plan_id, message = propose((url, service, connector))
        service.queue("Meanwhile, hello.")  # one generation at a time, none waiting: the gate must be free
        assert post(url, activity(connector, "hello", channel="test", conversation="conv-2")).status_code == 202
        assert [s.text for s in connector.take() if s.type == "message"] == ["Meanwhile, hello."]
        click(url, card_click(connector, "approvePlan", plan_id, message.id))
        assert any(s.text == "1100" for s in connector.wait_for(lambda s: s.text == "1100"))


@pytest.mark.e2e
def test_a_plan_waiting_for_its_click_survives_a_restart_and_runs_once(tmp_path: Path) -> None:
    with fake_connector() as connector:
        first = ToolScripted()
        with running(teams_app(tmp_path, first)) as url:
            plan_id, message = propose((url, first, connector))
        # A new server on the same data directory: its model is never asked, the kept plan runs.
        second = ToolScripted(default="never asked")
        with running(teams_app(tmp_path, second)) as url:
            response, seconds = click(url, card_click(connector, "approvePlan", plan_id, message.id))
            assert response.status_code == 200 and seconds < 1.0
            assert "Approved by Ada: running…" in str(card_of(response)["body"])
            sent = connector.wait_for(lambda s: s.method == "PUT")
            assert [s.text for s in sent if s.type == "message" and s.method == "POST"] == ["1100"]
            assert next(s for s in sent if s.method == "PUT").path.endswith(f"/activities/{message.id}")
            again, _ = click(url, card_click(connector, "approvePlan", plan_id, message.id))
            assert "Done: the result is below." in str(card_of(again)["body"])
            # The result joined the Teams conversation: the model sees it next.
            connector.take()
            second.queue("It was 1100.")
            assert post(url, activity(connector, "What was the sum?", channel="test")).status_code == 202
            assert "1100" in second.requests[-1].prompt
        with running(teams_app(tmp_path, ToolScripted())) as url:  # and after another restart, still once
            late, _ = click(url, card_click(connector, "approvePlan", plan_id, message.id))
            assert "Done: the result is below." in str(card_of(late)["body"])
        time.sleep(0.3)
        assert [s.text for s in connector.take() if s.type == "message"] == ["It was 1100."]


def test_the_plan_store_decides_once_and_marks_interrupted_runs(tmp_path: Path) -> None:
    from kernel_app.interfaces.server.teams.plan_store import INTERRUPTED, PlanRecord, PlanStore

    store = PlanStore(tmp_path / "teams.sqlite3")
    plan = {"goal": "sum", "steps": [{"function": "Math.add", "args": {"a": 1, "b": 2}, "output": "sum"}]}
    for plan_id in ("plan_a", "plan_b"):
        store.add(PlanRecord(plan_id, "conv-1", "c1", "aad-user-1", "Ada", False, "sum", plan, {"type": "message"}))
    assert store.decide("plan_a", "approved", "running", "sent-1")
    assert not store.decide("plan_a", "approved", "running", "sent-1")  # a second click, or a second server
    assert store.decide("plan_b", "rejected", "no", None)
    reopened = PlanStore(tmp_path / "teams.sqlite3")
    assert reopened.interrupt_running() == 1
    a, b = reopened.get("plan_a"), reopened.get("plan_b")
    assert a is not None and (a.state, a.outcome, a.card_id) == ("interrupted", INTERRUPTED, "sent-1")
    assert b is not None and b.state == "rejected" and b.steps == [{"function": "Math.add", "args": {"a": 1, "b": 2}}]


def test_a_plan_clicked_too_late_says_so_and_runs_nothing(
    served: tuple[str, ToolScripted, FakeConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kernel_app.interfaces.server.teams import plans

    url, _, connector = served
    plan_id, message = propose(served)
    monkeypatch.setattr(plans, "APPROVAL_TIMEOUT", 0.0)
    response, _ = click(url, card_click(connector, "approvePlan", plan_id, message.id))
    assert "Not approved in time: nothing ran." in str(card_of(response)["body"])
    time.sleep(0.3)
    assert connector.take() == []
