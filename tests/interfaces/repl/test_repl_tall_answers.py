"""Answers taller than the screen, streamed slowly, as a person's terminal shows them afterwards.

`kernel-app chat` runs on a pseudo-terminal; what it writes is replayed in a terminal emulator (pyte,
tests/support/terminal_screen.py) so that the assertions are on the screen and its scrollback: the earlier
conversation is still there, every table is rendered, and none of the streamed draft (raw markdown) is left.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.pty_chat import spawn_chat
from tests.support.tall_answers import QUADRANTS, raw_markdown, tall_swot
from tests.support.terminal_screen import EmulatedTerminal, replay

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def chat_on_a_terminal(openai_server, tmp_path: Path, columns: int, rows: int) -> tuple[Any, EmulatedTerminal]:
    # COLUMNS/LINES would pin rich's idea of the size: the window's own (and its SIGWINCH) must count.
    child = spawn_chat(
        openai_server.base_url, tmp_path, rows=rows, columns=columns, COLUMNS="", LINES="", PROMPT_TOOLKIT_NO_CPR="1"
    )
    terminal = EmulatedTerminal(child, columns, rows)
    child.expect("/help for commands")
    child.expect("you>")
    return child, terminal


@pytest.mark.parametrize(
    ("columns", "rows", "resize_to"),
    [(120, 40, None), (80, 24, None), (120, 40, (80, 40)), (120, 40, (60, 40)), (80, 24, (120, 30))],
    ids=["120x40", "80x24", "narrowed-mid-stream", "halved-mid-stream", "widened-mid-stream"],
)
def test_a_slow_answer_twice_the_screen_keeps_the_conversation_and_leaves_no_draft(
    openai_server, tmp_path: Path, columns: int, rows: int, resize_to: tuple[int, int] | None
) -> None:
    points = rows // 2  # four tables of rows/2 points: about twice the screen, more where reasons wrap
    openai_server.queue("12 times 7 is 84.", tall_swot(points))
    child, terminal = chat_on_a_terminal(openai_server, tmp_path, columns, rows)
    child.sendline("What is 12 times 7?")
    child.expect("is 84")
    child.expect("you>")
    openai_server.word_delay = 0.004  # a slow model: the status line turns many times while tables stream
    child.sendline("Write a SWOT of a bakery in Lyon")
    if resize_to is not None:
        child.expect("Oppo point 1")  # half-way through the stream
        terminal.resize(*resize_to)
    lines = terminal.wait_for(lambda lines: lines[-1:] == ["you>"] and f"Thre point {points} " in "\n".join(lines))
    child.sendline("/exit")
    child.expect("Bye.")

    assert raw_markdown(lines) == [], "\n".join(lines)
    asked = [n for n, line in enumerate(lines) if line.startswith("you> ")]
    said = [line for line in lines if line.startswith("you> ")]
    assert said[:2] == ["you> What is 12 times 7?", "you> Write a SWOT of a bakery in Lyon"], "\n".join(lines)
    assert "12 times 7 is 84." in lines[asked[0] : asked[1]], "\n".join(lines)
    answer = "\n".join(lines[asked[1] :])
    for quadrant in QUADRANTS:
        assert sum(line.strip() == quadrant for line in lines) == 1, f"{quadrant}:\n" + "\n".join(lines)
        for n in range(1, points + 1):
            # each row once: rendered, and no copy of it left from the draft
            assert answer.count(f"{quadrant[:4]} point {n} ") == 1, f"{quadrant} {n}:\n" + "\n".join(lines)
    rules = [line for line in lines if line.strip() and set(line.strip()) == {"─"}]
    assert len(rules) == 4, "\n".join(lines)  # four tables drawn by rich: the rule under each header


def swot_json(points: int) -> str:
    """What BusinessThinking.SWOT asks a model with structured output for: the four quadrants as JSON."""
    import json

    why = "because the people of the neighbourhood say so in the survey, point {n}, and it decides where they shop"
    answer = {
        quadrant.lower(): [{"point": f"{quadrant[:4]} point {n}", "why": why.format(n=n)} for n in range(1, points + 1)]
        for quadrant in QUADRANTS
    }
    return json.dumps(answer)


@pytest.mark.parametrize(("columns", "rows"), [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_a_swot_run_streamed_quadrant_by_quadrant_with_its_status_line(
    openai_server, tmp_path: Path, columns: int, rows: int
) -> None:
    """The issue's case: /run BusinessThinking.SWOT on a slow model, each quadrant's table arriving whole
    while the status line says "SWOT: Strengths 3, Weaknesses 1..." (the plugin's progress on stderr)."""
    points = rows // 4
    openai_server.queue("12 times 7 is 84.", swot_json(points))
    child, terminal = chat_on_a_terminal(openai_server, tmp_path, columns, rows)
    child.sendline("What is 12 times 7?")
    child.expect("is 84")
    child.expect("you>")
    openai_server.word_delay = 0.01
    child.sendline("/run BusinessThinking.SWOT a neighbourhood bakery in Lyon > swot")
    child.expect("SWOT: ")  # the quadrants' status line
    lines = terminal.wait_for(lambda lines: lines[-1:] == ["you>"] and f"Thre point {points} " in "\n".join(lines))
    child.sendline("/exit")
    child.expect("Bye.")

    assert raw_markdown(lines) == [], "\n".join(lines)
    said = [line for line in lines if line.startswith("you> ")]
    assert said[:2] == [
        "you> What is 12 times 7?",
        "you> /run BusinessThinking.SWOT a neighbourhood bakery in Lyon > swot",
    ]
    assert "12 times 7 is 84." in lines, "\n".join(lines)
    answer = "\n".join(lines[lines.index(said[1]) :])
    for quadrant in QUADRANTS:
        assert sum(line.strip() == quadrant for line in lines) == 1, f"{quadrant}:\n" + "\n".join(lines)
        for n in range(1, points + 1):
            assert answer.count(f"{quadrant[:4]} point {n} ") == 1, f"{quadrant} {n}:\n" + "\n".join(lines)
    assert not any("SWOT: " in line for line in lines), "\n".join(lines)  # the status line went with the area


def test_blocks_printed_while_the_status_line_turns_erase_nothing_above_them() -> None:
    """The race behind the issue, without a process: finished tables are printed above the live area while
    its ticker redraws it at another height (each table leaves a draft of another size). Printed and
    redrawn on separate locks, a print moved the cursor up by a stale height and erased rows above the
    area (rich's Live measured under its lock and wrote after it); the replayed screen keeps them all."""
    import io

    from rich.console import Console

    from kernel_app.commands.dispatch import Reply
    from kernel_app.interfaces.repl.render import RichRenderer

    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=24, color_system=None)
    renderer = RichRenderer(console)
    console.print("you> What is 12 times 7?\n12 times 7 is 84.")
    renderer.begin("Write a SWOT of a bakery")
    text, expected = "", []
    for table in range(60):
        rows = 2 + (table * 7) % 9  # drafts of 4 to 12 rows, one after another
        expected += [f"q{table} p{n} " for n in range(rows)]
        block = f"### Quadrant {table}\n\n| Point | Why |\n|---|---|\n"
        block += "".join(f"| q{table} p{n} | reason {n} |\n" for n in range(rows)) + "\n"
        for line in block.splitlines(keepends=True):
            renderer.chunk(line)
            time.sleep(0.001)
        text += block
    renderer.reply(Reply(text, "answer", streamed=True), max_tokens=900)
    lines = replay(console.file.getvalue(), 80, 24)  # type: ignore[attr-defined]

    assert lines[:2] == ["you> What is 12 times 7?", "12 times 7 is 84."], "\n".join(lines)
    assert raw_markdown(lines) == [], "\n".join(lines)
    assert [row for row in expected if sum(line.startswith(f" {row}") for line in lines) != 1] == []


@pytest.mark.parametrize(
    ("columns", "rows", "resize_to"),
    [(120, 40, None), (80, 24, None), (120, 40, (80, 40))],
    ids=["120x40", "80x24", "narrowed-mid-stream"],
)
def test_under_tmux_a_slow_answer_twice_the_screen_keeps_the_conversation(
    openai_server, tmp_path: Path, columns: int, rows: int, resize_to: tuple[int, int] | None
) -> None:
    """The same in tmux, a terminal that answers cursor-position requests and re-wraps its lines when the
    window narrows (tests/interfaces/repl/test_repl_resize.py narrows it further)."""
    from tests.support.pty_chat import chat_in_tmux
    from tests.support.tmux_terminal import tmux_missing

    if reason := tmux_missing():
        pytest.skip(reason)
    points = rows // 2
    openai_server.queue("12 times 7 is 84.", tall_swot(points))
    window = chat_in_tmux(openai_server.base_url, tmp_path, columns=columns, rows=rows)
    try:
        window.send("What is 12 times 7?")
        window.wait_for(lambda lines: lines[-1:] == ["you>"] and "12 times 7 is 84." in lines)
        openai_server.word_delay = 0.004
        window.send("Write a SWOT of a bakery in Lyon")
        if resize_to is not None:
            window.wait_for(lambda lines: any("Oppo point 1 " in line for line in lines))
            window.resize(*resize_to)
        lines = window.wait_for(lambda lines: lines[-1:] == ["you>"] and f"Thre point {points} " in "\n".join(lines))
    finally:
        window.close()

    assert raw_markdown(lines) == [], "\n".join(lines)
    said = [line for line in lines if line.startswith("you> ")]
    assert said[:2] == ["you> What is 12 times 7?", "you> Write a SWOT of a bakery in Lyon"], "\n".join(lines)
    assert "12 times 7 is 84." in lines[lines.index(said[0]) : lines.index(said[1])], "\n".join(lines)
    answer = "\n".join(lines[lines.index(said[1]) :])
    for quadrant in QUADRANTS:
        assert sum(line.strip() == quadrant for line in lines) == 1, f"{quadrant}:\n" + "\n".join(lines)
        for n in range(1, points + 1):
            assert answer.count(f"{quadrant[:4]} point {n} ") == 1, f"{quadrant} {n}:\n" + "\n".join(lines)


def test_piped_the_tall_answer_is_its_plain_text(openai_server, tmp_path: Path) -> None:
    """Piped, nothing is drawn or erased: the answer is written as the model streamed it, byte for byte."""
    from tests.support.cli import run_cli

    answer = tall_swot(20)
    openai_server.queue("12 times 7 is 84.", answer)
    openai_server.word_delay = 0.001
    env = {
        "KERNEL_APP_SERVICE": "openai",
        "OPENAI_BASE_URL": openai_server.base_url,
        "KERNEL_APP_MEMORY_DIR": str(tmp_path / "memory"),
    }
    done = run_cli("chat", input="What is 12 times 7?\nWrite a SWOT of a bakery in Lyon\n", **env)
    assert done.returncode == 0, done.stderr
    assert (
        f"you> What is 12 times 7?\n12 times 7 is 84.\nyou> Write a SWOT of a bakery in Lyon\n{answer}\n" in done.stdout
    )
    assert "\x1b" not in done.stdout


def tall_plan(steps: int, words: int) -> str:
    """A plan of ``steps`` Text.upper steps, each on a text of ``words`` words (several rows on the screen)."""
    import json

    text = " ".join(f"word{n}" for n in range(words))
    return json.dumps(
        {
            "steps": [
                {"function": "Text.upper", "args": {"input": f"step {n} {text}"}, "output": f"s{n}"}
                for n in range(1, steps + 1)
            ]
        }
    )


@pytest.mark.parametrize(("columns", "rows"), [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_a_plan_taller_than_the_screen_is_shown_asked_and_run(
    openai_server, tmp_path: Path, columns: int, rows: int
) -> None:
    steps = 10  # the planner's most
    openai_server.queue("12 times 7 is 84.", tall_plan(steps, words=columns * rows // 60))
    child, terminal = chat_on_a_terminal(openai_server, tmp_path, columns, rows)
    child.sendline("What is 12 times 7?")
    child.expect("is 84")
    child.expect("you>")
    child.sendline("/plan Shout ten texts")
    child.expect(r"Run this plan\? \[y/N, e to edit a step\]")
    terminal.wait_for(lambda lines: lines[-1:] != [] and lines[-1].startswith("Run this plan?"))
    child.sendline("y")
    lines = terminal.wait_for(lambda lines: lines[-1:] == ["you>"] and "STEP 10" in "\n".join(lines))
    child.sendline("/exit")
    child.expect("Bye.")

    said = [line for line in lines if line.startswith("you> ")]
    assert said[:2] == ["you> What is 12 times 7?", "you> /plan Shout ten texts"], "\n".join(lines)
    assert "12 times 7 is 84." in lines, "\n".join(lines)
    plan = "\n".join(lines[lines.index(said[1]) :])
    for n in range(1, steps + 1):
        assert plan.count(f's{n} = Text.upper(input="step {n} word0') == 1, f"step {n}:\n{plan}"
    assert sum(line.startswith("Run this plan? [y/N, e to edit a step] y") for line in lines) == 1, plan
    assert lines[-2].startswith("WORD") and "STEP 10 WORD0 WORD1" in plan  # the result, under the question


@pytest.mark.parametrize(("columns", "rows"), [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_a_swot_plan_approved_runs_under_its_status_line(
    openai_server, tmp_path: Path, columns: int, rows: int
) -> None:
    """After the plan's question the status line comes back for its steps ("step 1/1 ..." and the
    quadrants), and the SWOT twice the screen's height leaves the plan and its question intact."""
    import json

    points = rows // 4
    plan = {"steps": [{"function": "BusinessThinking.SWOT", "args": {"input": "a bakery in Lyon"}, "output": "swot"}]}
    openai_server.queue(json.dumps(plan), swot_json(points))
    child, terminal = chat_on_a_terminal(openai_server, tmp_path, columns, rows)
    child.sendline("/plan A SWOT of a bakery in Lyon")
    child.expect(r"Run this plan\? \[y/N, e to edit a step\]")
    openai_server.word_delay = 0.01
    child.sendline("y")
    child.expect("step 1/1 BusinessThinking.SWOT")  # the status line, back after the question
    child.expect("SWOT: Strengths")
    lines = terminal.wait_for(lambda lines: lines[-1:] == ["you>"] and f"Thre point {points} " in "\n".join(lines))
    child.sendline("/exit")
    child.expect("Bye.")

    assert raw_markdown(lines) == [], "\n".join(lines)
    assert lines[1:3] == ["you> /plan A SWOT of a bakery in Lyon", "Goal: A SWOT of a bakery in Lyon"], "\n".join(lines)
    asked = lines.index("Run this plan? [y/N, e to edit a step] y")
    answer = "\n".join(lines[asked:])
    for quadrant in QUADRANTS:
        assert sum(line.strip() == quadrant for line in lines) == 1, f"{quadrant}:\n" + "\n".join(lines)
        for n in range(1, points + 1):
            assert answer.count(f"{quadrant[:4]} point {n} ") == 1, f"{quadrant} {n}:\n" + "\n".join(lines)
    assert not any("SWOT: " in line or "step 1/1" in line for line in lines), "\n".join(lines)


def test_the_status_line_comes_back_after_a_question_and_not_after_the_reply() -> None:
    """A plan's approval or a function's (the loop pauses the area to ask) is followed by the steps it
    allowed: their status line is drawn again; once the line has its reply, nothing is."""
    import io

    from rich.console import Console

    from kernel_app.commands.dispatch import Reply
    from kernel_app.conversation.events import Progress
    from kernel_app.interfaces.repl.render import RichRenderer

    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=24, color_system=None)
    renderer = RichRenderer(console)
    renderer.begin("/plan Make a SWOT")
    renderer.pause()  # "Run this plan? [y/N, e to edit a step]"
    assert not renderer.area.up
    asked = len(console.file.getvalue())  # type: ignore[attr-defined]
    renderer.event(Progress("step", "step 1/2 BusinessThinking.SWOT"))
    assert renderer.area.up and "step 1/2 BusinessThinking.SWOT..." in console.file.getvalue()[asked:]  # type: ignore[attr-defined]
    renderer.reply(Reply("done", "result"), max_tokens=9)
    renderer.event(Progress("step", "step 2/2 late"))
    assert not renderer.area.up and "late" not in console.file.getvalue()  # type: ignore[attr-defined]
