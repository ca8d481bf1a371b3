"""``kernel-app serve --open``: the web page opened in the user's browser once the server listens.

uvicorn's ``run`` blocks until the server stops, so a daemon thread waits for ``/healthz`` to answer and
then asks :mod:`webbrowser` (which honours ``BROWSER``) to open the page. A server bound to every address
(``0.0.0.0``, ``::``) is opened on this machine's loopback name.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Callable

ANY_ADDRESS = {"0.0.0.0", "::", ""}
PATIENCE_S = 600.0  # the embedded model loads before the server listens: minutes on a first run


def page_url(host: str, port: int) -> str:
    """The address of the page at ``/`` for a server bound to ``host``:``port``."""
    if host in ANY_ADDRESS:
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def open_when_listening(
    url: str,
    *,
    opener: Callable[[str], object] = webbrowser.open,
    patience: float = PATIENCE_S,
    every: float = 0.25,
) -> threading.Thread:
    """Open ``url`` with ``opener`` once ``url``'s ``/healthz`` answers (a daemon thread, returned)."""

    def wait_then_open() -> None:
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url.rstrip('/')}/healthz", timeout=2):
                    opener(url)
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(every)

    thread = threading.Thread(target=wait_then_open, name="open-page", daemon=True)
    thread.start()
    return thread
