"""The REPL's live area: the tail of a streaming answer and a status line, redrawn in place at the bottom.

Redrawing in place means moving the cursor up over the area's previous rows and erasing them, so two
things must hold or earlier output is erased, or the draft is left behind as raw markdown:

- The area is never taller than the screen, counted in screen rows (a long line wraps into several),
  including after the window shrinks. The cursor cannot go above the top of the screen: rows that
  scrolled off can be neither erased nor counted. So the draft is cropped to its last rows, at most
  half the screen (a window halved mid-stream still holds it), and wrapped at :data:`DRAFT_COLUMNS`
  at most: terminals that re-wrap their lines on a resize (tmux, VTE, kitty, iTerm2) keep its height
  when the window narrows down to that. rich's own ``vertical_overflow`` crops too, but only while
  streaming: its ``Live.stop()`` draws the area once more with ``vertical_overflow="visible"``, and a
  draft taller than the screen then scrolled its top into the scrollback for good.
- Nothing is written between the moment a redraw measures where the area is and the moment it writes.
  rich's ``Live`` computes the cursor-up of a ``console.print`` above it under its lock but writes
  after releasing it, while its refresh thread redraws the area (at another height) in between: the
  print then moved up by the old height from the new bottom and erased the lines above the area (the
  previous answer, the ``you>`` line) or left raw rows. So this area has no rich refresh thread: its
  own ticker turns the spinner, and every write (redraw, print above, stop) holds :attr:`lock`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

DRAFT_COLUMNS = 72  # the draft's widest row: see the module's docstring
REFRESH_SECONDS = 1 / 12


class LiveArea:
    """Draft rows and a status line under everything printed, on ``console`` (a rich Console)."""

    def __init__(self, console: Any, status: Callable[[], str]) -> None:
        self.console = console
        self.lock = threading.RLock()  # held by every write while the area is up
        self.draft = ""  # the text being streamed that is not rendered yet
        self._status = status  # the status line's text, asked at each redraw (the loading note changes alone)
        self._live: Any = None
        self._spinner: Any = None
        self._ticker_stop: threading.Event | None = None

    @property
    def up(self) -> bool:
        return self._live is not None

    def show(self) -> None:
        """Draw the area (start it when it is not up)."""
        with self.lock:
            if self._live is None:
                from rich.live import Live

                self._live = Live(
                    console=self.console,
                    get_renderable=self._renderable,
                    auto_refresh=False,  # our ticker refreshes, under our lock (see the module's docstring)
                    transient=True,  # the draft is replaced by the rendered answer
                    vertical_overflow="crop",  # never reached: the renderable fits (see _renderable)
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                self._live.start()
                self._start_ticker()
            self._live.refresh()

    def print(self, *objects: Any, **options: Any) -> None:
        """``console.print`` above the area: the area is erased, the objects printed, the area drawn again."""
        with self.lock:
            self.console.print(*objects, **options)
            if self._live is not None:
                self._live.refresh()  # the area as it is now (the print drew the one of the last refresh)

    def stop(self) -> None:
        """Erase the area; the cursor is where the area began."""
        with self.lock:
            if self._ticker_stop is not None:
                self._ticker_stop.set()
                self._ticker_stop = None
            if self._live is not None:
                live, self._live = self._live, None
                live.stop()

    def _start_ticker(self) -> None:
        """Redraw the area every REFRESH_SECONDS (the spinner turns while the model is silent), until stopped."""
        stopped = self._ticker_stop = threading.Event()
        live = self._live

        def tick() -> None:
            while not stopped.wait(REFRESH_SECONDS):
                with self.lock:
                    if not stopped.is_set():  # stop() may have run while this waited for the lock
                        live.refresh()

        threading.Thread(target=tick, name="repl-status-line", daemon=True).start()

    def _renderable(self) -> Any:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        width, height = self.console.size
        columns = max(10, min(width - 1, DRAFT_COLUMNS))
        parts: list[Any] = []
        rows = draft_rows(self.console, self.draft, columns, max(1, height // 2 - 1))
        if rows:
            parts.append(Text("\n".join(rows), no_wrap=True, overflow="crop"))
        status = self._status()
        if status:
            if self._spinner is None:  # one spinner for the session: a new one each frame would not turn
                self._spinner = Spinner("dots")
            # One row, whatever the width: "⠋ " and the status, cut with an ellipsis.
            short = status if len(status) <= columns - 2 else status[: columns - 3] + "…"
            self._spinner.update(text=Text(short, style="dim", no_wrap=True, overflow="crop"))
            parts.append(self._spinner)
        return Group(*parts)


def draft_rows(console: Any, text: str, columns: int, most: int) -> list[str]:
    """The last ``most`` screen rows of ``text`` wrapped at ``columns``: the draft as the area shows it."""
    from rich.text import Text

    lines = text.splitlines()[-most:]  # a line is one row or more: the last ``most`` are enough
    if not lines:
        return []
    wrapped = Text("\n".join(lines)).wrap(console, columns, overflow="fold")
    return [line.plain.rstrip() for line in wrapped][-most:]
