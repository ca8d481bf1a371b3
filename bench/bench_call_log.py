"""What the call log costs a turn: turns per second on the scripted model, the log on vs off.

Not a test: prints figures and the ratio, measured in the same run.

    python bench/bench_call_log.py [--turns 300] [--rounds 5] [--database-url postgresql://...]

A turn is the conversation engine's (the REPL's, the server's): the user's message, one model call with
the kernel's functions offered, the answer, the turn stored. "on" records every call through the same
recorder ``create_chat_service`` attaches (the SQLite log in a temporary data folder, or PostgreSQL with
--database-url); "off" is the same service unrecorded. Rounds alternate so drift in machine load hits
both sides alike; the median round counts.

A scripted turn takes about a millisecond, so the ratio is the worst case: it prices the log's CPU time
(copying the request on the turn; redaction, JSON and the write on the recorder's thread, which shares
the GIL) against a turn that does almost nothing else. The last line puts the same cost against a model
call of one second (the embedded small tier answers in seconds), which is what a real turn pays.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def engine(settings, recorded: bool):
    from kernel_app.conversation.engine import ConversationEngine
    from kernel_app.conversation.store import ConversationStore
    from kernel_app.kernel.builder import build_kernel
    from kernel_app.providers.call_log import create_recorder, record_calls
    from kernel_app.providers.scripted import ScriptedChatCompletion

    service = ScriptedChatCompletion(default="A short answer about the bakery's strengths.")
    if recorded:
        record_calls(service, create_recorder(settings))
    kernel = build_kernel(settings, chat_service=service).kernel
    return ConversationEngine(kernel, ConversationStore(":memory:"))


async def turns_per_second(the_engine, turns: int) -> float:
    conversation = the_engine.create().id
    for _ in range(10):  # warm-up: templates, validators, the log's first open
        await the_engine.send(conversation, "What are the strengths of a small bakery?")
    conversation = the_engine.create().id  # a fresh history: every turn's prompt is the same size
    start = time.perf_counter()
    for index in range(turns):
        if index % 20 == 0:
            conversation = the_engine.create().id
        await the_engine.send(conversation, "What are the strengths of a small bakery?")
    return turns / (time.perf_counter() - start)


async def main(turns: int, rounds: int, database_url: str | None) -> None:
    from kernel_app.base.config import Settings

    folder = Path(tempfile.mkdtemp(prefix="bench-call-log-"))
    settings = Settings(memory_dir=folder, database_url=database_url)
    on, off = engine(settings, recorded=True), engine(settings, recorded=False)
    on_rates, off_rates = [], []
    for _ in range(rounds):
        off_rates.append(await turns_per_second(off, turns))
        on_rates.append(await turns_per_second(on, turns))
    on_rate, off_rate = statistics.median(on_rates), statistics.median(off_rates)
    where = "PostgreSQL" if database_url else "SQLite"
    print(f"call log off: {off_rate:8.1f} turns/s")
    print(f"call log on:  {on_rate:8.1f} turns/s  ({where})")
    added_ms = 1000 / on_rate - 1000 / off_rate
    print(f"ratio on/off: {on_rate / off_rate:.3f}")
    print(f"per turn:     {added_ms:+.3f} ms with the log on")
    print(f"on a turn with a 1 s model call: ratio {1000 / (1000 + max(added_ms, 0.0)):.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.rounds, args.database_url))
