"""``kernel-app serve``: the HTTP surfaces (REST API, OpenAI-compatible, MCP) over the conversation engine.

:func:`create_app` is loaded on first use (PEP 562), so importing one of the package's modules does not
import FastAPI: ``kernel-app mcp`` (stdio) and ``kernel-app teams manifest`` run without the [serve]
extra. Without it, ``create_app`` raises an ImportError that names the pip install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel_app.interfaces.server.app import create_app

__all__ = ["create_app"]

# What importing the app needs of the [serve] extra (uvicorn only runs it: `kernel-app serve`).
APP_PACKAGES = frozenset({"fastapi", "starlette"})
INSTALL_SERVE = "pip install 'kernel-app[serve]'"


def __getattr__(name: str) -> Any:
    if name != "create_app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from kernel_app.interfaces.server.app import create_app
    except ImportError as error:
        missing = error.name or ""
        if missing.partition(".")[0] not in APP_PACKAGES:
            raise
        raise ImportError(
            f"create_app needs {missing.partition('.')[0]}, from the [serve] extra: {INSTALL_SERVE}", name=missing
        ) from error
    globals()["create_app"] = create_app
    return create_app
