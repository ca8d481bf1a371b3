"""What a person sees of a program on a pseudo-terminal: its output replayed in a terminal emulator.

pexpect reads the program's bytes; matching on them says what was written, not what is left on the screen
after the cursor moved up and erased lines. :class:`EmulatedTerminal` feeds everything pexpect reads into
pyte (a VT100/xterm emulator) with a scrollback, so a test asserts on the screen AND the lines that
scrolled off it, as the person would find them by scrolling up. pyte does not reflow lines on a resize
(xterm does not either); tests/support/tmux_terminal.py drives tmux, which does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Screen:
    """A pyte screen of ``columns`` x ``rows`` with ``history`` lines of scrollback."""

    def __init__(self, columns: int, rows: int, history: int = 5000) -> None:
        import pyte

        self.screen = pyte.HistoryScreen(columns, rows, history=history, ratio=0.5)
        self._stream = pyte.Stream(self.screen)

    def feed(self, text: str) -> None:
        self._stream.feed(text)

    def resize(self, columns: int, rows: int) -> None:
        """The window resized: pyte keeps each line on one row, cut at the new width (as xterm shows it)."""
        self.screen.resize(rows, columns)

    def lines(self) -> list[str]:
        """The scrollback then the screen, each line without its trailing blanks, the empty screen end cut."""
        history = [_text(line, max(line.keys(), default=-1) + 1) for line in self.screen.history.top]
        shown = [line.rstrip() for line in self.screen.display]
        while shown and not shown[-1]:
            shown.pop()
        return history + shown


def replay(output: str, columns: int, rows: int) -> list[str]:
    """The lines a terminal shows after ``output`` (as written to a file: ``\\n`` without the ``\\r`` a
    pseudo-terminal adds), scrollback included."""
    screen = Screen(columns, rows)
    screen.feed(output.replace("\n", "\r\n"))
    return screen.lines()


class EmulatedTerminal:
    """A pyte screen of ``columns`` x ``rows`` with ``history`` lines of scrollback, fed by ``child``
    (a pexpect spawn with ``encoding``) as it reads: attach it before the first expect."""

    def __init__(self, child: Any, columns: int, rows: int, history: int = 5000) -> None:
        self.child = child
        self._screen = Screen(columns, rows, history)
        self.screen = self._screen.screen
        child.logfile_read = self  # pexpect writes what it reads here

    # the file-like side pexpect writes to
    def write(self, text: str) -> None:
        self._screen.feed(text)

    def flush(self) -> None:
        pass

    def resize(self, columns: int, rows: int) -> None:
        """Resize the window as a person drags it: the emulator first, then the program is told (SIGWINCH).
        Rows only grow: pyte drops the top lines of a shorter screen instead of scrolling them off."""
        if rows < self.screen.lines:
            raise ValueError(f"rows only grow in pyte ({self.screen.lines} -> {rows}): keep or raise them")
        self.screen.resize(rows, columns)
        self.child.setwinsize(rows, columns)

    def wait_for(self, done: Callable[[list[str]], bool], timeout: float = 120) -> list[str]:
        """Read the program's output until ``done(lines)`` holds for the terminal's lines; those lines."""
        import pexpect

        deadline = time.monotonic() + timeout
        while not done(lines := self.lines()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal did not show what was awaited in {timeout} s:\n" + "\n".join(lines))
            self.child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.2)
        return lines

    def lines(self) -> list[str]:
        return self._screen.lines()

    def text(self) -> str:
        return "\n".join(self.lines())


def _text(line: Any, width: int) -> str:
    return "".join(line[x].data for x in range(width)).rstrip()
