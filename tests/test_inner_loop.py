"""The suite's inner loop guard (tests/support/inner_loop.py): outside ``e2e``, starting something fails."""

from __future__ import annotations

import ctypes.util
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support import inner_loop
from tests.support.inner_loop import StartsSomething


@pytest.fixture(autouse=True)
def refusals_expected_here() -> Iterator[None]:
    """These tests provoke refusals on purpose: do not let conftest's guard fail them afterwards."""
    yield
    inner_loop.refused.clear()


def test_a_subprocess_is_refused_with_what_to_do() -> None:
    with pytest.raises(StartsSomething, match=r"starts a subprocess \(python.*\).*@pytest\.mark\.e2e"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_a_server_is_refused() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        with pytest.raises(StartsSomething, match="starts a server"):
            server.listen()


def test_loading_an_embedded_model_is_refused() -> None:
    from kernel_app.providers.embedder.minilm import _ENCODERS

    def load() -> object:
        raise AssertionError("the guard should refuse before anything loads")

    with pytest.raises(StartsSomething, match=r"loads an embedded model \(model\.onnx\)"):
        _ENCODERS.get(("/nowhere/model.onnx", "cpu", 1), load)


def test_a_library_probing_the_system_on_import_is_not_refused() -> None:
    ctypes.util.find_library("c")  # runs ldconfig (or gcc) in a subprocess on Linux
    assert inner_loop.refused == [], f"a system probe was refused: {inner_loop.refused}"


def test_a_test_using_a_fixture_that_starts_a_server_is_e2e(request: pytest.FixtureRequest, openai_server) -> None:
    assert request.node.get_closest_marker("e2e") is not None, "openai_server starts a server: the test is e2e"
    assert inner_loop.refused == []
