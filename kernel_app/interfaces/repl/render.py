"""Showing the session's events and replies: rich on a terminal, plain text when piped or ``--plain``.

The rich renderer keeps one live area at the bottom of the screen: the tail of the answer as it
streams, and under it a spinner with what is running (planning, "step 2/3 ...", /ask, the SWOT's
quadrants). When the answer is complete the live area goes and the answer is printed once more as
rendered markdown (tables, headings, lists, code); tables too wide for the screen wrap their cells.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from kernel_app.interfaces.repl.live_area import LiveArea

if TYPE_CHECKING:  # imported where events arrive: the package imports the engine (~0.06 s before the prompt)
    from kernel_app.conversation.events import Event

QUICK = ("/exit", "/quit", "/help", "/functions", "/results", "/history", "/set", "/new", "/reset", "/resume")


def cut_note(reply: Any, max_tokens: int) -> str:
    """What a cut answer says: which limit it reached, and how to raise it."""
    if reply.limit:
        return f"(cut: the answer reached the function's max_tokens, {reply.limit}, set in its config.json)"
    return f"(cut: the answer reached its length limit of {max_tokens} tokens; /set max_tokens N allows longer)"


class Renderer(Protocol):
    def begin(self, line: str) -> None: ...
    def event(self, event: Event) -> None: ...
    def chunk(self, text: str) -> None: ...
    def pause(self) -> None: ...
    def reply(self, reply: Any, *, max_tokens: int) -> None: ...
    def error(self, text: str) -> None: ...
    def info(self, text: str) -> None: ...
    def warm(self) -> None: ...


class PlainRenderer:
    """Text as it comes; progress on stderr only when stderr is a terminal (not in logs or pipes)."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._progress = self.err.isatty()
        self.loading: Any = lambda: False

    @staticmethod
    def warm() -> None:
        pass  # nothing to import ahead

    def begin(self, line: str) -> None:
        pass

    def event(self, event: Event) -> None:
        from kernel_app.conversation.events import ContentBlocked, FunctionCallFinished, FunctionCallStarted, Progress

        if isinstance(event, ContentBlocked):
            self._note(f"[{event.describe()}]")
        elif isinstance(event, FunctionCallStarted):
            self._note(f"[running {event.function}]")
        elif isinstance(event, FunctionCallFinished) and not event.ok:
            self._note(f"[{event.function}: {event.result}]")
        elif isinstance(event, Progress) and self._progress and not event.done:
            self._note(f"[{event.text}...]")

    def _note(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def chunk(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def pause(self) -> None:
        pass

    def reply(self, reply: Any, *, max_tokens: int) -> None:
        if reply.streamed:
            self.out.write("\n")
        elif reply.text:
            self.out.write(reply.text + "\n")
        if reply.cut:
            self.out.write(cut_note(reply, max_tokens) + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        self.err.write(f"error: {text}\n")
        self.err.flush()

    def info(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


class RichRenderer:
    """Markdown and a status line on a terminal (``console``: a rich Console, given by tests).

    rich is imported at the first thing it renders, not before the prompt (~0.1 s); :meth:`warm`
    imports it ahead, off the main thread. While a line runs, everything goes through the live area
    (kernel_app/interfaces/repl/live_area.py), which keeps its redraws from erasing anything else."""

    def __init__(self, console: Any = None) -> None:
        self._console = console
        self.loading: Any = lambda: False  # set by the REPL: is the model still loading?
        self._area: LiveArea | None = None
        self._status = ""
        self._first_status = "thinking..."  # the status a line starts with, until its first progress event
        self._printed = ""  # the start of the streamed answer already rendered (its finished blocks)
        self._stderr: Any = None
        self._running = False  # a line runs with the live area (from begin to its reply or error)

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False)
        return self._console

    @property
    def area(self) -> LiveArea:
        if self._area is None:
            self._area = LiveArea(self.console, self._shown_status)
        return self._area

    @staticmethod
    def warm() -> None:
        """Import what rendering uses, so that the first answer does not wait for it (call on a thread)."""
        import rich.console
        import rich.control
        import rich.markdown
        import rich.spinner
        import rich.text  # noqa: F401

    def _shown_status(self) -> str:
        status = self._status
        loading = self.loading()  # what the first line waits for: the kernel still starting, the model loading
        if loading and status == self._first_status:
            status = loading if isinstance(loading, str) else "loading the model (once per session)..."
        return status

    def _redraw(self) -> None:
        """The status changed: draw it, also after a question paused the area (a plan's steps run after
        its approval: their status line comes back)."""
        if self._running:
            self._capture_plugin_progress()
            self.area.show()

    def begin(self, line: str) -> None:
        self.area.draft = ""
        self._printed = ""
        if line.split()[0].lower() in QUICK and not self.loading():  # while starting, even these wait
            return
        self._status = "thinking..." if not line.startswith("/") else f"{line.split()[0][1:]}..."
        self._first_status = self._status
        self._running = True
        self._capture_plugin_progress()
        self.area.show()

    def _capture_plugin_progress(self) -> None:
        """BusinessThinking.SWOT redraws its progress ("SWOT: strengths 3...") on stderr at a terminal;
        that would tear the live area, so while a command runs those lines feed the status line, and
        other writes to stderr are printed above the area."""
        if self._stderr is None:
            self._stderr = sys.stderr
            sys.stderr = _StatusStream(self._stderr, self._set_status, self._print_above)

    def _release_plugin_progress(self) -> None:
        if self._stderr is not None:
            if isinstance(sys.stderr, _StatusStream) and sys.stderr.unfinished:
                self._print_above(sys.stderr.unfinished)
            sys.stderr = self._stderr
            self._stderr = None

    def _set_status(self, text: str) -> None:
        if text:
            self._status = text
            self._redraw()

    def _print_above(self, text: str) -> None:
        self.area.print(text, markup=False, highlight=False, style="dim")

    def event(self, event: Event) -> None:
        from kernel_app.conversation.events import ContentBlocked, FunctionCallFinished, FunctionCallStarted, Progress

        if isinstance(event, ContentBlocked):  # one line above the answer, which is then the refusal
            from rich.markup import escape

            self.area.print(f"[yellow]{escape(event.describe())}[/yellow]", markup=True)  # above the live area
            return
        elif isinstance(event, Progress):
            self._status = event.text + ("" if event.done else "...")
        elif isinstance(event, FunctionCallStarted):
            self._status = f"running {event.function}..."
        elif isinstance(event, FunctionCallFinished):
            mark = "done" if event.ok else f"failed: {event.result}"
            self._status = "thinking..."
            self.area.print(f"[dim]{event.function} {mark} ({event.seconds:.1f} s)[/dim]", markup=True)
            return
        else:  # text (drawn by the area's ticker, see chunk), approvals (asked by the loop), the end
            return
        self._redraw()

    def chunk(self, text: str) -> None:
        pending = self.area.draft + text
        # Blocks that are finished (a SWOT's table, a paragraph) are rendered now, above the live area;
        # the live area keeps only the block being written.
        done = finished_blocks(pending)
        if done:
            from rich.markdown import Markdown

            self._printed += pending[:done]
            self.area.draft = pending[done:]
            self.area.print(Markdown(pending[:done]))
        else:
            self.area.draft = pending
        if not self.area.up:
            self.area.show()
        # else the area's ticker draws the new tail within 1/12 s: a redraw per token was most of what
        # went to the terminal, and slowed a fast model down.

    def pause(self) -> None:
        """Before a question: the live area goes, so the prompt is where the cursor is."""
        self.area.stop()
        self._release_plugin_progress()

    def reply(self, reply: Any, *, max_tokens: int) -> None:
        from rich.markdown import Markdown

        self._running = False
        self.area.stop()
        self._release_plugin_progress()
        text = reply.text
        pending = self.area.draft
        # The answer is the end of what streamed (a turn may stream words before it calls a function):
        # what of it was rendered already is not printed again.
        if self._printed and (self._printed + pending).rstrip().endswith(text.rstrip()):
            text = pending if len(text) >= len(pending) else text
        self._printed = ""
        if text.strip():
            if reply.kind in ("help", "plan"):
                self.console.print(text, markup=False, highlight=False)
            else:
                self.console.print(Markdown(text))
        if reply.cut:
            self.console.print(cut_note(reply, max_tokens), style="yellow", markup=False, highlight=False)
        self.area.draft = ""

    def error(self, text: str) -> None:
        self._running = False
        self.area.stop()
        self._release_plugin_progress()
        self.console.print(f"error: {text}", style="red", markup=False, highlight=False)

    def info(self, text: str) -> None:
        if self._console is None:  # the greeting, before the prompt: not worth importing rich for
            dumb = os.environ.get("TERM", "") in ("dumb", "unknown")  # where rich would not style it either
            sys.stdout.write(f"{text}\n" if dumb else f"\x1b[2m{text}\x1b[0m\n")
            sys.stdout.flush()
            return
        self.area.print(text, style="dim", markup=False, highlight=False)


_FENCE = re.compile(r"^\s*(```|~~~)")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")


def finished_blocks(text: str) -> int:
    """How much of a streaming markdown text is finished blocks that render the same alone: up to the
    last blank line outside a code fence, unless the block before it is a list (its next item may follow
    the blank line, and a list cut in two would be numbered anew)."""
    done, fenced, previous = 0, False, ""
    position = 0
    for line in text.splitlines(keepends=True):
        position += len(line)
        if not line.endswith("\n"):
            break  # the line being written
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and not line.strip() and previous.strip() and not _in_list(text[:position]):
            done = position
        previous = line
    return done


def _in_list(text: str) -> bool:
    """Whether the last block of ``text`` (before its trailing blank line) is a list."""
    block = text.rstrip().rsplit("\n\n", 1)[-1]
    return any(_LIST_ITEM.match(line) for line in block.splitlines())


class _StatusStream:
    """A stand-in for stderr: ``\\r``-redrawn progress lines go to the status line, other lines are
    printed above the live area (written straight to the terminal, they would shift it)."""

    def __init__(self, real: TextIO, status: Callable[[str], None], above: Callable[[str], None]) -> None:
        self._real = real
        self._status = status
        self._above = above
        self.unfinished = ""  # the start of a line not ended yet

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text.startswith("\r"):
            self._status(text.replace("\r", "").replace("\033[K", "").strip())
            return len(text)
        *lines, self.unfinished = (self.unfinished + text).split("\n")
        for line in lines:
            self._above(line)
        return len(text)

    def flush(self) -> None:
        self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
