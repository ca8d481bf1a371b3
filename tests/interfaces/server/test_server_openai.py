"""The OpenAI-compatible endpoint, driven by the real ``openai`` client against uvicorn on 127.0.0.1.

The chat model behind the server is the scripted service (able to answer with tool calls, see
tests/support/tool_scripted.py), so the kernel's function calling runs for real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from memories.embedders import HashingEmbedder
from tests.support.server import make_app, running
from tests.support.tool_scripted import ToolScripted, tools

pytestmark = pytest.mark.e2e  # the app served by uvicorn on loopback


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted]]:
    service = ToolScripted()
    with running(make_app(tmp_path, service)) as url:
        yield url, service


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)


def test_models_list_the_kernel_and_the_underlying_model(served: tuple[str, ToolScripted]) -> None:
    url, _ = served
    ids = [model.id for model in client(url).models.list()]
    assert ids == ["kernel-app", "scripted"]
    assert client(url).models.retrieve("kernel-app").owned_by == "kernel-app"


def test_kernel_app_answers_with_a_plugin(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue(tools(("Math-add", {"a": 110, "b": 990})), "The sum is 1100.")
    completion = client(url).chat.completions.create(
        model="kernel-app", messages=[{"role": "user", "content": "What is 110 plus 990?"}]
    )
    assert completion.object == "chat.completion" and completion.model == "kernel-app"
    assert completion.choices[0].message.content == "The sum is 1100."
    assert completion.choices[0].finish_reason == "stop"
    assert service.tool_results[1] == ["1100"]  # the plugin ran and its result went back to the model
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    assert service.requests[0].messages[0]["role"] == "system"  # the kernel's own instructions


def test_streaming_with_the_openai_client(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue(tools(("Math-add", {"a": 2, "b": 3})), "Two plus three is five.")
    stream = client(url).chat.completions.create(
        model="kernel-app",
        messages=[{"role": "user", "content": "2+3?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Two plus three is five."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)


def test_the_stream_is_the_exact_wire_format(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue("Fresh bread daily.")
    body = {"model": "kernel-app", "messages": [{"role": "user", "content": "Why?"}], "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames) and frames[-1] == "data: [DONE]"
    payloads = [json.loads(f[6:]) for f in frames[:-1]]
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [p["choices"][0]["delta"].get("content") for p in payloads[1:-1]] == ["Fresh ", "bread ", "daily."]
    assert payloads[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


def test_the_underlying_model_is_a_plain_pass_through(served: tuple[str, ToolScripted]) -> None:
    url, service = served
    service.queue("Bonjour.")
    completion = client(url).chat.completions.create(
        model="scripted",
        messages=[{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}],
        max_tokens=20,
    )
    assert completion.choices[0].message.content == "Bonjour."
    request = service.requests[-1]
    assert request.messages == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
    ]
    assert service.offered[-1] is None and request.settings["max_tokens"] == 20


def test_errors_are_openai_errors(served: tuple[str, ToolScripted]) -> None:
    url, _ = served
    with pytest.raises(openai.NotFoundError) as unknown:
        client(url).chat.completions.create(model="gpt-nothing", messages=[{"role": "user", "content": "Hi"}])
    assert unknown.value.code == "model_not_found" and "gpt-nothing" in unknown.value.message
    weather = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError, match="client-side tools are not supported"):
        client(url).chat.completions.create(
            model="kernel-app", messages=[{"role": "user", "content": "Hi"}], tools=[weather]
        )
    response = httpx.post(f"{url}/v1/chat/completions", json={"model": "kernel-app"}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert "Traceback" not in response.text


def test_a_failing_model_is_an_error_not_a_traceback(served: tuple[str, ToolScripted]) -> None:
    url, _ = served  # nothing queued: the scripted service fails
    with pytest.raises(openai.APIStatusError) as failed:
        client(url).chat.completions.create(model="kernel-app", messages=[{"role": "user", "content": "Hi"}])
    assert failed.value.status_code == 502 and "no scripted answer" in failed.value.message
    stream = client(url).chat.completions.create(
        model="kernel-app", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="no scripted answer"):
        list(stream)


def test_embeddings_with_the_configured_embedder(served: tuple[str, ToolScripted]) -> None:
    url, _ = served
    result = client(url).embeddings.create(model="kernel-app", input=["a bakery", "a cleaning service"])
    vectors = np.array([item.embedding for item in result.data])
    assert vectors.shape == (2, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = HashingEmbedder(64).embed(["a bakery"])[0]
    assert np.allclose(vectors[0], expected, atol=1e-6)
    floats = client(url).embeddings.create(model=result.model, input="a bakery", encoding_format="float")
    assert np.allclose(floats.data[0].embedding, expected, atol=1e-6)
    with pytest.raises(openai.NotFoundError):
        client(url).embeddings.create(model="text-embedding-3-small", input="x")


def test_api_keys_guard_every_route_but_health(tmp_path: Path) -> None:
    key = "k" * 24
    service = ToolScripted(["Hi there."])
    with running(make_app(tmp_path, service, api_keys=[key])) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        for path in ("/readyz", "/v1/models", "/openapi.json", "/docs"):
            assert httpx.get(f"{url}{path}").status_code == 401, path
        with pytest.raises(openai.AuthenticationError):
            client(url, "wrong").models.list()
        reply = client(url, key).chat.completions.create(
            model="kernel-app", messages=[{"role": "user", "content": "Hello"}]
        )
        assert reply.choices[0].message.content == "Hi there."


def test_prompt_functions_run_only_when_the_server_allows_them(tmp_path: Path, caplog: Any) -> None:
    poem = tools(("Writer-ShortPoem", {"input": "bread"}))
    # refused: the model is told (and the log says) which flag lets them run; nobody "did not approve"
    for allowed, expected in ((False, "only when started with --approve-model-functions"), (True, "Warm bread")):
        service = ToolScripted([poem, "Warm bread at dawn", "Here it is."])
        with running(make_app(tmp_path / str(allowed), service, approve_model_functions=allowed)) as url:
            client(url).chat.completions.create(model="kernel-app", messages=[{"role": "user", "content": "A poem"}])
        results = [r for r in service.tool_results if r]
        assert expected in results[0][0], (allowed, results)
    assert any("--approve-model-functions" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_a_function_with_an_effect_never_runs_over_the_openai_api(tmp_path: Path) -> None:
    save = tools(("memory-save", {"collection": "notes", "input": "bread"}))
    service = ToolScripted([save, "Not saved."])
    with running(make_app(tmp_path, service, approve_model_functions=True)) as url:
        answer = client(url).chat.completions.create(
            model="kernel-app", messages=[{"role": "user", "content": "Save a note: bread"}]
        )
    assert answer.choices[0].message.content == "Not saved."
    [result] = next(r for r in service.tool_results if r)
    assert "no one can approve that" in result, result
