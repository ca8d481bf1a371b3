"""Planning end to end over the loopback OpenAI-compatible server, with the real ``openai`` client."""

from __future__ import annotations

import json

import pytest

from kernel_app.base.config import load_settings
from kernel_app.kernel.builder import build_kernel
from planners import ActionPlanner, PlanExecutor, PlannerServiceError, SequentialPlanner
from planners.schema import function_names_in
from tests.support.openai_stub import Failure

GOAL = "Tomorrow is Valentine's day. I need to come up with a poem. Translate the poem to French."
VALID = json.dumps(
    {
        "steps": [
            {"function": "Writer.ShortPoem", "args": {"input": "Valentine's day"}, "output": "poem"},
            {"function": "Writer.Translate", "args": {"input": "$poem", "language": "French"}, "output": "french"},
        ]
    }
)


def openai_kernel(monkeypatch: pytest.MonkeyPatch, server):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    return build_kernel(load_settings(service="openai", model="gpt-test")).kernel


async def test_malformed_then_valid_is_one_repair_with_json_schema(
    monkeypatch: pytest.MonkeyPatch, openai_server
) -> None:
    malformed = 'Here you go: {"steps": [{"function": "Writer.ShortPoem", "args": {"input": "Valentine'
    openai_server.queue(malformed, VALID)
    kernel = openai_kernel(monkeypatch, openai_server)
    planner = SequentialPlanner(kernel, excluded=["Time"])
    assert planner.uses_structured_output
    plan = await planner.create_plan(GOAL)

    assert plan.functions == ["Writer.ShortPoem", "Writer.Translate"]
    assert len(openai_server.requests) == 2 and len(planner.last_attempts) == 2  # exactly one repair
    assert "incomplete" in str(planner.last_attempts[0].error)
    for request in openai_server.requests:
        body = request.body
        assert request.path == "/v1/chat/completions" and body["model"] == "gpt-test"
        response_format = body["response_format"]
        assert response_format["type"] == "json_schema"
        assert response_format["json_schema"]["name"] == "plan" and response_format["json_schema"]["strict"] is False
        names = function_names_in(response_format["json_schema"]["schema"])
        assert names == planner.catalogue.names and "Time.today" not in names
        assert body["temperature"] in (0.0, 0.5) and body["max_tokens"] == 1000
    repair = openai_server.requests[1].body["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == malformed and "incomplete" in repair[3]["content"]
    assert planner.last_usage.calls == 2 and planner.last_usage.completion_tokens > 0

    openai_server.queue("Roses are red", "Les roses sont rouges")
    result = await PlanExecutor(kernel).execute(plan)
    assert result.result == "Les roses sont rouges"
    assert "response_format" not in openai_server.requests[2].body  # functions run with their own settings


async def test_action_planner_over_http(monkeypatch: pytest.MonkeyPatch, openai_server) -> None:
    openai_server.queue('{"steps": [{"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}]}')
    kernel = openai_kernel(monkeypatch, openai_server)
    plan = await ActionPlanner(kernel).create_plan("What is the sum of 110 and 990?")
    schema = openai_server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["steps"]["maxItems"] == 1
    assert (await PlanExecutor(kernel).execute(plan)).result == "1100"


async def test_http_error_is_a_one_line_planning_error(monkeypatch: pytest.MonkeyPatch, openai_server) -> None:
    openai_server.queue(Failure(400, "model not loaded"))
    kernel = openai_kernel(monkeypatch, openai_server)
    with pytest.raises(PlannerServiceError) as caught:
        await SequentialPlanner(kernel).create_plan(GOAL)
    assert "model not loaded" in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 3 and len(openai_server.requests) == 1  # no repair for a service failure


async def test_lone_surrogates_do_not_break_the_repair_request(monkeypatch: pytest.MonkeyPatch, openai_server) -> None:
    # The stub sends JSON escapes; the openai client reads "\ud83d" back as a lone surrogate, in the
    # answer's text and in a key. The repair request quoting them must still encode and go out.
    bad = VALID.replace('"French"', '"French \ud83d"').replace('"language"', '"lang\udc00"', 1)
    openai_server.queue(bad, VALID)
    kernel = openai_kernel(monkeypatch, openai_server)
    planner = SequentialPlanner(kernel, excluded=["Time"])
    plan = await planner.create_plan(GOAL)
    assert plan.functions == ["Writer.ShortPoem", "Writer.Translate"] and len(openai_server.requests) == 2
    first = str(planner.last_attempts[0].error)
    assert "\\udc00" in first and "\n" not in first  # the key is quoted escaped
    repair = openai_server.requests[1].body["messages"]
    assert "\ufffd" in repair[2]["content"] and "unknown argument" in repair[3]["content"]
