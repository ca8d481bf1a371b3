"""A window resized while an answer streams, under tmux: tmux re-wraps the rows it already shows at the new
width, so rows of the live area wider than the new window take more screen rows than were written. What is
left afterwards (screen and scrollback, ``capture-pane -S -``) must be the conversation as it was and the
answer rendered once: no raw markdown, no row of the draft twice or torn, no status line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.pty_chat import chat_in_tmux
from tests.support.tall_answers import QUADRANTS, raw_markdown, tall_swot, words
from tests.support.tmux_terminal import tmux_missing

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform == "win32", reason="tmux is POSIX")]

# Each resize waits for a row of a table to be in the draft: the live area is then up to half the screen
# of raw table rows, as wide as the window lets them be.
WHEN = ("Oppo point 1 ", "Thre point 1 ")


@pytest.mark.parametrize(
    ("columns", "rows", "resizes"),
    [
        pytest.param(120, 40, [(60, 40)], id="120-to-60"),
        pytest.param(120, 40, [(60, 40), (120, 40)], id="120-to-60-and-back"),
        pytest.param(80, 24, [(40, 24)], id="80-to-40"),
    ],
)
def test_a_window_resized_mid_stream_keeps_the_conversation_and_leaves_no_draft(
    openai_server, tmp_path: Path, columns: int, rows: int, resizes: list[tuple[int, int]]
) -> None:
    if reason := tmux_missing():
        pytest.skip(reason)
    points = rows // 2  # four tables of rows/2 points: about twice the screen
    answer = tall_swot(points)
    openai_server.queue("12 times 7 is 84.", answer)
    window = chat_in_tmux(openai_server.base_url, tmp_path, columns=columns, rows=rows)
    try:
        window.send("What is 12 times 7?")
        window.wait_for(lambda lines: lines[-1:] == ["you>"] and "12 times 7 is 84." in lines)
        openai_server.word_delay = 0.004  # a slow model: the resize comes while a table streams
        window.send("Write a SWOT of a bakery in Lyon")
        for (width, height), when in zip(resizes, WHEN, strict=False):
            window.wait_for(lambda lines, when=when: any(when in line for line in lines))
            window.resize(width, height)
        lines = window.wait_for(lambda lines: lines[-1:] == ["you>"] and f"Thre point {points} " in "\n".join(lines))
        joined = window.lines(joined=True)  # each line as written, whatever tmux re-wrapped
    finally:
        window.close()

    shown = "\n".join(lines)
    assert raw_markdown(lines) == [] and raw_markdown(joined) == [], shown
    said = [line for line in joined if line.startswith("you> ")]
    assert said[:2] == ["you> What is 12 times 7?", "you> Write a SWOT of a bakery in Lyon"], shown
    asked = joined.index(said[1])
    assert joined[joined.index(said[0]) + 1 : asked] == ["12 times 7 is 84."], shown  # the earlier answer, intact
    for quadrant in QUADRANTS:
        assert sum(line.strip() == quadrant for line in joined) == 1, f"{quadrant}:\n{shown}"
    # The answer's words, each as often as in its markdown: all of it rendered, and nothing of the draft
    # (a row, a torn piece of one, the status line) left between or under the tables.
    rendered = words("\n".join(joined[asked + 1 : -1]))
    assert rendered == words(answer), f"extra {rendered - words(answer)}, missing {words(answer) - rendered}:\n{shown}"


def test_a_window_narrowed_below_half_mid_stream_leaves_whole_draft_rows_and_erases_nothing_earlier(
    openai_server, tmp_path: Path
) -> None:
    """From 120 to 30 columns at once, the draft's rows (59 columns at most) are re-wrapped by tmux into two
    screen rows each, where xterm keeps one: the area does not move over them (it would erase the earlier
    answer on the one, or leave torn halves on the other). They stay as they were, whole, as plain text, and
    the answer is rendered under them in full."""
    from kernel_app.interfaces.repl.live_area import area_columns, draft_rows

    if reason := tmux_missing():
        pytest.skip(reason)
    points = 20
    answer = tall_swot(points)
    openai_server.queue("12 times 7 is 84.", answer)
    window = chat_in_tmux(openai_server.base_url, tmp_path, columns=120, rows=40)
    try:
        window.send("What is 12 times 7?")
        window.wait_for(lambda lines: lines[-1:] == ["you>"] and "12 times 7 is 84." in lines)
        openai_server.word_delay = 0.004
        window.send("Write a SWOT of a bakery in Lyon")
        window.wait_for(lambda lines: any(WHEN[0] in line for line in lines))
        window.resize(30, 40)
        window.wait_for(lambda lines: lines[-1:] == ["you>"] and "Threats" in lines)
        joined = window.lines(joined=True)
    finally:
        window.close()

    from rich.console import Console

    shown = "\n".join(joined)
    said = [line for line in joined if line.startswith("you> ")]
    assert said[:2] == ["you> What is 12 times 7?", "you> Write a SWOT of a bakery in Lyon"], shown
    asked = joined.index(said[1])
    assert joined[joined.index(said[0]) + 1 : asked] == ["12 times 7 is 84."], shown
    drafted = set(draft_rows(Console(), answer, area_columns(120), 10**6))  # the draft's rows at 120 columns
    region = joined[asked + 1 : -1]
    left = [n for n, line in enumerate(region) if line and any(row.startswith(line) for row in drafted)]
    assert left and left == list(range(left[0], left[-1] + 1)), shown  # one block, left at the resize
    left = [region[n] for n in left]
    # Whole rows as the area drew them: only the last may be shorter, the row the model was writing.
    assert all(line in drafted for line in left[:-1]), shown
    assert raw_markdown(joined) == raw_markdown(left), shown  # no other raw row, no torn piece of one
    rendered = words("\n".join(region))
    assert rendered - words(answer) == words("\n".join(left)), shown  # nothing else left: no status line
    assert words(answer) - rendered == words(""), shown  # the answer in full
