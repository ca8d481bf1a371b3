"""The inner loop, ``pytest -m "not e2e"``: what a test outside it starts, and the guard that keeps it honest.

A test is end to end (``e2e``) when it starts a process, a server (anything that listens on a socket,
loopback stubs included), a terminal or a model. tests/conftest.py marks most of them from the fixtures
they use or the folder they are in; the rest carry ``@pytest.mark.e2e`` themselves. A test left unmarked
that starts one of these anyway fails at once with ``StartsSomething``, naming what it started, instead
of quietly making the inner loop slow.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import pytest

# Fixtures that start something: a test that uses one is e2e. ``served`` is the name every test
# module gives the app served by uvicorn on loopback; ``connector`` is Teams' fake connector (a server).
E2E_FIXTURES = frozenset(
    {"openai_server", "tool_server", "served", "connector", "stub_server", "postgres_server", "postgres_url"}
)

# Folders whose every test starts a server (tests/ relative, "/" separated).
E2E_FOLDERS = ("interfaces/chat_copilot/",)

HOW_TO = 'mark the test @pytest.mark.e2e so that `pytest -m "not e2e"` stays a fast inner loop'

# Libraries probe the system when first imported (ctypes.util.find_library runs ldconfig or gcc, the
# openai client among them): whichever test imports them first is not starting anything of its own.
SYSTEM_PROBES = frozenset({"ldconfig", "gcc", "cc", "ld", "objdump", "uname"})

# What the guard refused during the current test, for refusals raised where the test cannot see them
# (uvicorn's thread, a library that turns the error into its own): the fixture fails the test with them.
refused: list[str] = []


class StartsSomething(AssertionError):
    """A test outside the e2e marker started a process, a server or a model."""


def is_e2e(item: pytest.Item, tests_root: str) -> bool:
    """Whether ``item`` is e2e by its markers, its fixtures or its folder."""
    if item.get_closest_marker("e2e") or item.get_closest_marker("local_model"):
        return True
    if E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    path = os.path.relpath(str(item.path), tests_root).replace(os.sep, "/")
    return path.startswith(E2E_FOLDERS)


def _refusal(what: str) -> StartsSomething:
    message = f"this test {what}, but is not marked e2e: {HOW_TO}"
    refused.append(message)
    return StartsSomething(message)


def _refuse(what: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise _refusal(what)

    return refuse


def _popen_unless_a_probe(original: Any) -> Any:
    def popen_init(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
        program = (os.path.basename(os.fsdecode(argv[0])).split() or [""])[0] if argv else ""
        if program not in SYSTEM_PROBES:
            raise _refusal(f"starts a subprocess ({program})")
        original(self, args, *rest, **kwargs)

    return popen_init


def _loads_a_model(original: Any) -> Any:
    """``LoadOnce.get`` for the embedded chat model and embedder caches refuses a load; other caches pass."""

    def get(self: Any, key: Any, load: Any) -> Any:
        if key not in self and any(
            self is getattr(sys.modules.get(module), name, None)
            for module, name in (
                ("kernel_app.providers.llama.service", "_MODELS"),
                ("kernel_app.providers.embedder.minilm", "_ENCODERS"),
            )
        ):
            raise _refusal(f"loads an embedded model ({os.path.basename(str(key[0]))})")
        return original(self, key, load)

    return get


def refuse_processes_servers_and_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """For one test: starting a subprocess, forking, listening on a socket or loading a model raises
    (and is kept in ``refused``)."""
    from kernel_app.providers.load_once import LoadOnce

    refused.clear()
    monkeypatch.setattr(subprocess.Popen, "__init__", _popen_unless_a_probe(subprocess.Popen.__init__))
    monkeypatch.setattr(os, "fork", _refuse("forks a process"))
    monkeypatch.setattr(os, "forkpty", _refuse("opens a terminal (forkpty)"))
    monkeypatch.setattr(socket.socket, "listen", _refuse("starts a server (listens on a socket)"))
    monkeypatch.setattr(LoadOnce, "get", _loads_a_model(LoadOnce.get))
