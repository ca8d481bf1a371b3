"""`kernel-app chat` shows its prompt first and builds the kernel and loads the model meanwhile."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from kernel_app.chat_session import ChatSession
from kernel_app.config import Settings
from kernel_app.errors import ConfigError
from kernel_app.kernel_builder import build_kernel
from kernel_app.repl.startup import StartingSession
from kernel_app.services.scripted import ScriptedChatCompletion
from tests.conftest import cli_env


def _session(tmp_path: Path, loads: list[str]) -> ChatSession:
    kernel = build_kernel(Settings(memory_dir=tmp_path / "memory"), chat_service=ScriptedChatCompletion()).kernel
    session = ChatSession(kernel)

    def load() -> Any:  # what the embedded service's load would do, recorded
        loads.append("model")
        return lambda: False

    session.load_in_background = load  # type: ignore[method-assign]
    return session


async def test_lines_wait_for_the_kernel_and_exit_does_not(tmp_path: Path) -> None:
    release, loads = threading.Event(), []

    def build() -> ChatSession:
        release.wait(10)
        return _session(tmp_path, loads)

    starting = StartingSession(build)
    assert starting.loading().startswith("starting") and starting.status().startswith("starting")
    assert starting.usage.calls == 0 and starting.results == {} and starting.kernel is None
    running = asyncio.ensure_future(starting.handle("/run Math.add a=2 b=3"))
    await asyncio.sleep(0.2)
    assert not running.done()  # the first line waits for the kernel...
    assert (await starting.handle("/exit")).kind == "exit"  # ...but leaving does not
    release.set()
    reply = await asyncio.wait_for(running, 20)
    assert (reply.kind, reply.text) == ("result", "5") and starting.results["last"] == "5"


async def test_the_model_loads_only_once_nobody_is_typing(tmp_path: Path) -> None:
    typing, loads = threading.Event(), []
    typing.set()
    starting = StartingSession(lambda: _session(tmp_path, loads), idle=lambda seconds: not typing.is_set())
    await asyncio.to_thread(starting.session)
    await asyncio.sleep(0.3)
    assert loads == [] and "when you pause typing" in starting.status()
    typing.clear()
    for _ in range(50):
        if loads:
            break
        await asyncio.sleep(0.1)
    assert loads == ["model"] and starting.status() == ""


async def test_a_failed_start_is_said_at_once_and_ends_the_session() -> None:
    said: list[str] = []

    def build() -> ChatSession:
        raise ConfigError("OPENAI_API_KEY is not set: export it")

    starting = StartingSession(build, warn=said.append)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        await starting.handle("Hello")
    assert said == ["error: OPENAI_API_KEY is not set: export it"] and starting.loading() == ""


def _expect(child: Any, pattern: str) -> None:
    """Expect ``pattern``, answering the terminal's cursor-position requests on the way, as a terminal
    does (prompt_toolkit draws the line under the prompt only when it knows the screen's height)."""
    while child.expect([pattern, "\x1b\\[6n"]) == 1:
        child.send("\x1b[5;1R")


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_the_prompt_comes_before_the_kernel(openai_server, tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    env = cli_env(
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=openai_server.base_url,
        KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"),
        TERM="xterm",
    )
    child = pexpect.spawn(
        sys.executable, ["-m", "kernel_app", "chat"], env=env, encoding="utf-8", timeout=60, dimensions=(30, 100),
        cwd=os.getcwd(),
    )  # fmt: skip
    _expect(child, "you>")
    # Drawn while semantic-kernel and the plugins still load: the line under the prompt says so.
    _expect(child, "starting: loading plugins")
    child.sendline("/run Math.add a=2 b=3")  # typed at once: it waits for the kernel, then runs
    _expect(child, "5")
    _expect(child, "you>")
    child.sendline("/exit")
    _expect(child, "Bye.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
