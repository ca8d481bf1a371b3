"""Telemetry's cost per conversation turn: off (the default) vs instrumentation stripped, and on vs off.

Not a test: prints figures and ratios measured in the same run.

    python bench/bench_telemetry.py [--turns 200] [--rounds 10]

Each turn is the engine's real loop on the scripted service: a model call that asks for Math.add, the
call, a model call that answers (so three spans and two histogram records a turn when on).

* bare: the same engine with the tracing filter removed and the service's model-call wrapper unwrapped.
* off: as shipped, with no provider installed (one ``active()`` check per instrumented call). Goal:
  off / bare <= 1.02.
* on: the SDK's providers installed, spans to an in-memory exporter through a batch processor (as OTLP
  export runs), metrics to an in-memory reader: what recording costs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTION = "What is 2 plus 3?"


def _engine(bare: bool) -> tuple[Any, Any]:
    from kernel_app.base.config import Settings
    from kernel_app.conversation import ConversationEngine
    from kernel_app.kernel.builder import build_kernel
    from kernel_app.kernel.filters import trace_function
    from kernel_app.providers.scripted import ScriptedChatCompletion

    service = ScriptedChatCompletion(function_calling=True)
    kernel = build_kernel(Settings(), chat_service=service).kernel
    if bare:
        kernel.function_invocation_filters[:] = [
            f for f in kernel.function_invocation_filters if f[1] is not trace_function
        ]
        for name in ("_inner_get_chat_message_contents", "_inner_get_streaming_chat_message_contents"):
            service.__dict__.pop(name)
    return ConversationEngine(kernel, functions=["Math.add"]), service


def _turn(engine: Any, service: Any) -> Callable[[], Awaitable[None]]:
    from kernel_app.conversation import Done, Message
    from kernel_app.providers.scripted import call

    async def turn() -> None:
        service.queue(call("Math.add", a=2, b=3), "2 plus 3 is 5.")
        events = [e async for e in engine.complete([Message("user", QUESTION)], stream=False)]
        assert isinstance(events[-1], Done) and events[-1].text == "2 plus 3 is 5.", events[-1]

    return turn


async def _per_turn(turn: Callable[[], Awaitable[None]], turns: int) -> float:
    for _ in range(30):  # warm-up
        await turn()
    # CPU time of this process: on a shared machine wall time mostly measures the other processes.
    start = time.process_time()
    for _ in range(turns):
        await turn()
    return (time.process_time() - start) / turns


def _install() -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kernel_app.base import telemetry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    telemetry.install(provider, MeterProvider(metric_readers=[InMemoryMetricReader()]), shutdown=True)
    return exporter


async def main(turns: int, rounds: int) -> None:
    from kernel_app.base import telemetry

    bare, off, on = _engine(bare=True), _engine(bare=False), _engine(bare=False)
    times: dict[str, list[float]] = {"bare": [], "off": [], "on": []}
    exporter = None
    for _ in range(rounds):  # interleaved, so drift in machine load falls on all three alike
        times["bare"].append(await _per_turn(_turn(*bare), turns))
        times["off"].append(await _per_turn(_turn(*off), turns))
        exporter = _install()
        times["on"].append(await _per_turn(_turn(*on), turns))
        telemetry.uninstall()  # flushes the batch
        exporter.clear()
    best = {k: min(v) for k, v in times.items()}
    for name, values in times.items():
        median = statistics.median(values) * 1e6
        print(f"{name:>4}: {best[name] * 1e6:8.0f} µs CPU/turn (best of {rounds}; median {median:.0f})")
    print(f"off / bare: {best['off'] / best['bare']:.3f}  (goal <= 1.02: telemetry off costs nothing measurable)")
    print(f"on / off:   {best['on'] / best['off']:.3f}  (recording three spans and the histograms a turn)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.rounds))
