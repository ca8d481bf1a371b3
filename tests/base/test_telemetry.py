"""Telemetry setup: off unless asked, the console with --trace, OTLP with the endpoint (or a one-line error
naming the extra), contents only when opted in."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from kernel_app.base import telemetry
from kernel_app.base.errors import ConfigError

ASKING = (telemetry.ENDPOINT_ENV, telemetry.TRACES_ENDPOINT_ENV, telemetry.TRACE_ENV)


@pytest.fixture(autouse=True)
def unasked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ASKING:
        monkeypatch.delenv(name, raising=False)
    yield
    telemetry.uninstall()


def test_off_unless_asked() -> None:
    assert telemetry.configure() is False
    assert not telemetry.active() and telemetry.begin("chat m", {}) is None
    with telemetry.within(None), telemetry.tool_call("call_1"):
        pass  # nothing to attach
    with pytest.raises(RuntimeError, match="telemetry is off"):
        telemetry.tracer()


def test_trace_prints_spans_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert telemetry.configure(console=True) is True
    assert telemetry.configure() is True  # again (a server worker): the same setup
    scope = telemetry.begin("chat tiny", {telemetry.OPERATION: "chat"}, conversation_id="c1")
    assert scope is not None
    with scope.within():
        assert telemetry.conversation_id() == "c1"
    assert telemetry.conversation_id() == ""
    scope.end()
    telemetry.uninstall()
    captured = capsys.readouterr()
    assert '"name": "chat tiny"' in captured.err and '"gen_ai.operation.name": "chat"' in captured.err
    assert captured.out == ""  # stdout is the command's own output


def test_trace_from_the_environment_reaches_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(telemetry.TRACE_ENV, "1")
    assert telemetry.configure() is True and telemetry.active()


def test_an_endpoint_without_the_exporter_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(telemetry.ENDPOINT_ENV, "http://127.0.0.1:4318")
    for module in ("trace_exporter", "metric_exporter"):  # as if the telemetry extra were not installed
        monkeypatch.setitem(sys.modules, f"opentelemetry.exporter.otlp.proto.http.{module}", None)
    with pytest.raises(ConfigError) as raised:
        telemetry.configure()
    message = str(raised.value)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in message and "[telemetry]" in message
    assert "\n" not in message and not telemetry.active()


@pytest.mark.parametrize(
    ("value", "captured"), [("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False)]
)
def test_contents_are_opt_in(monkeypatch: pytest.MonkeyPatch, value: str, captured: bool) -> None:
    monkeypatch.setenv(telemetry.CAPTURE_CONTENT_ENV, value)
    assert telemetry.capture_contents() is captured


def test_a_tool_call_id_is_for_the_called_function_only() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    telemetry.install(TracerProvider(), MeterProvider())
    with telemetry.tool_call("call_7"):
        # The second: a function the called one calls in turn.
        with telemetry.take_tool_call_id() as outer, telemetry.take_tool_call_id() as nested:
            assert (outer, nested) == ("call_7", "")
        with telemetry.take_tool_call_id() as again:
            assert again == "call_7"
