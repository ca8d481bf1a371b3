"""The REPL's live area: the tail of a streaming answer and a status line, redrawn in place at the bottom.

Redrawing in place means moving the cursor up over the area's previous rows and erasing them, so three
things must hold or earlier output is erased, or the draft is left behind as raw markdown:

- The cursor never moves up over a row whose height on the screen is unknown. A row written narrower
  than the window is one screen row. After the window narrows, a row now as wide as the window or wider
  is one row on terminals that keep lines as they were (xterm, pyte) and several on those that re-wrap
  them (tmux, VTE, kitty, iTerm2): counting it either way erases the wrong rows on the other kind, and
  only a cursor-position report would tell, read from stdin where the keys typed ahead wait. So each
  redraw measures the window again (``console.size`` reads it from the terminal each time: no SIGWINCH
  handler is needed, and none competes with prompt_toolkit's) and erases only the rows still narrower
  than it, from the bottom up. Any rows above them are left as they are, finished as plain text, and the
  area goes on below them (the rendered answer then follows them). To keep that rare, the area is at
  most half the window wide (a window halved mid-stream still holds every row on one screen row) and
  :data:`DRAFT_COLUMNS` at most.
- The area is never taller than the screen, as rows that scrolled off can be neither erased nor counted:
  the draft is cropped to its last rows, half the screen at most (a window halved mid-stream still
  holds it), and at most a screen's worth of rows is erased.
- Nothing is written between the moment a redraw measures where the area is and the moment it writes:
  every write (redraw, print above, stop) holds :attr:`lock`, and one ticker thread turns the spinner.
  (rich's ``Live``, used before, measured under its lock and wrote after releasing it while its refresh
  thread redrew the area at another height in between, which erased lines above the area; it also
  counted its rows as they were written, whatever the window became since.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

DRAFT_COLUMNS = 72  # the draft's widest row: see the module's docstring
REFRESH_SECONDS = 1 / 12


def area_columns(width: int) -> int:
    """How wide the area's rows may be in a window ``width`` columns wide: half of it (and DRAFT_COLUMNS at
    most), so that a window halved mid-stream still shows each row on one screen row; in a tiny window,
    narrower than the window all the same."""
    return max(1, min(width // 2 - 1, DRAFT_COLUMNS), min(width - 1, 16))


def rows_to_erase(drawn: list[int], width: int, height: int) -> int:
    """How many of the area's rows (``drawn``: their widths in cells, top to bottom; the cursor at the end of
    the last) can be erased from the bottom in a ``width`` x ``height`` window: those narrower than the
    window, up to the first that is not (its height depends on the terminal), a screen's worth at most."""
    erasable = 0
    for cells in reversed(drawn):
        if cells >= width or erasable == height:
            break
        erasable += 1
    return erasable


class LiveArea:
    """Draft rows and a status line under everything printed, on ``console`` (a rich Console)."""

    def __init__(self, console: Any, status: Callable[[], str]) -> None:
        self.console = console
        self.lock = threading.RLock()  # held by every write while the area is up
        self.draft = ""  # the text being streamed that is not rendered yet
        self._status = status  # the status line's text, asked at each redraw (the loading note changes alone)
        self._drawn: list[int] | None = None  # the widths of the rows on the screen; None: the area is down
        self._spinner: Any = None
        self._ticker_stop: threading.Event | None = None

    @property
    def up(self) -> bool:
        return self._drawn is not None

    def show(self) -> None:
        """Draw the area (start it when it is not up)."""
        with self.lock:
            if self._drawn is None:
                self._drawn = []
                self.console.show_cursor(False)
                self._start_ticker()
            self._redraw()

    def print(self, *objects: Any, **options: Any) -> None:
        """``console.print`` above the area: the area is erased, the objects printed, the area drawn again."""
        with self.lock, self.console:  # one write to the terminal
            if self._drawn is not None:
                self._erase()
            self.console.print(*objects, **options)
            if self._drawn is not None:
                self._draw()

    def stop(self) -> None:
        """Erase the area; the cursor is where the area began."""
        with self.lock:
            if self._ticker_stop is not None:
                self._ticker_stop.set()
                self._ticker_stop = None
            if self._drawn is not None:
                with self.console:
                    self._erase()
                    self.console.show_cursor(True)
                self._drawn = None

    def _start_ticker(self) -> None:
        """Redraw the area every REFRESH_SECONDS (the spinner turns while the model is silent), until stopped."""
        stopped = self._ticker_stop = threading.Event()

        def tick() -> None:
            while not stopped.wait(REFRESH_SECONDS):
                with self.lock:
                    if not stopped.is_set():  # stop() may have run while this waited for the lock
                        self._redraw()

        threading.Thread(target=tick, name="repl-status-line", daemon=True).start()

    def _redraw(self) -> None:
        with self.console:  # erased and drawn in one write: no flicker
            self._erase()
            self._draw()

    def _erase(self) -> None:
        """Erase the rows drawn that can be (see the module's docstring); the cursor goes to the start of the
        top one erased, or below rows left as they are, where the area is drawn next."""
        from rich.control import Control
        from rich.segment import ControlType

        drawn, self._drawn = self._drawn or [], []
        if not drawn or not self._on_terminal():
            return
        width, height = self.console.size
        erasable = rows_to_erase(drawn, width, height)
        if erasable == 0:  # the cursor is at the end of a row of unknown height: the area goes under it
            self.console.control(Control(ControlType.CARRIAGE_RETURN))
            self.console.line()
            return
        up = ((ControlType.CURSOR_UP, 1), (ControlType.ERASE_IN_LINE, 2)) * (erasable - 1)
        self.console.control(Control(ControlType.CARRIAGE_RETURN, (ControlType.ERASE_IN_LINE, 2), *up))

    def _draw(self) -> None:
        """Draw the area where the cursor is (the start of a row), and keep the widths of its rows."""
        from rich.text import Text

        rows = self._rows()
        if not rows or not self._on_terminal():
            return
        frame = Text("\n").join(rows)
        frame.no_wrap, frame.overflow, frame.end = True, "crop", ""
        self.console.print(frame, end="", markup=False, highlight=False)  # the cursor stays on the last row
        self._drawn = [row.cell_len for row in rows]

    def _on_terminal(self) -> bool:
        return bool(self.console.is_terminal and not self.console.is_dumb_terminal)

    def _rows(self) -> list[Any]:
        """The area as rows of text, each narrower than area_columns: the draft's last rows, the status line."""
        from rich.spinner import Spinner
        from rich.text import Text

        width, height = self.console.size
        columns = area_columns(width)
        rows: list[Any] = [Text(row) for row in draft_rows(self.console, self.draft, columns, max(1, height // 2 - 1))]
        status = self._status()
        if status:
            if self._spinner is None:  # one spinner for the session: a new one each frame would not turn
                self._spinner = Spinner("dots")
            # One row, whatever the width: "⠋ " and the status, cut with an ellipsis.
            short = status if len(status) <= columns - 2 else status[: max(0, columns - 3)] + "…"
            self._spinner.update(text=Text(short, style="dim"))
            line = self._spinner.render(self.console.get_time())
            line.truncate(columns)  # a status of wide characters (cells, not characters) is cut too
            rows.append(line)
        return rows


def draft_rows(console: Any, text: str, columns: int, most: int) -> list[str]:
    """The last ``most`` screen rows of ``text`` wrapped at ``columns``: the draft as the area shows it."""
    from rich.text import Text

    lines = text.splitlines()[-most:]  # a line is one row or more: the last ``most`` are enough
    if not lines:
        return []
    wrapped = Text("\n".join(lines)).wrap(console, columns, overflow="fold")
    return [line.plain.rstrip() for line in wrapped][-most:]
