"""Shared fixtures. Network outside loopback is a failure, here and in every subprocess we start."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from tests.support.cli import ISOLATED_PREFIXES, NETGUARD

sys.path.insert(0, str(NETGUARD))
import sitecustomize as netguard

netguard.install()


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No user config, no real keys: every test starts from a fresh machine's environment."""
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@pytest.fixture(autouse=True)
def no_tasks_left_on_a_shared_loop() -> Iterator[None]:
    """semantic-kernel's nest_asyncio makes asyncio.run share one loop between tests: clean it after each
    (see tests/support/nested_loop.py for the hang this prevents)."""
    yield
    from tests.support.nested_loop import cancel_leftover_tasks

    cancel_leftover_tasks()


@pytest.fixture
def openai_server() -> Iterator[object]:
    from tests.support.openai_stub import OpenAIStubServer

    server = OpenAIStubServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def scripted():
    """The scripted chat service: functions run by an executor get the default answer; a test queues the
    planner's answers. Modules that need another service define their own ``scripted``/``kernel``."""
    from kernel_app.providers.scripted import ScriptedChatCompletion

    return ScriptedChatCompletion(default="scripted function output")


@pytest.fixture
def kernel(scripted):
    """A kernel of the built-in plugins on the ``scripted`` service."""
    from kernel_app.base.config import Settings
    from kernel_app.kernel.builder import build_kernel

    return build_kernel(Settings(), chat_service=scripted).kernel


@pytest.fixture
def tool_server() -> Iterator[object]:
    """The loopback OpenAI-compatible server that answers with scripted tool calls (function-calling tests)."""
    from tests.support.tool_call_server import ToolCallServer

    server = ToolCallServer()
    server._thread.start()
    try:
        yield server
    finally:
        server._httpd.shutdown()
        server._httpd.server_close()


@pytest.fixture
def settings():
    from kernel_app.base.config import load_settings

    return load_settings()
