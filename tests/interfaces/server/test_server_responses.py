"""The Responses API (``/v1/responses``), driven by the real ``openai`` client against uvicorn on 127.0.0.1.

The chat model behind the server is the scripted service (queued answers and tool calls), so the kernel's
function calling runs for real: a scripted ``Math-add`` call runs ``Math.add`` and its result goes back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server import create_app
from memories.embedders import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import make_app, running
from tests.support.tool_scripted import ToolScripted, tools

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

pytestmark = pytest.mark.e2e  # the app served by uvicorn on loopback


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted]]:
    service = ToolScripted()
    with running(make_app(tmp_path, service)) as url:
        yield url, service


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)


def test_kernel_app_answers_from_math_add(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue(tools(("Math-add", {"a": 2, "b": 3})), "2 + 3 is 5.")
    response = client(url).responses.create(model="kernel-app", input="what is 2+3")
    assert response.object == "response" and response.status == "completed" and response.model == "kernel-app"
    assert response.id.startswith("resp_") and response.output_text == "2 + 3 is 5."
    assert service.tool_results[1] == ["5"]  # the real function ran and its result went back to the model
    call, result, message = response.output
    assert call.type == "function_call" and call.name == "Math-add" and json.loads(call.arguments) == {"a": 2, "b": 3}
    assert result.type == "function_call_output" and result.call_id == call.call_id and result.output == "5"
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert response.usage is not None and response.usage.output_tokens == 5
    assert response.usage.total_tokens == response.usage.input_tokens + 5
    assert service.requests[0].messages[0]["role"] == "system"  # the kernel's own instructions


def test_streamed_events_in_order_with_the_stream_helper(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue(tools(("Math-add", {"a": 2, "b": 3})), "Two plus three is five.")
    with client(url).responses.stream(model="kernel-app", input="what is 2+3") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # the function_call
        "response.output_item.done",
        "response.output_item.added",  # its function_call_output
        "response.output_item.done",
        "response.output_item.added",  # the answer
        "response.content_part.added",
        *["response.output_text.delta"] * 5,  # the scripted service streams word by word
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    added, done = events[2], events[3]
    assert added.item.status == "in_progress" and done.item.status == "completed" and added.item.id == done.item.id
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Two plus three is five." == final.output_text
    assert [item.type for item in final.output] == ["function_call", "function_call_output", "message"]
    assert final.output[1].output == "5" and final.status == "completed"
    assert {e.output_index for e in events if e.type == "response.output_text.delta"} == {2}


def test_create_with_stream_true_and_the_exact_wire_format(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue("Fresh bread daily.")
    events = list(client(url).responses.create(model="kernel-app", input="Why?", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert events[-1].response.output_text == "Fresh bread daily."
    body = {"model": "kernel-app", "input": "Why?", "stream": True}
    service.queue("Fresh bread daily.")
    with httpx.stream("POST", f"{url}/v1/responses", json=body, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    for text in frames:  # "event: TYPE" then "data: JSON" whose type is TYPE, as OpenAI sends them
        name, data = text.split("\n")
        assert name.startswith("event: ") and json.loads(data.removeprefix("data: "))["type"] == name[7:]
    delta = json.loads(frames[4].split("\n")[1][6:])
    assert set(delta) == {"type", "sequence_number", "item_id", "output_index", "content_index", "delta", "logprobs"}


def test_previous_response_id_continues_the_stored_conversation(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue(tools(("Math-add", {"a": 2, "b": 3})), "It is 5.", "Ten.", "Six.")
    first = client(url).responses.create(model="kernel-app", input="what is 2+3")
    second = client(url).responses.create(model="kernel-app", input="and doubled?", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text == "Ten."
    prompt = service.requests[2].messages
    assert [m["content"] for m in prompt if m["role"] == "user"] == ["what is 2+3", "and doubled?"]
    assert {"role": "assistant", "content": "It is 5."} in prompt and service.requests[2].function_results == ["5"]
    # OpenAI's branching: the first response is continued again, without the second's turn
    branch = client(url).responses.create(model="kernel-app", input="plus one?", previous_response_id=first.id)
    assert branch.output_text == "Six." and "and doubled?" not in service.requests[3].prompt
    stored = client(url).responses.retrieve(second.id)
    assert stored.id == second.id and stored.output_text == "Ten." and stored.model == "kernel-app"
    # each stored response is a conversation of the store: the REST API lists it
    listed = httpx.get(f"{url}/v1/conversations", timeout=30).json()
    assert {first.id, second.id, branch.id} <= {c["id"] for c in listed["data"]}


def test_instructions_and_settings_apply_to_their_response_only(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue("Bonjour.", "Salut.")
    first = client(url).responses.create(
        model="kernel-app", input="Hello", instructions="Answer in French.", temperature=0.3, max_output_tokens=40
    )
    request = service.requests[0]
    assert {"role": "system", "content": "Answer in French."} in request.messages
    assert request.settings["max_tokens"] == 40 and request.settings["temperature"] == 0.3
    assert first.instructions == "Answer in French." and first.max_output_tokens == 40
    client(url).responses.create(model="kernel-app", input="Again", previous_response_id=first.id)
    assert "Answer in French." not in service.requests[1].prompt


def test_input_items_and_store_false(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue("Noted.", "Still 5.")
    items: list[Any] = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "Remember "}, {"type": "input_text", "text": "5"}]},
    ]
    unstored = client(url).responses.create(model="kernel-app", input=items, store=False)
    assert unstored.output_text == "Noted."
    assert [m for m in service.requests[0].messages if m["role"] != "system" or m["content"] == "Be brief."] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Remember 5"},
    ]
    with pytest.raises(openai.NotFoundError):  # not stored: nothing to continue or fetch
        client(url).responses.retrieve(unstored.id)
    # a stateless client sends the output back as input: the calls and results are understood as such
    earlier = [
        {"role": "user", "content": "what is 2+3"},
        {"type": "function_call", "call_id": "call_1", "name": "Math-add", "arguments": '{"a": 2, "b": 3}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "5"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "It is 5.", "annotations": []}]},
        {"role": "user", "content": "still?"},
    ]
    again = client(url).responses.create(model="kernel-app", input=earlier, store=False)
    assert again.output_text == "Still 5." and service.requests[1].function_results == ["5"]


def test_errors_are_openai_errors_naming_the_field(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    with pytest.raises(openai.NotFoundError) as unknown:
        client(url).responses.create(model="kernel-app", input="Hi", previous_response_id="resp_nothing")
    error = unknown.value.body
    assert isinstance(error, dict) and error["code"] == "previous_response_not_found"
    assert error["param"] == "previous_response_id" and "resp_nothing" in error["message"]
    with pytest.raises(openai.BadRequestError) as tools_error:
        client(url).responses.create(model="kernel-app", input="Hi", tools=[{"type": "web_search"}])
    assert "tools" in tools_error.value.message and "web_search" in tools_error.value.message
    assert isinstance(tools_error.value.body, dict) and tools_error.value.body["param"] == "tools"
    with pytest.raises(openai.NotFoundError, match="gpt-nothing"):
        client(url).responses.create(model="gpt-nothing", input="Hi")
    with pytest.raises(openai.NotFoundError):
        client(url).responses.retrieve("resp_nothing")
    bad = {"model": "kernel-app", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}
    response = httpx.post(f"{url}/v1/responses", json=bad, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == "input[0].content[0].type"
    last = {"model": "kernel-app", "input": [{"role": "assistant", "content": "Hi"}]}
    assert "last item must be a user message" in httpx.post(f"{url}/v1/responses", json=last, timeout=30).text
    assert service.requests == []  # nothing reached the model


def test_a_failing_model_fails_the_response_and_stores_nothing(served: tuple[str, ToolScripted]) -> None:
    url, _ = served  # nothing queued: the scripted service fails
    with pytest.raises(openai.APIStatusError) as failed:
        client(url).responses.create(model="kernel-app", input="Hi")
    assert failed.value.status_code == 502 and "no scripted answer" in failed.value.message
    events = list(client(url).responses.create(model="kernel-app", input="Hi", stream=True))
    assert events[-1].type == "response.failed" and events[-1].response.status == "failed"
    assert events[-1].response.error is not None and "no scripted answer" in events[-1].response.error.message
    listed = httpx.get(f"{url}/v1/conversations", timeout=30).json()["data"]
    assert listed == []  # a failed response cannot be continued


def test_the_underlying_model_is_a_plain_pass_through(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue("Bonjour.")
    response = client(url).responses.create(model="scripted", input="Hello", instructions="Answer in French.")
    assert response.output_text == "Bonjour." and response.model == "scripted"
    assert service.requests[0].messages == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
    ]
    assert service.offered[-1] is None  # no tools offered


def test_a_function_with_an_effect_is_refused_as_on_chat_completions(tmp_path: Path) -> None:
    save = tools(("memory-save", {"collection": "notes", "input": "bread"}))
    service = ToolScripted([save, "Not saved."])
    with running(make_app(tmp_path, service)) as url:
        response = client(url).responses.create(model="kernel-app", input="Save a note: bread")
    assert response.output_text == "Not saved."
    result = next(item for item in response.output if item.type == "function_call_output")
    assert "no one can approve that" in result.output


def test_api_keys_guard_the_responses_api(tmp_path: Path) -> None:
    key = "k" * 24
    service = ToolScripted(["Hi there."])
    with running(make_app(tmp_path, service, api_keys=[key])) as url:
        with pytest.raises(openai.AuthenticationError):
            client(url, "wrong").responses.create(model="kernel-app", input="Hello")
        assert client(url, key).responses.create(model="kernel-app", input="Hello").output_text == "Hi there."


@contextmanager
def _on_postgres(folder: Path, database_url: str, service: ToolScripted) -> Iterator[str]:
    app: Any = create_app(
        Settings(memory_dir=folder, database_url=database_url), chat_service=service, embedder=HashingEmbedder(64)
    )
    assert app.state.kernel_app.store.backend == "postgresql"
    try:
        with running(app) as url:
            yield url
    finally:
        app.state.kernel_app.store.close()


def test_a_response_continues_on_another_server(tmp_path: Path, postgres_url: str) -> None:
    service_a = ToolScripted([tools(("Math-add", {"a": 2, "b": 3})), "It is 5."])
    service_b = ToolScripted(["Doubled, 10."])
    with (
        _on_postgres(tmp_path / "a", postgres_url, service_a) as a,
        _on_postgres(tmp_path / "b", postgres_url, service_b) as b,
    ):
        first = client(a).responses.create(model="kernel-app", input="what is 2+3")
        second = client(b).responses.create(model="kernel-app", input="doubled?", previous_response_id=first.id)
        assert second.output_text == "Doubled, 10."
        prompt = service_b.requests[0]
        assert "what is 2+3" in prompt.prompt and "It is 5." in prompt.prompt and prompt.function_results == ["5"]
        assert client(a).responses.retrieve(second.id).output_text == "Doubled, 10."


def test_each_response_frees_its_place_at_the_model(tmp_path: Path) -> None:
    service = ToolScripted(["One.", "Two.", "Three."])
    with running(make_app(tmp_path, service, concurrency=1, queue=0)) as url:
        answers = [client(url).responses.create(model="kernel-app", input=f"{n}?").output_text for n in range(3)]
    assert answers == ["One.", "Two.", "Three."]  # with one place and no queue, a held place is a 429


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_delete_removes_a_response_as_openai_does(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    service = ToolScripted(["It is 5.", "Ten.", "Eleven."])
    if backend == "postgresql":
        serving = _on_postgres(tmp_path, request.getfixturevalue("postgres_url"), service)
    else:
        serving = running(make_app(tmp_path, service))
    with serving as url:
        openai_client = client(url)
        first = openai_client.responses.create(model="kernel-app", input="what is 2+3")
        second = openai_client.responses.create(model="kernel-app", input="doubled?", previous_response_id=first.id)
        assert openai_client.responses.delete(first.id) is None  # the client's delete returns nothing
        wire = httpx.delete(f"{url}/v1/responses/{second.id}", timeout=30)
        assert wire.status_code == 200 and wire.json() == {"id": second.id, "object": "response", "deleted": True}
        with pytest.raises(openai.NotFoundError) as gone:
            openai_client.responses.retrieve(first.id)
        assert gone.value.body == {
            "message": f"Response with id '{first.id}' not found.",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
        with pytest.raises(openai.NotFoundError) as continued:
            openai_client.responses.create(model="kernel-app", input="plus one?", previous_response_id=first.id)
        assert continued.value.body["code"] == "previous_response_not_found"  # pyright: ignore[reportIndexIssue]
        assert continued.value.body["param"] == "previous_response_id"  # pyright: ignore[reportIndexIssue]
        with pytest.raises(openai.NotFoundError):
            openai_client.responses.delete(first.id)  # twice: OpenAI's 404, nothing else deleted
        conversation = httpx.post(f"{url}/v1/conversations", json={}, timeout=30).json()["id"]
        assert httpx.delete(f"{url}/v1/responses/{conversation}", timeout=30).status_code == 404  # not a response
        assert httpx.get(f"{url}/v1/conversations/{conversation}", timeout=30).status_code == 200
    assert len(service.requests) == 2  # the refused continuation never reached the model
