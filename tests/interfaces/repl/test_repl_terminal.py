"""The REPL at a terminal: prompt_toolkit's pipe input for line editing, and a pseudo-terminal (pexpect) for
`kernel-app chat` as a person sees it: rich tables, a status line, history kept across runs."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from kernel_app.interfaces.repl.reader import ChatCompleter, PipeReader, TerminalReader, looks_secret
from tests.support.pty_chat import spawn_chat

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


def read_all(keys: str, history: Path | None = None, asks: int = 0) -> tuple[list[str | None], list[str | None]]:
    """Feed ``keys`` to a TerminalReader: one message, ``asks`` questions, then messages to the end."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        reader = TerminalReader(history, input=pipe, output=DummyOutput())
        messages: list[str | None] = [reader.read("you> ")]
        answers = [asyncio.run(reader.ask("Run this plan? [y/N] ")) for _ in range(asks)]
        pipe.close()
        while (message := reader.read("you> ")) is not None:
            messages.append(message)
        return messages, answers


def test_a_paste_arrives_as_one_message_and_fences_make_a_block() -> None:
    comment = "The bread was great.\nBut the queue was long.\nAnd the card reader broke."
    messages, _ = read_all(
        f"{PASTE_START}{comment}{PASTE_END}\r" + '"""\rfirst line\rsecond line\r"""\r' + "one\x1b\rtwo\r"
    )
    assert messages == [comment, "first line\nsecond line", "one\ntwo"]


def test_history_persists_without_confirmations_or_secrets(tmp_path: Path) -> None:
    history = tmp_path / "chat_history"
    messages, answers = read_all("/plan Make a SWOT\ry\rmy api_key=sk-abcdefghijklmnopqrstu\r/help\r", history, asks=1)
    assert messages == ["/plan Make a SWOT", "my api_key=sk-abcdefghijklmnopqrstu", "/help"] and answers == ["y"]
    kept = [line[1:] for line in history.read_text().splitlines() if line.startswith("+")]
    assert kept == ["/plan Make a SWOT", "/help"]
    # The next run starts with that history: Up recalls the last line.
    again, _ = read_all("\x1b[A\r", history)
    assert again == ["/help"]
    assert looks_secret("token: abc") and looks_secret("Bearer abcdefghijklmnop") and not looks_secret("a bakery")


def test_completion_of_commands_functions_parameters_collections_and_results() -> None:
    functions = {"BusinessThinking.SWOT": ["input", "answers"], "BusinessThinking.ShiftDomain": ["input", "domain"]}
    completer = ChatCompleter(lambda: functions, lambda: ["SWOT", "Ideas"], lambda: {"last": "", "swot": ""})
    assert completer.candidates("/r") == ["/run", "/results", "/resume"]
    assert completer.candidates("/run Business") == ["BusinessThinking.SWOT", "BusinessThinking.ShiftDomain"]
    assert completer.candidates("/run BusinessThinking.ShiftDomain d") == ["domain="]
    assert completer.candidates("/run BusinessThinking.ShiftDomain domain=x ") == ["input="]
    assert completer.candidates("/ask I") == ["Ideas"] and completer.candidates("/save S") == ["SWOT"]
    assert completer.candidates("/run BusinessThinking.SWOT $s") == ["$swot"]
    assert completer.candidates("/plan --ex") == ["--exclude"]
    # And through prompt_toolkit itself: Tab completes the unique candidate.
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    async def tab_then_enter() -> str:
        with create_pipe_input() as pipe:
            reader = TerminalReader(None, completer, input=pipe, output=DummyOutput())
            typed = asyncio.ensure_future(reader._session.prompt_async("you> "))
            pipe.send_text("/run BusinessThinking.Sh\t")
            await asyncio.sleep(0.3)  # completion runs in the background: Enter must not overtake it
            pipe.send_text("\r")
            return await typed

    assert asyncio.run(tab_then_enter()) == "/run BusinessThinking.ShiftDomain"


def test_a_pipe_reads_fenced_blocks_and_numbers_lines() -> None:
    import io

    reader = PipeReader(io.StringIO('hello\n"""\nline one\nline two\n"""\n/exit\n'))
    assert reader.read("") == "hello" and reader.line_number == 1
    assert reader.read("") == "line one\nline two" and reader.line_number == 2
    assert reader.read("") == "/exit" and reader.line_number == 6
    assert reader.read("") is None


SWOT = "## SWOT\n\n| Strengths | Why |\n|---|---|\n| Fresh bread | people come back daily |"


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_chat_on_a_pseudo_terminal(openai_server, tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    openai_server.queue(SWOT, "A child would say: the bakery is good.")

    def spawn(*args: str) -> object:
        # pexpect does not answer cursor-position requests (a terminal would): say so, as such a terminal does.
        child = spawn_chat(
            openai_server.base_url, tmp_path, *args, rows=40, COLUMNS="100", LINES="40", PROMPT_TOOLKIT_NO_CPR="1"
        )
        child.expect("/help for commands")
        child.expect("you>")
        return child

    child = spawn()
    openai_server.word_delay = 0.05  # the area is redrawn 12 times a second: it shows the table's rows raw
    child.sendline("Write a SWOT of a bakery")
    child.expect("thinking")  # the status line, after the line was sent; then the answer up to the next prompt
    child.expect("you>")
    streamed, _, final = child.before.rpartition("\x1b[1A\x1b[2K")  # the live area erased, then the answer
    assert "| Fresh bread |" in streamed  # raw while it streams...
    assert "─" in final and "Fresh bread" in final and "|---|" not in final and "## SWOT" not in final  # then a table
    openai_server.word_delay = 0
    child.sendline("/run Math.add a=2 b=3 > five")
    child.expect("> five")
    child.expect("5")
    child.expect("you>")
    child.sendline("/help")
    child.expect("Several lines as one message")
    child.expect("you>")
    child.sendline("/nope")
    child.expect("error: unknown command /nope")
    child.expect("you>")
    child.sendline("/exit")
    child.expect("Bye.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0  # at a terminal a failed line is shown, not an exit code
    history = (tmp_path / "memory" / "chat_history").read_text()
    assert "+Write a SWOT of a bakery" in history and "+/exit" in history

    child = spawn("--resume")
    child.sendline("\x1b[A\x1b[A")  # Up twice, then Enter: the line before /exit, from the last run
    child.expect("unknown command /nope")
    child.sendline("Explain it to a child")
    child.expect("the bakery is good")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    sent = [m["content"] for m in openai_server.requests[-1].body["messages"]]
    assert sent[1] == "Write a SWOT of a bakery" and sent[-1] == "Explain it to a child"


def test_rich_rendering_the_status_line_and_the_swot_progress() -> None:
    import io
    import time

    from rich.console import Console

    from kernel_app.commands.dispatch import Reply
    from kernel_app.conversation.events import Progress
    from kernel_app.interfaces.repl.render import PlainRenderer, RichRenderer

    # 80 columns: the status line is as wide as the draft, at most half the window (live_area.py).
    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=20, color_system=None)
    renderer = RichRenderer(console)
    renderer.begin("/plan Make a SWOT")
    renderer.event(Progress("step", "step 1/2 BusinessThinking.SWOT"))
    sys.stderr.write("\r\033[KSWOT: Strengths 3...")  # what the SWOT plugin writes at a terminal
    time.sleep(0.3)  # a few refreshes: the spinner turns
    renderer.chunk("| Strengths | Why |\n|---|---|\n| Fresh bread | daily |")
    renderer.reply(Reply("| Strengths | Why |\n|---|---|\n| Fresh bread | daily |", "result", cut=True), max_tokens=9)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "step 1/2 BusinessThinking.SWOT..." in out and "SWOT: Strengths 3..." in out
    assert len({c for c in out if c in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"}) > 1
    rendered = out.rsplit("\x1b[2K", 1)[-1]
    assert "─" in rendered and "|---|" not in rendered and "limit of 9 tokens" in rendered
    assert not isinstance(sys.stderr, type(renderer)) and "StatusStream" not in type(sys.stderr).__name__

    plain_out, plain_err = io.StringIO(), io.StringIO()
    plain = PlainRenderer(plain_out, plain_err)
    plain.chunk("Half an ans")
    plain.reply(Reply("Half an ans", "answer", streamed=True, cut=True), max_tokens=9)
    assert plain_out.getvalue() == "Half an ans\n" + "(cut: the answer reached its length limit of 9 tokens; " \
        "/set max_tokens N allows longer)\n"  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_keys_typed_while_a_line_runs_are_kept_but_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    import pty
    import termios

    from kernel_app.interfaces.repl.loop import _typeahead_unechoed

    leader, follower = pty.openpty()
    with os.fdopen(follower, "r", closefd=True) as terminal:
        monkeypatch.setattr(sys, "stdin", terminal)
        assert termios.tcgetattr(follower)[3] & termios.ECHO
        with _typeahead_unechoed(interactive=True):
            assert not termios.tcgetattr(follower)[3] & termios.ECHO
            os.write(leader, b"/help\n")  # typed while the line runs
        assert termios.tcgetattr(follower)[3] & termios.ECHO
        assert terminal.readline() == "/help\n"  # kept for the next prompt
        with _typeahead_unechoed(interactive=False):  # piped input: the terminal is left alone
            assert termios.tcgetattr(follower)[3] & termios.ECHO
    os.close(leader)
