"""Our own web page at ``/``: chat, plans, a function runner and memory in the browser.

Static HTML, CSS and plain ES modules shipped in the package (``static/``): no Node build, nothing fetched
from elsewhere at run time. The page talks to the REST API under ``/v1`` like any client; this module
adds only what a browser needs besides: the page and its files, how to sign in (``/web/config.json``) and
markdown rendered on the server (``POST /web/render``, :mod:`.render`).
"""

from kernel_app.interfaces.server.web.routes import OPEN_PATHS, router, sign_in

__all__ = ["OPEN_PATHS", "router", "sign_in"]
