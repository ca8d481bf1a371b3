"""The suite's guard against semantic-kernel's process-wide nest_asyncio (tests/support/nested_loop.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.cli import ROOT

# In a fresh process (nest_asyncio is process-wide): an earlier "test" leaves a task that fails, the guard
# runs, then a prompt_toolkit prompt with Tab completion runs through asyncio.run. Without the guard the
# prompt meets the failure and never returns.
SCRIPT = r"""
import asyncio, io, sys
import nest_asyncio
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from kernel_app.interfaces.repl.reader import ChatCompleter, TerminalReader
from tests.support.nested_loop import cancel_leftover_tasks

nest_asyncio.apply()  # what semantic-kernel does at a template's first function call
sys.stdin = io.StringIO("")  # as under pytest: no terminal to wait on

async def left_behind():
    await asyncio.sleep(0.2)
    raise RuntimeError("failed after its test ended")

async def earlier_test():
    asyncio.ensure_future(left_behind())

asyncio.run(earlier_test())
print("cancelled", cancel_leftover_tasks())

completer = ChatCompleter(lambda: {"Writer.ShortPoem": ["input"]}, lambda: [], lambda: {})

async def tab_then_enter():
    with create_pipe_input() as pipe:
        reader = TerminalReader(None, completer, input=pipe, output=DummyOutput())
        typed = asyncio.ensure_future(reader._session.prompt_async("you> "))
        pipe.send_text("/run Writer.Sh\t")
        await asyncio.sleep(0.5)
        pipe.send_text("\r")
        return await typed

print("typed", asyncio.run(tab_then_enter()))
"""


@pytest.mark.e2e
def test_a_task_left_on_the_shared_loop_is_cancelled_before_the_next_prompt() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["cancelled 1", "typed /run Writer.ShortPoem"]
