"""A REST plan's progress (issue 23): ``POST /v1/plans/ID/execute`` with ``Accept: text/event-stream``
streams each step's start and end, then the plan; the JSON answer stays as it was; the record keeps the
steps' results, and a conversation's plans are listed, for a page reloaded after the run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import SUM_PLAN, make_app, running
from tests.support.sse import sse_events
from tests.support.tool_scripted import Stepwise

pytestmark = pytest.mark.e2e  # the app served by uvicorn on loopback

EVENTS = {"Accept": "text/event-stream"}
POEM = "## Bread\n\n- warm at dawn\n- gone by noon"
THREE_STEPS = json.dumps(
    {
        "steps": [
            {"function": "Math.add", "args": {"a": 2, "b": 3}, "output": "sum"},
            {"function": "Writer.ShortPoem", "args": {"input": "$sum"}, "output": "poem"},
            {"function": "Text.upper", "args": {"input": "$poem"}, "output": "loud"},
        ]
    }
)
FAILING = json.dumps(
    {
        "steps": [
            {"function": "Math.add", "args": {"a": 2, "b": 3}, "output": "sum"},
            {"function": "Math.divide", "args": {"a": "$sum", "b": 0}, "output": "quotient"},
            {"function": "Math.add", "args": {"a": "$quotient", "b": 1}, "output": "more"},
        ]
    }
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Stepwise]]:
    service = Stepwise(free=1)  # the planner's request is answered at once; the steps' when allowed
    with running(make_app(tmp_path, service)) as url:
        yield url, service


def propose(url: str, service: Stepwise, plan: str) -> dict[str, Any]:
    service.queue(plan)
    proposed = httpx.post(f"{url}/v1/plans", json={"goal": "A poem of a sum"}, timeout=30)
    assert proposed.status_code == 201, proposed.text
    return proposed.json()


def test_the_steps_stream_in_order_and_the_record_keeps_them(served: tuple[str, Stepwise]) -> None:
    url, service = served
    plan = propose(url, service, THREE_STEPS)
    cid = httpx.post(f"{url}/v1/conversations", json={"title": "Poems"}).json()["id"]
    service.queue(POEM)
    service.allow()
    ran = httpx.post(f"{url}/v1/plans/{plan['id']}/execute", json={"conversation_id": cid}, headers=EVENTS, timeout=30)
    assert ran.status_code == 200 and ran.headers["content-type"].startswith("text/event-stream")
    events = sse_events(ran.text)
    assert [(e["type"], e.get("step")) for e in events] == [
        ("plan_step_started", 1),
        ("plan_step_finished", 1),
        ("plan_step_started", 2),
        ("plan_step_finished", 2),
        ("plan_step_started", 3),
        ("plan_step_finished", 3),
        ("plan_finished", None),
    ]
    started = events[2]
    assert started["text"] == "step 2 of 3: Writer.ShortPoem" and started["plan_id"] == plan["id"]
    assert (started["function"], started["output_name"], started["total"]) == ("Writer.ShortPoem", "poem", 3)
    assert [e["output"] for e in events if e["type"] == "plan_step_finished"] == ["5", POEM, POEM.upper()]
    assert all(e["ok"] and e["error"] == "" for e in events if e["type"] == "plan_step_finished")
    finished = events[-1]
    assert (finished["status"], finished["result"], finished["conversation_id"]) == ("done", POEM.upper(), cid)
    # Kept: the plan as GET shows it has the steps' results, and the conversation lists the plan.
    kept = httpx.get(f"{url}/v1/plans/{plan['id']}").json()
    assert kept == {key: value for key, value in finished.items() if key != "type"}
    assert [(s["step"], s["function"], s["output"], s["status"]) for s in kept["steps"]] == [
        (1, "Math.add", "5", "done"),
        (2, "Writer.ShortPoem", POEM, "done"),
        (3, "Text.upper", POEM.upper(), "done"),
    ]
    listed = httpx.get(f"{url}/v1/plans", params={"conversation_id": cid}).json()["data"]
    assert [p["id"] for p in listed] == [plan["id"]] and listed[0]["steps"] == kept["steps"]
    stored = httpx.get(f"{url}/v1/conversations/{cid}").json()["messages"]
    assert [m["content"] for m in stored] == ["(planned and ran: A poem of a sum)", POEM.upper()]
    assert httpx.get(f"{url}/v1/plans", params={"conversation_id": "nope"}).status_code == 404


def test_a_failed_step_is_streamed_with_its_error_and_the_plan_stops(served: tuple[str, Stepwise]) -> None:
    url, service = served
    plan = propose(url, service, FAILING)
    cid = httpx.post(f"{url}/v1/conversations", json={"title": "Sums"}).json()["id"]
    ran = httpx.post(f"{url}/v1/plans/{plan['id']}/execute", json={"conversation_id": cid}, headers=EVENTS, timeout=30)
    assert ran.status_code == 200
    events = sse_events(ran.text)
    assert [(e["type"], e.get("step")) for e in events] == [
        ("plan_step_started", 1),
        ("plan_step_finished", 1),
        ("plan_step_started", 2),
        ("plan_step_finished", 2),
        ("plan_finished", None),
    ]  # step 3 reads step 2's output: it never starts
    failed = events[3]
    assert (failed["function"], failed["ok"], failed["output"]) == ("Math.divide", False, "")
    assert failed["error"] == "failed: cannot divide by zero"
    finished = events[-1]
    assert finished["status"] == "failed" and finished["result"] is None
    assert finished["error"] == "step 2 (Math.divide) failed: cannot divide by zero"
    assert [(s["step"], s["status"]) for s in finished["steps"]] == [(1, "done"), (2, "failed")]
    assert httpx.get(f"{url}/v1/plans/{plan['id']}").json()["steps"] == finished["steps"]
    assert httpx.get(f"{url}/v1/conversations/{cid}").json()["messages"] == []  # a failed plan joins nothing
    assert [p["status"] for p in httpx.get(f"{url}/v1/plans", params={"conversation_id": cid}).json()["data"]] == [
        "failed"
    ]


def test_without_the_event_stream_the_answer_is_json_as_before(served: tuple[str, Stepwise]) -> None:
    url, service = served
    plan = propose(url, service, SUM_PLAN)
    ran = httpx.post(f"{url}/v1/plans/{plan['id']}/execute", timeout=30)
    assert ran.status_code == 200 and ran.headers["content-type"] == "application/json"
    body = ran.json()
    assert (body["status"], body["result"], body["error"]) == ("done", "1100", None)
    assert [(s["function"], s["output"]) for s in body["steps"]] == [("Math.add", "1100")]  # kept here too
    service.allow()  # the second plan's planning
    failing = propose(url, service, FAILING)
    refused = httpx.post(f"{url}/v1/plans/{failing['id']}/execute", timeout=30)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "plan_failed"
    assert refused.json()["error"]["message"] == "step 2 (Math.divide) failed: cannot divide by zero"


def test_a_second_execute_while_it_streams_and_after_is_a_409(served: tuple[str, Stepwise]) -> None:
    url, service = served
    plan = propose(url, service, THREE_STEPS)
    service.queue(POEM)
    seen: list[dict[str, Any]] = []
    step_two = threading.Event()

    def first() -> None:
        with httpx.stream("POST", f"{url}/v1/plans/{plan['id']}/execute", headers=EVENTS, timeout=30) as answer:
            buffer = ""
            for text in answer.iter_text():
                buffer += text
                *blocks, buffer = buffer.split("\n\n")
                for block in blocks:
                    seen.extend(sse_events(block + "\n\n"))
                    if seen and seen[-1].get("text") == "step 2 of 3: Writer.ShortPoem":
                        step_two.set()

    runner = threading.Thread(target=first)
    runner.start()
    try:
        assert step_two.wait(30) and service.waiting.wait(30)  # step 2 waits for the model
        again = httpx.post(f"{url}/v1/plans/{plan['id']}/execute", headers=EVENTS, timeout=30)
        assert again.status_code == 409 and again.json()["error"]["code"] == "plan_already_executed"
        assert "(running)" in again.json()["error"]["message"]
        meanwhile = httpx.get(f"{url}/v1/plans/{plan['id']}").json()  # what a page opened now shows
        assert meanwhile["status"] == "running"
        assert [(s["step"], s["status"], s.get("output")) for s in meanwhile["steps"]] == [
            (1, "done", "5"),
            (2, "running", None),
        ]
    finally:
        service.allow()
        runner.join(30)
    assert [e["type"] for e in seen][-1] == "plan_finished" and seen[-1]["status"] == "done"
    after = httpx.post(f"{url}/v1/plans/{plan['id']}/execute", headers=EVENTS, timeout=30)
    assert after.status_code == 409 and "(done)" in after.json()["error"]["message"]
    assert len(service.requests) == 2  # the planner, then the model step: once
