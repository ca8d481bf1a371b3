"""The REPL loop: read a line, hand it to the session, render what comes back.

Piped input is echoed after the prompt (so a transcript reads like the session did), and a line that
failed is reported with its number; the loop's return value is the exit code (1 when any failed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel_app.commands.dispatch import ChatSession
    from kernel_app.interfaces.repl.reader import Reader
    from kernel_app.interfaces.repl.render import Renderer

PROMPT = "you> "
YES = ("y", "yes")


@dataclass
class Outcome:
    """Which input lines failed, and why: what a piped run reports and exits non-zero for."""

    failed: list[tuple[int, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what Ctrl-C left half-run, so the model stops generating (and is free for the next line)
    and the unanswered question leaves the conversation."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


@contextmanager
def _typeahead_unechoed(interactive: bool) -> Iterator[None]:
    """While a line runs, what the person types next is not echoed into the status line and the streamed
    answer (it tore them); the terminal keeps it, and the next prompt shows it. A question asked meanwhile
    (a confirmation) is prompt_toolkit's, which sets the terminal up itself."""
    import sys

    try:
        import termios

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd) if interactive and sys.stdin.isatty() else None
    except (ImportError, OSError, ValueError):  # not a POSIX terminal: echo stays as it is
        saved = None
    if saved is None:
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, quiet)  # TCSANOW: the typed-ahead keys stay
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


def run_repl(
    session: ChatSession,
    reader: Reader,
    renderer: Renderer,
    *,
    interactive: bool,
    stream: bool = True,
) -> Outcome:
    """Until /exit or the end of input. ``interactive``: a person types (no echo of their lines)."""
    outcome = Outcome()

    async def answer(question: str) -> bool:
        renderer.pause()
        said = await reader.ask(question)
        if not interactive and said is not None:
            renderer.info(f"{question}{said}")
        return (said or "").strip().lower() in YES

    async def confirm(plan_text: str) -> bool | str:
        renderer.pause()
        renderer.info(plan_text)
        question = "Run this plan? [y/N, e to edit a step] "
        said = (await reader.ask(question) or "").strip()
        if not interactive:
            renderer.info(f"{question}{said}")
        if said.lower() in ("e", "edit"):
            edit = await reader.ask("Edit (STEP name=value, e.g. 1 a=5): ")
            if not interactive:
                renderer.info(f"Edit (STEP name=value, e.g. 1 a=5): {edit or ''}")
            return edit or False
        return said.lower() in YES

    async def approve(request: Any) -> bool:
        return await answer(f"Allow {request.describe()} ({request.effect})? [y/N] ")

    loop = asyncio.new_event_loop()
    try:
        while True:
            line = reader.read(PROMPT)
            if line is None:
                break
            if not interactive:
                renderer.info(f"{PROMPT}{line}")
            if not line.strip():
                continue
            renderer.begin(line)
            try:
                with _typeahead_unechoed(interactive):
                    reply = loop.run_until_complete(
                        session.handle(
                            line,
                            on_chunk=renderer.chunk if stream else None,
                            confirm=confirm,
                            approve=approve,
                            on_event=renderer.event,
                            on_progress=renderer.event,
                        )
                    )
            except KeyboardInterrupt:  # Ctrl-C stops this answer, not the session
                _cancel_pending(loop)
                renderer.pause()
                renderer.info("(interrupted)")
                continue
            if reply.kind == "exit":
                renderer.pause()
                break
            if reply.is_error:
                where = f"line {reader.line_number}: " if not interactive else ""
                outcome.failed.append((reader.line_number, reply.text))
                renderer.error(f"{where}{reply.text}")
            else:
                if line.strip().lower() == "/help":
                    from dataclasses import replace

                    from kernel_app.interfaces.repl.reader import TYPING_HELP

                    reply = replace(reply, text=f"{reply.text}\n{TYPING_HELP}")
                renderer.reply(reply, max_tokens=session.engine.max_tokens)
    finally:
        # An answer's stream left half-read (Ctrl-C, /exit) is closed here, not by the garbage collector.
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return outcome
