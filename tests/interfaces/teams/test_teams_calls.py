"""A function with an effect the model wants to call in free text: an Adaptive Card in Teams.

The turn shows the card and ends its HTTP request; Approve / Reject arrive as ``adaptiveCard/action``
invokes, answered at once with the card replaced; the engine's turn then goes on in a proactive turn
(the function runs, or the model answers without it). Real uvicorn server, real activities over
HTTP, a fake connector as ``serviceUrl``, the scripted model; memory.save (WRITE) runs for real.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import running, saved_notes
from tests.support.teams import FakeConnector, Sent, activity, card_click, fake_connector, post, teams_app
from tests.support.tool_scripted import ToolScripted, tools

SAVE = ("memory-save", {"collection": "notes", "input": "The Lyon bakery opens at 7."})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted, FakeConnector]]:
    service = ToolScripted()
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        yield url, service, connector


def call_click(connector: FakeConnector, verb: str, approval_id: str, card_id: str, **who: Any) -> dict[str, Any]:
    body = card_click(connector, verb, "", card_id, **who)
    body["value"]["action"]["data"] = {"approvalId": approval_id}
    return body


def ask(
    served: tuple[str, ToolScripted, FakeConnector], *answers: str, channel: str = "msteams", **extra: Any
) -> tuple[str, Sent, list[Sent]]:
    """Say something the model answers with a call to memory.save; returns the card's id, its message, all sent."""
    url, service, connector = served
    service.queue(*answers)
    began = time.perf_counter()
    assert (
        post(url, activity(connector, "Remember when the bakery opens.", channel=channel, **extra)).status_code == 202
    )
    assert time.perf_counter() - began < 10  # the request does not wait for the click
    sent = connector.take()
    (message,) = [s for s in sent if s.card is not None]
    card = message.card
    assert card is not None
    actions = {a["verb"]: a for a in card["actions"]}
    assert set(actions) == {"approveCall", "rejectCall"} and {a["type"] for a in actions.values()} == {"Action.Execute"}
    assert "memory.save" in str(card["body"]) and "The Lyon bakery opens at 7." in str(card["body"])
    approval_id = actions["approveCall"]["data"]["approvalId"]
    assert actions["rejectCall"]["data"]["approvalId"] == approval_id
    return approval_id, message, sent


def card_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive", body
    return body["value"]


def click(url: str, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = post(url, body)
    return response, time.perf_counter() - began


def test_approve_answers_at_once_then_the_function_runs_and_the_answer_streams(
    served: tuple[str, ToolScripted, FakeConnector],
) -> None:
    url, service, connector = served
    # A read-only call runs unasked (its update starts the stream); the write waits for the card.
    approval_id, message, sent = ask(served, tools(("Math-add", {"a": 6, "b": 1}), SAVE), "Saved: it opens at 7.")
    # Never silent: "Thinking…" opens the model's turn, then what runs.
    informative = [s.text for s in sent if (s.stream or {}).get("streamType") == "informative"]
    assert informative == ["Thinking…", "Running Math.add…"]
    assert (message.stream or {}).get("streamType") == "final"  # the card ends the stream
    assert len(service.requests) == 1  # the model waits for the click
    response, seconds = click(url, call_click(connector, "approveCall", approval_id, message.id, channel="msteams"))
    assert response.status_code == 200 and seconds < 1.0
    replaced = card_of(response)
    assert "actions" not in replaced and "Approved by Ada: memory.save runs." in str(replaced["body"])
    after = connector.wait_for(lambda s: s.text == "Saved: it opens at 7." and s.type == "message")
    informative = [s.text for s in after if (s.stream or {}).get("streamType") == "informative"]
    assert informative == ["Running memory.save…"]
    final = [s for s in after if s.type == "message"]
    assert [s.text for s in final] == ["Saved: it opens at 7."] and (final[0].stream or {}).get("streamType") == "final"
    saved = service.tool_results[-1]
    assert saved[0] == "7" and saved[1] and not saved[1].startswith(("The user did not approve", "error"))
    # A double click shows the outcome; nothing runs again.
    again, seconds = click(url, call_click(connector, "approveCall", approval_id, message.id, channel="msteams"))
    assert seconds < 1.0 and "Approved by Ada: memory.save ran." in str(card_of(again)["body"])
    time.sleep(0.3)
    assert [s for s in connector.take() if s.type == "message" and s not in after] == []
    assert len(service.requests) == 2


def test_reject_runs_nothing_and_the_model_answers_without_it(
    served: tuple[str, ToolScripted, FakeConnector],
) -> None:
    url, service, connector = served
    approval_id, message, _ = ask(served, tools(SAVE), "All right, I did not save it.", channel="test")
    response, seconds = click(url, call_click(connector, "rejectCall", approval_id, message.id))
    assert seconds < 1.0 and "Rejected by Ada: memory.save did not run." in str(card_of(response)["body"])
    sent = connector.wait_for(lambda s: s.text == "All right, I did not save it.")
    assert [s.text for s in sent if s.type == "message"] == ["All right, I did not save it."]
    assert service.tool_results[-1][0].startswith("The user did not approve running memory.save")
    late, _ = click(url, call_click(connector, "approveCall", approval_id, message.id))  # too late
    assert "Rejected by Ada" in str(card_of(late)["body"])


def test_only_the_asker_decides_and_the_conversation_waits_for_the_card(
    served: tuple[str, ToolScripted, FakeConnector],
) -> None:
    url, service, connector = served
    approval_id, message, _ = ask(served, tools(SAVE), "Saved.", channel="test")
    other, seconds = click(
        url, call_click(connector, "approveCall", approval_id, message.id, user="user-2", name="Bob")
    )
    assert seconds < 1.0 and other.json() == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.activity.message",
        "value": "Only Ada, who asked, can approve or reject memory.save.",
    }
    # Meanwhile the conversation's turn is paused on the card: a new message is told so, the model not asked.
    assert post(url, activity(connector, "Hello?", channel="test")).status_code == 202
    assert [s.text for s in connector.take() if s.type == "message"] == [
        "I am waiting for Ada to approve or reject memory.save on the card above before I go on."
    ]
    assert len(service.requests) == 1
    mine, _ = click(url, call_click(connector, "approveCall", approval_id, message.id))
    assert "Approved by Ada" in str(card_of(mine)["body"])
    connector.wait_for(lambda s: s.text == "Saved.")
    service.queue("Hello again.")  # the turn is over: the conversation goes on
    assert post(url, activity(connector, "Hello?", channel="test")).status_code == 202
    assert "Hello again." in [s.text for s in connector.take() if s.type == "message"]


def test_in_a_group_chat_the_card_and_the_answer_are_plain_messages(
    served: tuple[str, ToolScripted, FakeConnector],
) -> None:
    url, _, connector = served
    mention = {
        "type": "mention",
        "mentioned": {"id": "28:kernel-app", "name": "Kernel App"},
        "text": "<at>Kernel App</at>",
    }
    group = {"conversation": "19:group@thread.v2", "kind": "groupChat", "entities": [mention]}
    approval_id, message, sent = ask(served, tools(SAVE), "Saved for the team.", **group)
    assert all(s.stream is None for s in sent)
    body = call_click(connector, "approveCall", approval_id, message.id, conversation="19:group@thread.v2")
    other = call_click(
        connector, "approveCall", approval_id, message.id, conversation="19:group@thread.v2", user="user-2"
    )
    assert "Only Ada" in post(url, other).json()["value"]
    assert "Approved by Ada" in str(card_of(post(url, body))["body"])
    after = connector.wait_for(lambda s: s.text == "Saved for the team.")
    assert [s.text for s in after if s.type == "message"] == ["Saved for the team."]
    assert all(s.stream is None for s in after)


def test_a_click_on_an_unknown_request_says_so(served: tuple[str, ToolScripted, FakeConnector]) -> None:
    url, _, connector = served
    response, seconds = click(url, call_click(connector, "approveCall", "approval_gone", "sent-9"))
    assert seconds < 1.0 and "no longer waiting" in str(card_of(response)["body"])
    assert connector.take() == []


def test_the_function_calling_planner_asks_on_a_card_too(served: tuple[str, ToolScripted, FakeConnector]) -> None:
    url, service, connector = served
    service.queue(tools(SAVE), "Saved by the planner.")
    said = activity(connector, "/plan --planner function-calling Remember when the bakery opens", channel="test")
    assert post(url, said).status_code == 202
    (message,) = [s for s in connector.take() if s.card is not None]
    assert message.card is not None
    approval_id = message.card["actions"][0]["data"]["approvalId"]
    assert approval_id.startswith("approval_")  # the planner's request had none: one is made
    response, seconds = click(url, call_click(connector, "approveCall", approval_id, message.id))
    assert seconds < 1.0 and "Approved by Ada" in str(card_of(response)["body"])
    sent = connector.wait_for(lambda s: s.text == "Saved by the planner.")
    assert [s.text for s in sent if s.type == "message"] == ["Saved by the planner."]
    again, _ = click(url, call_click(connector, "approveCall", approval_id, message.id))
    assert "Approved by Ada: memory.save ran." in str(card_of(again)["body"])  # kept as done, not as running


def test_an_unanswered_card_counts_as_reject_and_the_turn_ends(
    served: tuple[str, ToolScripted, FakeConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kernel_app.interfaces.server.teams import calls

    url, service, connector = served
    monkeypatch.setattr(calls, "CALL_APPROVAL_TIMEOUT", 0.5)
    approval_id, message, _ = ask(served, tools(SAVE), "I could not save it.", channel="test")
    sent = connector.wait_for(lambda s: s.text == "I could not save it.")
    assert [s.text for s in sent if s.type == "message"] == ["I could not save it."]
    assert service.tool_results[-1][0].startswith("The user did not approve running memory.save")
    late, _ = click(url, call_click(connector, "approveCall", approval_id, message.id))
    assert "Not answered in time: memory.save did not run." in str(card_of(late)["body"])


TRANSLATE = ("Writer-Translate", {"input": "Good morning", "language": "French"})


@pytest.mark.e2e
def test_with_approve_model_functions_a_prompt_function_runs_unasked_and_a_write_still_asks(tmp_path: Path) -> None:
    service = ToolScripted()
    with fake_connector() as connector, running(teams_app(tmp_path, service, approve_model_functions=True)) as url:
        served = (url, service, connector)
        service.queue(tools(TRANSLATE), "Bonjour", "In French: Bonjour.")
        assert post(url, activity(connector, "Good morning in French?")).status_code == 202
        sent = connector.take()
        assert [s for s in sent if s.card is not None] == []  # no card: the server's flag approves it
        assert [s.text for s in sent if (s.stream or {}).get("streamType") == "informative"] == [
            "Thinking…",
            "Running Writer.Translate…",
        ]
        assert [s.text for s in sent if s.type == "message"] == ["In French: Bonjour."]
        assert "Good morning" in service.requests[1].prompt and service.tool_results[-1] == ["Bonjour"]
        # The flag is about prompt functions only: memory.save (it changes something) still asks.
        approval_id, message, _ = ask(served, tools(SAVE), "Saved.", channel="test")
        response, _ = click(url, call_click(connector, "approveCall", approval_id, message.id))
        assert "Approved by Ada" in str(card_of(response)["body"])
        connector.wait_for(lambda s: s.text == "Saved.")


def test_without_the_flag_a_prompt_function_asks_on_a_card(served: tuple[str, ToolScripted, FakeConnector]) -> None:
    url, service, connector = served
    service.queue(tools(TRANSLATE), "Bonjour", "In French: Bonjour.")
    assert post(url, activity(connector, "Good morning in French?", channel="test")).status_code == 202
    (message,) = [s for s in connector.take() if s.card is not None]
    assert message.card is not None and "Writer.Translate" in str(message.card["body"])
    assert "It calls the model" in str(message.card["body"]) and len(service.requests) == 1  # not run yet


@pytest.mark.e2e
def test_a_call_waiting_for_its_click_survives_a_restart_and_runs_once(tmp_path: Path) -> None:
    with fake_connector() as connector:
        first = ToolScripted()
        with running(teams_app(tmp_path, first)) as url:
            approval_id, message, _ = ask((url, first, connector), tools(SAVE), "never said", channel="test")
        assert saved_notes(tmp_path) == []
        # A new server on the same data directory: the turn that asked is gone, the kept call is not.
        second = ToolScripted(default="never asked")
        with running(teams_app(tmp_path, second)) as url:
            response, seconds = click(url, call_click(connector, "approveCall", approval_id, message.id))
            assert response.status_code == 200 and seconds < 1.0
            assert "Approved by Ada: memory.save runs now; its result follows." in str(card_of(response)["body"])
            sent = connector.wait_for(lambda s: s.type == "message" and "memory.save" in s.text)
            (answer,) = [s.text for s in sent if s.type == "message"]
            assert answer.startswith("The server restarted while memory.save waited for your approval")
            assert "I ran memory.save as you approved. Its result:" in answer
            assert saved_notes(tmp_path) == ["The Lyon bakery opens at 7."]
            assert second.requests == []  # the call ran; the model was not asked to go on
            # A second click is refused: the outcome, nothing runs again.
            again, seconds = click(url, call_click(connector, "approveCall", approval_id, message.id))
            assert seconds < 1.0 and "memory.save ran after a restart" in str(card_of(again)["body"])
            # The question, the call and its result joined the conversation: the model sees them next.
            connector.take()
            second.queue("It opens at 7.")
            assert post(url, activity(connector, "When does it open?", channel="test")).status_code == 202
            prompt = second.requests[-1].prompt
            assert "Remember when the bakery opens." in prompt and "I ran memory.save as you approved" in prompt
        with running(teams_app(tmp_path, ToolScripted())) as url:  # and after another restart, still once
            late, _ = click(url, call_click(connector, "rejectCall", approval_id, message.id))
            assert "memory.save ran after a restart" in str(card_of(late)["body"])
        time.sleep(0.3)
        assert [s.text for s in connector.take() if s.type == "message"] == ["It opens at 7."]
    assert saved_notes(tmp_path) == ["The Lyon bakery opens at 7."]


@pytest.mark.e2e
def test_after_a_restart_only_the_asker_decides_and_a_reject_runs_nothing(tmp_path: Path) -> None:
    with fake_connector() as connector:
        first = ToolScripted()
        with running(teams_app(tmp_path, first)) as url:
            approval_id, message, _ = ask((url, first, connector), tools(SAVE), "never said", channel="test")
        with running(teams_app(tmp_path, ToolScripted(default="never asked"))) as url:
            other, _ = click(
                url, call_click(connector, "approveCall", approval_id, message.id, user="user-2", name="Bob")
            )
            assert other.json()["value"] == "Only Ada, who asked, can approve or reject memory.save."
            response, _ = click(url, call_click(connector, "rejectCall", approval_id, message.id))
            assert "Rejected by Ada: memory.save did not run." in str(card_of(response)["body"])
            approve, _ = click(url, call_click(connector, "approveCall", approval_id, message.id))  # too late
            assert "Rejected by Ada" in str(card_of(approve)["body"])
            time.sleep(0.3)
            assert connector.take() == []
    assert saved_notes(tmp_path) == []


def test_the_call_store_decides_once_and_marks_interrupted_runs(tmp_path: Path) -> None:
    from kernel_app.interfaces.server.teams.call_store import CallRecord, CallStore

    store = CallStore(tmp_path / "teams.sqlite3")
    for approval_id in ("approval_a", "approval_b"):
        store.add(
            CallRecord(
                approval_id, "conv-1", "c1", "aad-user-1", "Ada", False, "memory.save", {"input": "x"},
                "call_1", "write", "Remember x", {"type": "message"},
            )
        )  # fmt: skip
    assert store.decide("approval_a", "approved", "runs", "sent-1")
    assert not store.decide("approval_a", "rejected", "no", None)  # a second click, or a second server
    assert store.decide("approval_b", "rejected", "no")
    reopened = CallStore(tmp_path / "teams.sqlite3")
    assert reopened.interrupt_running() == 1
    a, b = reopened.get("approval_a"), reopened.get("approval_b")
    assert a is not None and (a.state, a.card_id, a.arguments) == ("interrupted", "sent-1", {"input": "x"})
    assert a.outcome.startswith("The server restarted while memory.save ran")
    assert b is not None and b.state == "rejected" and b.said == "Remember x"
