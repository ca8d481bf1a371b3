"""``kernel-app serve --open``: which address the browser is sent to, and that it waits for the server."""

from __future__ import annotations

import threading

import pytest

from kernel_app.interfaces.cli.open_page import open_when_listening, page_url


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000/"),
        ("localhost", "http://localhost:8000/"),
        ("0.0.0.0", "http://127.0.0.1:8000/"),  # every address: this machine's loopback
        ("::", "http://127.0.0.1:8000/"),
        ("::1", "http://[::1]:8000/"),
    ],
)
def test_the_page_url_for_a_bound_host(host: str, expected: str) -> None:
    assert page_url(host, 8000) == expected


def test_nothing_is_opened_while_nothing_listens() -> None:
    opened: list[str] = []
    # Port 9 on loopback (discard) has no listener here: the refusal is immediate and local.
    thread = open_when_listening("http://127.0.0.1:9/", opener=opened.append, patience=0.5, every=0.05)
    thread.join(timeout=5)
    assert not thread.is_alive() and opened == []
    assert isinstance(thread, threading.Thread) and thread.daemon
