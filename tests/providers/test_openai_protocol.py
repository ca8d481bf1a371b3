"""The real `openai` client, driven through semantic-kernel, against an OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import time

import pytest

from kernel_app.base.config import load_settings
from kernel_app.base.errors import ConfigError
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.providers import create_chat_service
from tests.support.cli import run_cli
from tests.support.openai_stub import Failure

pytestmark = pytest.mark.e2e  # a loopback OpenAI-compatible server, and kernel-app in a subprocess


def openai_kernel(monkeypatch: pytest.MonkeyPatch, server, model: str | None = None):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    settings = load_settings(service="openai", model=model)
    return build_kernel(settings)


async def test_prompt_function_over_http(monkeypatch: pytest.MonkeyPatch, openai_server) -> None:
    openai_server.queue("| Strengths | Answer |")
    built = openai_kernel(monkeypatch, openai_server, model="my-model")
    swot = resolve_function(built.kernel, "BusinessThinking.SWOT")
    result = await run_chain(built.kernel, [swot], input="a pizza shop")
    assert result.result == "| Strengths | Answer |"
    request = openai_server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-key"
    assert request.body["model"] == "my-model"
    assert request.body["max_tokens"] == 1000  # from the plugin's config.json
    assert "a pizza shop" in request.prompt
    assert result.usage.completion_tokens == 5 and result.usage.prompt_tokens > 0  # the stub counts words


async def test_chain_over_http(monkeypatch: pytest.MonkeyPatch, openai_server) -> None:
    openai_server.queue("Roses are red", "Les roses sont rouges")
    built = openai_kernel(monkeypatch, openai_server)
    chain = [resolve_function(built.kernel, n) for n in ("Writer.ShortPoem", "Writer.Translate")]
    result = await run_chain(built.kernel, chain, input="Valentine's day", variables={"language": "French"})
    assert result.result == "Les roses sont rouges"
    assert "Roses are red" in openai_server.requests[1].prompt and "French" in openai_server.requests[1].prompt
    assert result.usage.calls == 2


async def test_streaming_over_http(monkeypatch: pytest.MonkeyPatch, openai_server) -> None:
    openai_server.queue("a short summary of it")
    built = openai_kernel(monkeypatch, openai_server)
    chunks: list[str] = []
    summarize = resolve_function(built.kernel, "Writer.Summarize")
    result = await run_chain(built.kernel, [summarize], input="long text", on_chunk=chunks.append)
    assert openai_server.requests[0].body["stream"] is True
    assert len(chunks) >= 5 and "".join(chunks) == "a short summary of it" == result.result
    assert result.usage.completion_tokens == 5


def test_cli_run_against_openai_compatible_server(openai_server) -> None:
    openai_server.queue("| S | W | O | T |")
    proc = run_cli(
        "run",
        "BusinessThinking.SWOT",
        "--input",
        "a pizza shop",
        "--json",
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=openai_server.base_url,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["result"] == "| S | W | O | T |"
    assert payload["usage"]["completion_tokens"] == 9 and payload["usage"]["total_tokens"] > 9
    # No key but a base URL (Ollama-style): a placeholder key is sent, the server does not care.
    assert openai_server.requests[0].headers["authorization"] == "Bearer not-needed"


def test_cli_stdin_chain_and_stream(openai_server) -> None:
    openai_server.queue("shifted swot", "simple words")
    proc = run_cli(
        "run",
        "BusinessThinking.ShiftDomain",
        "BusinessThinking.ChangeAudience",
        "--stream",
        "--var",
        "domain=cleaning services",
        "--var",
        "level=child",
        input="| a swot |",
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=openai_server.base_url,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("simple words")
    assert "| a swot |" in openai_server.requests[0].prompt
    assert "shifted swot" in openai_server.requests[1].prompt


def test_cli_server_error_is_one_line(openai_server) -> None:
    openai_server.queue(Failure(400, "model not loaded"))
    proc = run_cli(
        "run", "Writer.Summarize", "--input", "x", KERNEL_APP_SERVICE="openai", OPENAI_BASE_URL=openai_server.base_url
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: Writer.Summarize failed:") and "model not loaded" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_openai_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        create_chat_service(load_settings(service="openai"))
    proc = run_cli("--service", "openai", "run", "Writer.Summarize", "--input", "x")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "export OPENAI_API_KEY" in proc.stderr


def test_missing_azure_endpoint_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="AZURE_OPENAI_ENDPOINT"):
        create_chat_service(load_settings(service="azure", model="gpt4o"))


async def test_azure_with_api_key(monkeypatch: pytest.MonkeyPatch, openai_server) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", openai_server.root_url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key")
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "2024-10-21")
    openai_server.queue("done")
    built = build_kernel(load_settings(service="azure", model="my-deployment"))
    result = await run_chain(built.kernel, [resolve_function(built.kernel, "Writer.Summarize")], input="x")
    assert result.result == "done"
    request = openai_server.requests[0]
    assert request.path == "/openai/deployments/my-deployment/chat/completions"
    assert "api-version=2024-10-21" in request.query
    assert request.headers["api-key"] == "azure-key"


class FakeAsyncCredential:
    """An async azure-identity credential that hands out a known token and counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: object):
        from azure.core.credentials import AccessToken

        assert scopes == ("https://cognitiveservices.azure.com/.default",)
        self.calls += 1
        return AccessToken(f"entra-token-{self.calls}", int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> FakeAsyncCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


async def test_azure_with_entra_id_sends_the_bearer_token(monkeypatch: pytest.MonkeyPatch, openai_server) -> None:
    from semantic_kernel import Kernel

    from kernel_app.providers.openai_provider import create_azure

    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", openai_server.root_url)
    credential = FakeAsyncCredential()
    service = create_azure(load_settings(service="azure", model="dep"), credential=credential)
    kernel = Kernel()
    kernel.add_service(service)
    openai_server.queue("first", "second")
    assert str(await kernel.invoke_prompt("hello")) == "first"
    assert str(await kernel.invoke_prompt("again")) == "second"
    headers = [r.headers for r in openai_server.requests]
    assert all(h["authorization"].startswith("Bearer entra-token-") for h in headers)
    assert all("api-key" not in h for h in headers)
    assert credential.calls >= 1
