"""OpenTelemetry: setup, and the GenAI semantic-convention names every layer's spans use.

Off unless configured: no provider is installed, :func:`active` is False and the instrumented code (the
model-call wrapper, the function-invocation filter, the conversation engine, the plan executor) skips its
spans, so telemetry costs one check per call. On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (OTLP/HTTP,
the ``telemetry`` extra) or with ``--trace`` (spans to stderr; ``KERNEL_APP_TRACE=1`` carries it to the
server's worker processes); tests and host applications :func:`install` their own providers.

The names are those Microsoft Agent Framework emits (``chat {model}``, ``execute_tool {Plugin.Function}``,
``invoke_agent {name}``; ``gen_ai.provider.name``, plural ``gen_ai.response.finish_reasons``...).
semantic-kernel 1.45's own diagnostics (``SEMANTICKERNEL_EXPERIMENTAL_GENAI_ENABLE_OTEL_DIAGNOSTICS``) are
deliberately never turned on: they use the older names (``gen_ai.system``, singular ``finish_reason``) and
would duplicate every model and function span.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kernel_app.base.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

T = TypeVar("T")

INSTRUMENTATION = "kernel_app"
AGENT_NAME = "kernel-app"

# Environment
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
TRACE_ENV = "KERNEL_APP_TRACE"
# The opt-in the OpenTelemetry GenAI instrumentations name; contents can hold personal data.
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# Span and metric attributes (GenAI semantic conventions)
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CONVERSATION_ID = "gen_ai.conversation.id"
AGENT = "gen_ai.agent.name"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"
# Who the turn is for: the caller's principal (``entra:<tenant>:<object id>``, ``key:<hash>``, ``local``),
# pseudonymous and never a token, so one user's turns can be told from another's in a shared server's traces.
ENDUSER_ID = "enduser.id"
OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"

# Context keys: what a span further down needs from the turn that started it.
_CONVERSATION_KEY = "kernel_app.conversation_id"
_TOOL_CALL_KEY = "kernel_app.tool_call_id"
# A plain context variable rather than OpenTelemetry's context: the server sets it for every request,
# telemetry on or off, and this costs no import when it is off.
_enduser: ContextVar[str] = ContextVar("kernel_app.enduser", default="")


@dataclass
class _State:
    tracer: Tracer
    duration: Histogram
    tokens: Histogram
    shutdown: tuple[Any, ...] = ()


_state: _State | None = None


def active() -> bool:
    """True when spans are recorded; instrumented code checks this first, so off costs one call."""
    return _state is not None


def tracer() -> Tracer:
    if _state is None:
        raise RuntimeError("telemetry is off: check active() first")
    return _state.tracer


def capture_contents() -> bool:
    """Message contents go on spans only when opted in (they can hold personal data)."""
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in ("1", "true", "yes")


def install(tracer_provider: TracerProvider, meter_provider: MeterProvider, *, shutdown: bool = False) -> None:
    """Record spans and metrics with these providers (tests' in-memory ones, or a host application's).

    Our own reference rather than OpenTelemetry's global providers, which can be set once per process.
    ``shutdown``: flush and shut them down in :func:`uninstall` (the providers :func:`configure` made)."""
    meter = meter_provider.get_meter(INSTRUMENTATION)
    global _state
    _state = _State(
        tracer=tracer_provider.get_tracer(INSTRUMENTATION),
        duration=meter.create_histogram(
            OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=[
                0.01,
                0.02,
                0.04,
                0.08,
                0.16,
                0.32,
                0.64,
                1.28,
                2.56,
                5.12,
                10.24,
                20.48,
                40.96,
                81.92,
            ],
        ),
        tokens=meter.create_histogram(
            TOKEN_USAGE,
            unit="{token}",
            description="Measures number of input and output tokens used",
            explicit_bucket_boundaries_advisory=[
                1,
                4,
                16,
                64,
                256,
                1024,
                4096,
                16384,
                65536,
                262144,
                1048576,
                4194304,
                16777216,
                67108864,
            ],
        ),
        shutdown=(tracer_provider, meter_provider) if shutdown else (),
    )


def uninstall() -> None:
    """Stop recording; providers :func:`configure` made are flushed and shut down."""
    global _state
    state, _state = _state, None
    for provider in state.shutdown if state else ():
        with contextlib.suppress(Exception):  # an unreachable collector must not fail the exit
            provider.shutdown()


def wanted(console: bool = False) -> bool:
    return (
        console
        or os.environ.get(TRACE_ENV) == "1"
        or bool(os.environ.get(ENDPOINT_ENV) or os.environ.get(TRACES_ENDPOINT_ENV))
    )


def configure(*, console: bool = False) -> bool:
    """Turn telemetry on from the environment (and ``--trace``); False, installing nothing, when not asked.

    Idempotent: the server's workers call it again in their own processes."""
    if _state is not None:
        return True
    console = console or os.environ.get(TRACE_ENV) == "1"
    otlp = bool(os.environ.get(ENDPOINT_ENV) or os.environ.get(TRACES_ENDPOINT_ENV))
    if not (console or otlp):
        return False
    import atexit

    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over our default name.
    name = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": AGENT_NAME}
    resource = Resource.create(name)
    tracer_provider = SdkTracerProvider(resource=resource)
    readers: list[MetricReader] = []
    if otlp:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as error:
            raise ConfigError(
                f"{ENDPOINT_ENV} is set but the OTLP exporter is not installed: "
                "pip install -e '.[telemetry]' (or unset the variable)"
            ) from error
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    if console:
        import sys

        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # stderr: stdout carries the command's own output (--json, pipes).
        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    meter_provider = SdkMeterProvider(resource=resource, metric_readers=readers)
    install(tracer_provider, meter_provider, shutdown=True)
    atexit.register(uninstall)
    return True


# region who calls


@contextlib.contextmanager
def as_enduser(principal: str) -> Iterator[None]:
    """Turns and plans begun inside are for ``principal`` (the server wraps each request in it)."""
    token = _enduser.set(principal)
    try:
        yield
    finally:
        _enduser.reset(token)


def enduser() -> dict[str, str]:
    """``{enduser.id: principal}`` for a turn's or a plan's span; empty outside a request (CLI, REPL)."""
    principal = _enduser.get()
    return {ENDUSER_ID: principal} if principal else {}


# endregion

# region spans across awaits


@dataclass
class Scope:
    """A span begun but not made current: code that yields between its awaits (the engine's async
    generators) enters :meth:`within` only around each await, as attaching a context across a ``yield``
    detaches it in another context (OpenTelemetry then logs "Failed to detach context")."""

    span: Span
    context: Context

    @contextlib.contextmanager
    def within(self) -> Iterator[None]:
        from opentelemetry import context

        token = context.attach(self.context)
        try:
            yield
        finally:
            context.detach(token)

    def fail(self, error_type: str, description: str = "") -> None:
        from opentelemetry.trace import Status, StatusCode

        self.span.set_attribute(ERROR_TYPE, error_type)
        self.span.set_status(Status(StatusCode.ERROR, description))

    def end(self) -> None:
        self.span.end()


def begin(name: str, attributes: dict[str, Any], *, conversation_id: str = "") -> Scope | None:
    """A span (child of the current one); None when telemetry is off. ``conversation_id`` is also handed
    to the spans under it (model calls read it with :func:`conversation_id`)."""
    if _state is None:
        return None
    from opentelemetry import context, trace

    span = _state.tracer.start_span(name, attributes=attributes)
    ctx = trace.set_span_in_context(span)
    if conversation_id:
        ctx = context.set_value(_CONVERSATION_KEY, conversation_id, ctx)
    return Scope(span, ctx)


def within(scope: Scope | None) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext() if scope is None else scope.within()


async def each_within(scope: Scope, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """An async iterator's items, the scope's span current while each is produced, never across our yield."""
    iterator = items.__aiter__()
    while True:
        with scope.within():
            try:
                item = await iterator.__anext__()
            except StopAsyncIteration:
                return
        yield item


def conversation_id() -> str:
    from opentelemetry import context

    return str(context.get_value(_CONVERSATION_KEY) or "")


def tool_call(call_id: str) -> contextlib.AbstractContextManager[None]:
    """The model's id for the function call about to run, for its ``execute_tool`` span."""
    if _state is None:
        return contextlib.nullcontext()  # off: not even a generator frame
    return _attached(_TOOL_CALL_KEY, call_id)


@contextlib.contextmanager
def _attached(key: str, value: object) -> Iterator[None]:
    from opentelemetry import context

    token = context.attach(context.set_value(key, value))
    try:
        yield
    finally:
        context.detach(token)


@contextlib.contextmanager
def take_tool_call_id() -> Iterator[str]:
    """The call id given by :func:`tool_call`, cleared for the functions this one calls in turn."""
    from opentelemetry import context

    call_id = str(context.get_value(_TOOL_CALL_KEY) or "")
    if not call_id:
        yield ""
        return
    token = context.attach(context.set_value(_TOOL_CALL_KEY, None))
    try:
        yield call_id
    finally:
        context.detach(token)


# endregion


def record_operation(seconds: float, attributes: dict[str, Any], input_tokens: int, output_tokens: int) -> None:
    """The two GenAI client histograms for one model call."""
    if _state is None:
        return
    _state.duration.record(seconds, attributes)
    base = {k: v for k, v in attributes.items() if k != ERROR_TYPE}
    if input_tokens:
        _state.tokens.record(input_tokens, {**base, TOKEN_TYPE: "input"})
    if output_tokens:
        _state.tokens.record(output_tokens, {**base, TOKEN_TYPE: "output"})
