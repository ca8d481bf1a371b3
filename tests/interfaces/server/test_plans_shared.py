"""REST plans (``/v1/plans``) kept in a store (issue 19): one survives a restart of its server on the
local SQLite store, and on one PostgreSQL a plan proposed on one server is executed on another, once,
however many executes race for it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server import create_app
from kernel_app.interfaces.server.api.plan_store import RestPlanRecord, RestPlanStore
from memories.embedders import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import SUM_PLAN, make_app, running
from tests.support.tool_scripted import ToolScripted

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

pytestmark = pytest.mark.e2e  # uvicorn servers on loopback, some on one PostgreSQL


def _propose(url: str, service: ToolScripted) -> dict[str, Any]:
    service.queue(SUM_PLAN)
    proposed = httpx.post(f"{url}/v1/plans", json={"goal": "What is 110 plus 990?"}, timeout=30)
    assert proposed.status_code == 201, proposed.text
    return proposed.json()


def test_a_plan_proposed_before_a_restart_is_executed_after_it(tmp_path: Path) -> None:
    service = ToolScripted()
    with running(make_app(tmp_path, service)) as url:
        plan = _propose(url, service)
    assert (tmp_path / "memory" / "api.sqlite3").exists()
    with running(make_app(tmp_path, ToolScripted())) as url:  # a new process, as far as the plan knows
        assert httpx.get(f"{url}/v1/plans/{plan['id']}").json()["status"] == "proposed"
        executed = httpx.post(f"{url}/v1/plans/{plan['id']}/execute", timeout=30).json()
        assert (executed["status"], executed["result"]) == ("done", "1100")
        assert executed["plan"] == plan["plan"] and executed["text"] == plan["text"]
    with running(make_app(tmp_path, ToolScripted())) as url:
        again = httpx.post(f"{url}/v1/plans/{plan['id']}/execute")
        assert again.status_code == 409 and "(done)" in again.json()["error"]["message"]
        assert httpx.get(f"{url}/v1/plans/{plan['id']}").json()["result"] == "1100"


def test_a_plan_running_when_its_server_stopped_is_reported_interrupted(tmp_path: Path) -> None:
    store = RestPlanStore(tmp_path / "memory" / "api.sqlite3")
    store.add(RestPlanRecord("plan_cut", "Add", {"steps": []}))
    assert store.decide("plan_cut", "approved", "running")  # and then the server stopped
    store.close()
    with running(make_app(tmp_path, ToolScripted())) as url:
        shown = httpx.get(f"{url}/v1/plans/plan_cut").json()
        assert shown["status"] == "interrupted" and "may not have finished" in shown["error"]
        assert httpx.post(f"{url}/v1/plans/plan_cut/execute").status_code == 409


def _pg_app(folder: Path, database_url: str, service: ToolScripted) -> Any:
    settings = Settings(memory_dir=folder, database_url=database_url)
    return create_app(settings, chat_service=service, embedder=HashingEmbedder(64))


def test_a_plan_proposed_on_one_server_runs_once_on_another(tmp_path: Path, postgres_url: str) -> None:
    service_a = ToolScripted()
    app_a, app_b = (
        _pg_app(tmp_path / "a", postgres_url, service_a),
        _pg_app(tmp_path / "b", postgres_url, ToolScripted()),
    )
    try:
        with running(app_a) as a, running(app_b) as b:
            plan = _propose(a, service_a)
            assert httpx.get(f"{b}/v1/plans/{plan['id']}").json()["status"] == "proposed"
            executed = httpx.post(f"{b}/v1/plans/{plan['id']}/execute", timeout=30).json()
            assert (executed["status"], executed["result"]) == ("done", "1100")
            for url in (a, b):  # decided for both: a second execute, anywhere, is told what happened
                again = httpx.post(f"{url}/v1/plans/{plan['id']}/execute")
                assert again.status_code == 409 and "(done)" in again.json()["error"]["message"]
                assert httpx.get(f"{url}/v1/plans/{plan['id']}").json()["result"] == "1100"

            # Two executes at once, one per server: one runs it, the other gets the 409.
            raced = _propose(a, service_a)
            answers: list[httpx.Response] = []
            go = threading.Barrier(2)

            def execute(url: str) -> None:
                go.wait()
                answers.append(httpx.post(f"{url}/v1/plans/{raced['id']}/execute", timeout=30))

            threads = [threading.Thread(target=execute, args=(url,)) for url in (a, b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert sorted(r.status_code for r in answers) == [200, 409]
            assert httpx.get(f"{a}/v1/plans/{raced['id']}").json()["result"] == "1100"

            # The same race with the steps streamed (the page's execute): the claim comes before the events.
            streamed = _propose(a, service_a)
            cid = httpx.post(f"{a}/v1/conversations", json={"title": "Sums"}).json()["id"]
            answers.clear()
            go.reset()

            def execute_streamed(url: str) -> None:
                go.wait()
                answers.append(
                    httpx.post(
                        f"{url}/v1/plans/{streamed['id']}/execute",
                        json={"conversation_id": cid},
                        headers={"Accept": "text/event-stream"},
                        timeout=30,
                    )
                )

            threads = [threading.Thread(target=execute_streamed, args=(url,)) for url in (a, b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            won, lost = sorted(answers, key=lambda r: r.status_code)
            assert (won.status_code, lost.status_code) == (200, 409)
            assert lost.json()["error"]["code"] == "plan_already_executed"
            assert won.text.count("event: plan_step_started") == 1 and "event: plan_finished" in won.text
            for url in (a, b):  # the conversation's plans, with their steps, from either server
                listed = httpx.get(f"{url}/v1/plans", params={"conversation_id": cid}).json()["data"]
                assert [(p["id"], p["result"]) for p in listed] == [(streamed["id"], "1100")]
                assert [(s["function"], s["output"]) for s in listed[0]["steps"]] == [("Math.add", "1100")]
    finally:
        for app in (app_a, app_b):
            app.state.kernel_app.store.close()
