"""`kernel-app chat` shows its prompt first and builds the kernel and loads the model meanwhile."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.errors import ConfigError
from kernel_app.commands.dispatch import ChatSession
from kernel_app.interfaces.repl.startup import StartingSession
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from tests.support.pty_chat import spawn_chat


def _session(tmp_path: Path, loads: list[str]) -> ChatSession:
    kernel = build_kernel(Settings(memory_dir=tmp_path / "memory"), chat_service=ScriptedChatCompletion()).kernel
    session = ChatSession(kernel)

    def load() -> Any:  # what the embedded service's load would do, recorded
        loads.append("model")
        return lambda: False

    session.load_in_background = load  # type: ignore[method-assign]
    session.has_model_to_load = lambda: True  # type: ignore[method-assign]
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


async def test_a_hosted_service_has_no_model_to_load_and_says_nothing(tmp_path: Path) -> None:
    loads: list[str] = []

    def build() -> ChatSession:
        session = _session(tmp_path, loads)
        session.has_model_to_load = lambda: False  # type: ignore[method-assign]
        return session

    starting = StartingSession(build, idle=lambda seconds: False)  # typing all the time
    await asyncio.to_thread(starting.session)
    await asyncio.sleep(0.3)
    assert starting.status() == "" and starting.loading() == "" and loads == []
    assert not ChatSession(starting.kernel).has_model_to_load()  # the scripted service, like a hosted one


async def test_a_session_made_not_to_start_waits_for_start_or_its_first_line(tmp_path: Path) -> None:
    built: list[str] = []

    def build() -> ChatSession:
        built.append("kernel")
        return _session(tmp_path, [])

    starting = StartingSession(build, start=False)  # the REPL starts it once the prompt is drawn
    await asyncio.sleep(0.2)
    assert built == [] and not starting.ready
    starting.start()
    starting.start()  # a second call (the prompt redrawn) does nothing
    await asyncio.to_thread(starting.session)
    assert built == ["kernel"]

    late = StartingSession(build, start=False)  # a line sent before the prompt was drawn starts it itself
    reply = await asyncio.wait_for(late.handle("/run Math.add a=2 b=3"), 20)
    assert reply.text == "5" and built == ["kernel", "kernel"]


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
    child = spawn_chat(openai_server.base_url, tmp_path)
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


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_the_status_shows_where_the_terminal_does_not_report_the_cursor(openai_server, tmp_path: Path) -> None:
    """prompt_toolkit draws its bottom toolbar only once a cursor-position report says how many rows are under
    the prompt; in a terminal that sends none the status goes on a line above the prompt instead."""
    pexpect = pytest.importorskip("pexpect")
    child = spawn_chat(openai_server.base_url, tmp_path, PROMPT_TOOLKIT_NO_CPR="1")
    child.expect("/help for commands")
    # Drawn with the first prompt, while the kernel is still being built: above the prompt, in the same frame.
    child.expect("starting: loading plugins", timeout=20)
    child.expect("you>")
    child.sendline("/run Math.add a=2 b=3")
    child.expect("5")
    child.expect("you>")
    child.sendline("/exit")
    child.expect("Bye.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


# Runs `kernel-app chat` and writes down, when the first prompt is drawn, which heavy modules are loaded.
_AT_THE_PROMPT = """
import json, os, sys
from kernel_app.interfaces.repl import startup

HEAVY = (
    "rich", "semantic_kernel", "numpy", "openai", "pydantic",
    "kernel_app.commands.dispatch", "kernel_app.conversation.engine", "memories.store",
)
REPORT = sys.argv[1]
start = startup.StartingSession.start

def start_and_report(self):
    if not os.path.exists(REPORT):  # the first call, from the first prompt's drawing (a line calls it again)
        with open(REPORT, "w") as file:
            json.dump(sorted(name for name in HEAVY if name in sys.modules), file)
    start(self)

startup.StartingSession.start = start_and_report
sys.argv = ["kernel-app", "chat"]
from kernel_app.interfaces.cli.main import main
main()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_the_first_prompt_is_drawn_before_the_heavy_imports(openai_server, tmp_path: Path) -> None:
    """What keeps the prompt within a second: rich, semantic-kernel, numpy and the engine are imported after
    it is drawn (on the kernel's thread, which starts only then), not before. The default data folder
    (no memory dir set) is what users have: finding it must not import the memory store."""
    import json

    pexpect = pytest.importorskip("pexpect")
    report = tmp_path / "loaded.json"
    child = spawn_chat(
        openai_server.base_url, tmp_path, argv=["-c", _AT_THE_PROMPT, str(report)],
        XDG_DATA_HOME=str(tmp_path / "data"), PROMPT_TOOLKIT_NO_CPR="1",
    )  # fmt: skip
    child.expect("you>")
    child.sendline("/run Math.add a=2 b=3")  # and the session still works: the thread did start
    child.expect("5")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert json.loads(report.read_text()) == []
    assert (tmp_path / "data" / "kernel-app" / "memory" / "chat_history").exists()
