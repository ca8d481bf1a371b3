"""Shared fixtures. Network outside loopback is a failure, here and in every subprocess we start.

Tests that start a process, a server, a terminal or a model are marked ``e2e`` (tests/support/inner_loop.py):
``pytest -m "not e2e"`` is the fast inner loop, and a test in it that starts one of these fails.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import inner_loop
from tests.support.cli import ISOLATED_PREFIXES, NETGUARD
from tests.support.inner_loop import is_e2e, refuse_processes_servers_and_models

sys.path.insert(0, str(NETGUARD))
import sitecustomize as netguard

netguard.install()

TESTS_ROOT = str(Path(__file__).resolve().parent)


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the marks it reads are added here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if is_e2e(item, TESTS_ROOT) and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def inner_loop_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test outside ``e2e`` may not start a process, a server or a model (it would slow the inner loop)."""
    if request.node.get_closest_marker("e2e") is not None:
        yield
        return
    refuse_processes_servers_and_models(monkeypatch)
    yield
    if inner_loop.refused:  # refused where the test could not see it, e.g. in uvicorn's thread
        pytest.fail(inner_loop.refused[0], pytrace=False)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No user config, no user data, no real keys: every test starts from a fresh machine's environment
    (and never writes memory, conversations, the eval cache or the call log into the real data folder)."""
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


@pytest.fixture(autouse=True)
def no_tasks_left_on_a_shared_loop() -> Iterator[None]:
    """semantic-kernel's nest_asyncio makes asyncio.run share one loop between tests: clean it after each
    (see tests/support/nested_loop.py for the hang this prevents)."""
    yield
    from tests.support.nested_loop import cancel_leftover_tasks

    cancel_leftover_tasks()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the test item, so fixtures can see a failure (browser screenshots)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


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
