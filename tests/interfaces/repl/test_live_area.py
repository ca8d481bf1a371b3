"""The live area's rows and what it erases, on a rich Console writing to a string, replayed in pyte."""

from __future__ import annotations

import io

import pytest

from kernel_app.interfaces.repl.live_area import LiveArea, area_columns, rows_to_erase
from tests.support.terminal_screen import Screen

CURSOR_UP = "\x1b[1A"


def test_only_rows_narrower_than_the_window_are_erased_from_the_bottom_a_screen_at_most() -> None:
    assert rows_to_erase([50, 20, 10], 60, 40) == 3
    assert rows_to_erase([20, 50, 20, 10], 30, 40) == 2  # the row of 50 cells is 1 row or 2: not above it
    assert rows_to_erase([50, 20, 29], 29, 40) == 0  # as wide as the window: the cursor may have wrapped
    assert rows_to_erase([5] * 10, 80, 4) == 4  # rows above the screen's top cannot be reached
    assert rows_to_erase([], 80, 24) == 0


def test_the_area_is_narrower_than_half_the_window_so_a_halved_window_holds_each_row() -> None:
    assert [area_columns(width) for width in (200, 120, 80, 40)] == [72, 59, 39, 19]
    assert all(area_columns(width) < width // 2 for width in range(36, 400))
    assert all(1 <= area_columns(width) < width for width in range(2, 400))


@pytest.mark.parametrize("narrowed", [60, 30], ids=["halved", "below-half"])
def test_a_window_narrowed_mid_stream_erases_nothing_above_the_area(narrowed: int) -> None:
    """Halved, every row of the area is still one screen row: all of it is erased and drawn again. Narrower
    still, its draft rows take 1 screen row each where lines are kept (xterm, pyte) and 2 where they are
    re-wrapped (tmux): the cursor does not go up over them, they stay as plain text, the area goes below."""
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=120, height=40, color_system=None)
    console.print("you> Write a SWOT\nthe answer's first table")
    area = LiveArea(console, lambda: "thinking...")
    draft = [f"| row {n} | {'x' * 40} |" for n in range(6)]  # 52 cells: one row of the area each at 120
    area.draft = "\n".join(draft)
    area.show()
    out = console.file  # type: ignore[attr-defined]
    before = len(out.getvalue())
    console.width = narrowed
    area.draft += "\n| row 6 | short |"
    area.show()
    after = out.getvalue()[before:]
    area.stop()
    console.print("the rendered answer")

    screen = Screen(120, 40)
    screen.feed(out.getvalue()[:before].replace("\n", "\r\n"))
    screen.resize(narrowed, 40)
    screen.feed(out.getvalue()[before:].replace("\n", "\r\n"))
    lines = screen.lines()
    assert lines[:2] == ["you> Write a SWOT", "the answer's first table"], "\n".join(lines)
    if narrowed == 60:
        assert after.count(CURSOR_UP) == 6  # the status line and six rows of draft above it
        assert lines[2:] == ["the rendered answer"], "\n".join(lines)
    else:
        assert CURSOR_UP not in after  # the status line alone is erased
        assert lines[2:] == [row[:narrowed] for row in draft] + ["the rendered answer"], "\n".join(lines)
