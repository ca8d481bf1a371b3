"""chat-copilot's unmodified web app (its production build in ``../shared/chat-copilot-webapp``), served on a
free port by its own ``serve_webapp.py`` for a backend the test chooses once that backend serves."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.support.cli import ROOT

WEBAPP = ROOT.parent / "shared" / "chat-copilot-webapp"


@contextmanager
def web_app() -> Iterator[tuple[str, Callable[[str], None]]]:
    """The built web app on a free port: (the page's origin, a function that points it at a backend)."""
    sys.path.insert(0, str(WEBAPP))
    try:
        import serve_webapp  # shared/chat-copilot-webapp's static server
    finally:
        sys.path.remove(str(WEBAPP))
    serve_webapp.Handler.log_message = lambda *_: None  # the page's requests are no test output
    server = serve_webapp.make_server("http://127.0.0.1:1/copilot/", port=0)

    def point_at(backend: str) -> None:
        # make_server bakes the backend into a Handler subclass (wrapped in a partial): the backend's address
        # is known only once it serves, and it must know the page's origin (CORS) before it starts.
        server.RequestHandlerClass.func.backend = backend.rstrip("/").encode() + b"/"

    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", point_at
    finally:
        server.shutdown()
        server.server_close()
