"""A stand-in for llama.cpp's server (``xllamacpp.Server``) behind the real embedded chat service.

``scripted_llama`` is the fixture ``scripted`` for the modules that import it
(``from tests.support.fake_llama import scripted_llama``): call it with the streamed answers
(``llama_chunks(...)``) to get the service and the fake server.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

from kernel_app.providers.llama.service import LoadedModel, LocalLlamaChatCompletion

# One tool in OpenAI's shape, as semantic-kernel sends Math.add.
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "Math-add",
        "description": "Add two numbers",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]},
    },
}


def llama_chunks(text: str = "", tool_calls: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """What llama.cpp's server streams for one answer: role, content pieces, finish, usage."""
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}]
    for start in range(0, len(text), 4):
        chunks.append({"choices": [{"index": 0, "delta": {"content": text[start : start + 4]}}]})
    if tool_calls:
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": tool_calls}}]})
    finish = "tool_calls" if tool_calls else "stop"
    chunks.append({"choices": [{"index": 0, "finish_reason": finish, "delta": {}}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 7}, "timings": {}})
    return chunks


class ScriptedServer:
    """Stands in for ``xllamacpp.Server``: records each request and streams the next scripted answer."""

    def __init__(self, answers: list[list[dict[str, Any]]]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []

    def handle_chat_completions(self, body: dict[str, Any], callback: Any) -> None:
        self.requests.append(json.loads(json.dumps(body)))  # as llama.cpp would read it: plain JSON
        for chunk in self.answers.pop(0):
            if callback(chunk):
                return


@pytest.fixture(name="scripted")
def scripted_llama(tmp_path, monkeypatch: pytest.MonkeyPatch):
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("xllamacpp is not installed")
    model = tmp_path / "fake.gguf"
    model.write_bytes(b"GGUF")

    def make(answers: list[list[dict[str, Any]]]) -> tuple[LocalLlamaChatCompletion, ScriptedServer]:
        server = ScriptedServer(answers)
        monkeypatch.setattr(LocalLlamaChatCompletion, "model", lambda self: LoadedModel(server=server, load_seconds=0))
        return LocalLlamaChatCompletion(str(model), service_id="local"), server

    return make
