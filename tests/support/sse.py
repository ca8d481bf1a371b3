"""Server-sent events as the REST API writes them: ``event: TYPE`` / ``data: JSON`` frames."""

from __future__ import annotations

import json
from typing import Any


def sse_events(text: str) -> list[dict[str, Any]]:
    """An SSE body's frames, each its data, checked to name the same type in ``event:`` and the data."""
    found = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            data = json.loads(lines["data"])
            assert lines["event"] == data["type"]
            found.append(data)
    return found
