"""``kernel-app serve``: the HTTP surfaces (REST API, OpenAI-compatible, MCP) over the conversation engine.

Importing this package imports FastAPI; the CLI imports it only inside ``serve``.
"""

from kernel_app.interfaces.server.app import create_app

__all__ = ["create_app"]
