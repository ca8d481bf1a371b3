"""The embedded chat model (SmolLM2-135M-Instruct on llama.cpp) through semantic-kernel, for real.

The model tests need the [local] extra and are marked ``local_model``; the request-mapping tests at
the end need only semantic-kernel. Answers are kept short (max_tokens <= 48): two CPU cores suffice.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from semantic_kernel import Kernel
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import ChatHistory
from semantic_kernel.contents.utils.finish_reason import FinishReason
from semantic_kernel.exceptions import ServiceInvalidExecutionSettingsError
from semantic_kernel.functions import KernelArguments
from semantic_kernel.prompt_template import PromptTemplateConfig

from kernel_app.services.local_llama import (
    LocalLlamaChatCompletion,
    LocalLlamaPromptExecutionSettings,
    llama_request,
    llama_response_format,
)
from kernel_app.usage import Usage


def _llama_importable() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


needs_llama = pytest.mark.skipif(
    not _llama_importable(),
    reason="llama-cpp-python is not importable (the [local] extra: pip install -e '.[local]')",
)
local_model = pytest.mark.local_model

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
SHORT = {"max_tokens": 32, "temperature": 0.0}


@pytest.fixture(scope="module")
def service() -> LocalLlamaChatCompletion:
    return LocalLlamaChatCompletion(service_id="local")


def _history(text: str) -> ChatHistory:
    history = ChatHistory()
    history.add_user_message(text)
    return history


# region the model, for real


@local_model
@needs_llama
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
@needs_llama
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
    assert "".join(texts).strip()
    # llama-cpp-python gives no usage when streaming: the service counts it, on the last chunk.
    last = chunks[-1]
    assert last.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    streamed = last.metadata["usage"]
    assert streamed.completion_tokens == len(texts)
    whole = await service.get_chat_message_content(_history(prompt), settings)
    assert whole is not None
    assert streamed.prompt_tokens == whole.metadata["usage"].prompt_tokens


@local_model
@needs_llama
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
@needs_llama
@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_a_schema_llama_cpp_cannot_compile_is_an_error_not_a_crash(
    service: LocalLlamaChatCompletion, streaming: bool
) -> None:
    # llama-cpp-python 0.3.x passes the NULL sampler of a rejected grammar on and the process dies
    # (SIGSEGV); kernel_app.services.local_llama.check_grammar turns it into this error.
    too_long = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 1500}}, "required": ["a"]}
    settings = LocalLlamaPromptExecutionSettings(
        **SHORT, response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": too_long}}
    )
    with pytest.raises(ServiceInvalidExecutionSettingsError, match="cannot compile this JSON schema"):
        if streaming:
            async for _ in service.get_streaming_chat_message_content(_history("hi"), settings):
                pass
        else:
            await service.get_chat_message_content(_history("hi"), settings)
    # The model is still usable afterwards.
    answer = await service.get_chat_message_content(_history("Say hello."), LocalLlamaPromptExecutionSettings(**SHORT))
    assert answer is not None and answer.content


@local_model
@needs_llama
def test_the_model_loads_once_per_process() -> None:
    # A fresh cache key (n_ctx), then several services at once: one Llama instance for all.
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda i: LocalLlamaChatCompletion(n_ctx=1024, service_id=f"s{i}").model(), range(4)))
    assert all(model is models[0] for model in models)
    first, second = LocalLlamaChatCompletion(service_id="a"), LocalLlamaChatCompletion(service_id="b")
    assert first.model().llama is second.model().llama
    assert first.model().llama is not models[0].llama  # another n_ctx is another model


@local_model
@needs_llama
async def test_concurrent_requests_are_serialised_and_the_loop_stays_free(
    service: LocalLlamaChatCompletion,
) -> None:
    other = LocalLlamaChatCompletion(service_id="other")
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


# endregion

# region request mapping (no model)


def test_generic_settings_convert_to_the_local_settings_class() -> None:
    generic = PromptExecutionSettings(
        service_id="default",
        extension_data={"max_tokens": 24, "temperature": 0.3, "stop": ["\n\n"], "seed": 7, "unknown": 1},
    )
    converted = LocalLlamaPromptExecutionSettings.from_prompt_execution_settings(generic)
    assert (converted.max_tokens, converted.temperature, converted.stop, converted.seed) == (24, 0.3, ["\n\n"], 7)
    assert llama_request(converted) == {"max_tokens": 24, "temperature": 0.3, "stop": ["\n\n"], "seed": 7}
    assert llama_request(LocalLlamaPromptExecutionSettings()) == {"max_tokens": 512}


def test_response_format_shapes_map_to_llama_cpp_json_mode() -> None:
    wanted = {"type": "json_object", "schema": SCHEMA}
    assert llama_response_format({"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}}) == wanted
    assert llama_response_format({"type": "json_object", "schema": SCHEMA}) == wanted
    assert llama_response_format({"type": "json_object"}) == {"type": "json_object"}
    assert llama_response_format({"type": "text"}) is None
    assert llama_response_format(None) is None
    with pytest.raises(ServiceInvalidExecutionSettingsError):
        llama_response_format({"type": "xml"})
    with pytest.raises(ServiceInvalidExecutionSettingsError):
        llama_response_format({"type": "json_schema", "json_schema": {"name": "no schema"}})


# endregion
