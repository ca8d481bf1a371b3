"""Every surface makes its planner through planners.factory, for each kind, and words an unknown kind the
factory's way: the CLI's ``kernel-app plan``, the REPL's ``/plan``, REST's ``POST /v1/plans``, Teams and
chat-copilot.

The factory is spied on: it notes the kind it was asked for and fails as a planner would, so no model is
needed to see which kind reached it; the failure's one line reaching the user shows the surface went on
to use what the factory made. test_planner_factory checks what the factory makes; the surfaces' own
tests run real plans.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import planners.factory
from kernel_app.base.config import Settings
from kernel_app.commands.dispatch import ChatSession
from kernel_app.conversation import ConversationStore
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from planners import PlanningError
from planners.factory import PLANNER_KINDS
from tests.support.copilot_client import ask
from tests.support.server import running
from tests.support.teams import FakeConnector, activity, fake_connector, post, teams_app
from tests.support.tool_scripted import ToolScripted, tools

KINDS_LISTED = "use one of sequential, action, function-calling"
GOAL = "What is 110 plus 990?"


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kinds the factory was asked for; each request fails as a planner that cannot plan would."""
    kinds: list[str] = []
    real = planners.factory.create_planner

    def spy(kind: str, kernel: Any, **options: Any) -> Any:
        real(kind, kernel, **options)  # what the surface passed is accepted (an unknown kind raises here)
        kinds.append(kind)
        raise PlanningError(f"spied on the {kind} planner")

    monkeypatch.setattr(planners.factory, "create_planner", spy)
    return kinds


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, FakeConnector, ToolScripted]]:
    """One server with every HTTP surface: REST, chat-copilot and Teams (anonymous, on loopback)."""
    service = ToolScripted()
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        yield url, connector, service


# region the CLI and the REPL


@pytest.mark.parametrize("kind", PLANNER_KINDS)
def test_kernel_app_plan(
    kind: str, asked: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kernel_app.interfaces.cli.main import main

    for name, value in {
        "KERNEL_APP_SERVICE": "openai",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # never reached: the spy fails before any model call
        "OPENAI_API_KEY": "sk-test",
        "KERNEL_APP_MEMORY_DIR": str(tmp_path / "memory"),
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        main(["plan", GOAL, "--planner", kind])
    assert (exited.value.code, asked) == (3, [kind])  # a planning failure's exit code
    assert f"error: spied on the {kind} planner" in capsys.readouterr().err


def test_kernel_app_plans_default_is_the_factorys() -> None:
    from kernel_app.interfaces.cli.plan_cmd import plan
    from planners.factory import DEFAULT_PLANNER

    assert next(p for p in plan.params if p.name == "planner").default == DEFAULT_PLANNER


def test_kernel_app_plan_refuses_an_unknown_kind_listing_the_kinds(
    asked: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from kernel_app.interfaces.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["plan", GOAL, "--planner", "magic"])
    error = capsys.readouterr().err
    assert (exited.value.code, asked) == (2, [])
    assert f"unknown planner 'magic': {KINDS_LISTED}" in error


@pytest.mark.parametrize("kind", [*PLANNER_KINDS, "magic"])
async def test_the_repls_plan(kind: str, asked: list[str], tmp_path: Path) -> None:
    kernel = build_kernel(Settings(memory_dir=tmp_path / "memory"), chat_service=ScriptedChatCompletion()).kernel
    session = ChatSession(kernel, store=ConversationStore(tmp_path / "conversations.sqlite3"))
    reply = await session.handle(f"/plan --planner {kind} {GOAL}", confirm=lambda shown: True)
    assert reply.is_error and "\n" not in reply.text
    if kind == "magic":
        assert (reply.text, asked) == (f"unknown planner 'magic': {KINDS_LISTED}", [])
    else:
        assert (reply.text, asked) == (f"spied on the {kind} planner", [kind])


# endregion

# region the server's surfaces


@pytest.mark.parametrize("kind", [*PLANNER_KINDS, "magic"])
def test_rest_plans(kind: str, asked: list[str], served: tuple[str, FakeConnector, ToolScripted]) -> None:
    url, _, _ = served
    response = httpx.post(f"{url}/v1/plans", json={"goal": GOAL, "planner": kind}, timeout=30)
    message = response.json()["error"]["message"]
    if kind == "magic":
        assert (response.status_code, message, asked) == (400, f"unknown planner 'magic': {KINDS_LISTED}", [])
    else:
        assert (response.status_code, message, asked) == (422, f"spied on the {kind} planner", [kind])


@pytest.mark.parametrize("kind", [*PLANNER_KINDS, "magic"])
def test_teams_plan(kind: str, asked: list[str], served: tuple[str, FakeConnector, ToolScripted]) -> None:
    url, connector, _ = served
    assert post(url, activity(connector, f"/plan --planner {kind} {GOAL}", channel="test")).status_code == 202
    said = [sent.text for sent in connector.take() if sent.type == "message"]
    if kind == "magic":
        assert asked == [] and any(f"unknown planner 'magic': {KINDS_LISTED}" in text for text in said), said
    else:
        assert asked == [kind] and any(f"spied on the {kind} planner" in text for text in said), said


@pytest.mark.parametrize("kind", [*PLANNER_KINDS, "magic"])
def test_chat_copilots_plan(kind: str, asked: list[str], served: tuple[str, FakeConnector, ToolScripted]) -> None:
    url, _, _ = served
    base = f"{url}/copilot"
    chat_id = httpx.post(f"{base}/chats", json={"title": "Plans"}).json()["chatSession"]["id"]
    answer = httpx.post(f"{base}/chats/{chat_id}/messages", json=ask(f"/plan --planner {kind} {GOAL}", chat_id))
    value = answer.json()["value"]
    if kind == "magic":
        assert asked == [] and f"unknown planner 'magic': {KINDS_LISTED}" in value, value
    else:
        assert asked == [kind] and f"spied on the {kind} planner" in value, value


# endregion

# region REST's other kinds, run for real


SUM_PLAN = json.dumps({"steps": [{"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}]})


def test_rest_plans_with_the_action_planner(served: tuple[str, FakeConnector, ToolScripted]) -> None:
    url, _, service = served
    service.queue(SUM_PLAN)
    proposed = httpx.post(f"{url}/v1/plans", json={"goal": GOAL, "planner": "action"}, timeout=30).json()
    assert (proposed["planner"], proposed["status"], proposed["plan"]["steps"][0]["function"]) == (
        "action",
        "proposed",
        "Math.add",
    )
    executed = httpx.post(f"{url}/v1/plans/{proposed['id']}/execute", timeout=30).json()
    assert (executed["status"], executed["result"]) == ("done", "1100")


def test_rest_function_calling_runs_nothing_until_executed_and_then_only_what_runs_unasked(
    served: tuple[str, FakeConnector, ToolScripted],
) -> None:
    url, _, service = served
    proposed = httpx.post(
        f"{url}/v1/plans", json={"goal": "Add 2 and 3, then remember it", "planner": "function-calling"}, timeout=30
    ).json()
    assert (proposed["status"], proposed["plan"], service.requests) == ("proposed", None, [])  # no model call yet
    assert "no plan to review" in proposed["text"]
    service.queue(
        tools(("Math-add", {"a": 2, "b": 3}), ("memory-save", {"input": "2 + 3 = 5", "collection": "notes"})),
        "2 + 3 = 5; I could not save it.",
    )
    executed = httpx.post(f"{url}/v1/plans/{proposed['id']}/execute", timeout=30).json()
    assert (executed["status"], executed["result"]) == ("done", "2 + 3 = 5; I could not save it.")
    ran = [step["function"] for step in executed["plan"]["steps"]]
    assert ran == ["Math.add"]  # memory.save (WRITE) is not run unasked: no one was asked
    assert httpx.post(f"{url}/v1/plans/{proposed['id']}/execute").status_code == 409


def test_rest_function_calling_checks_exclude_at_once(served: tuple[str, FakeConnector, ToolScripted]) -> None:
    url, _, service = served
    response = httpx.post(
        f"{url}/v1/plans", json={"goal": GOAL, "planner": "function-calling", "exclude": ["Nope"]}, timeout=30
    )
    assert response.status_code == 400 and "Nope" in response.json()["error"]["message"]
    assert service.requests == []


# endregion
