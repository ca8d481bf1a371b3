"""Server-sent events for our REST API: ``event: TYPE`` and ``data: JSON`` per engine event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from kernel_app.conversation.events import Event

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(data: dict[str, Any], event: str | None = None) -> str:
    """One event; its name is ``event``, else the data's ``type`` (a payload of another shape names it)."""
    name = event or data.get("type", "message")
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


async def _frames(events: AsyncIterator[Event]) -> AsyncIterator[str]:
    async for event in events:
        yield frame(event.to_dict())


def event_stream(events: AsyncIterator[Event]) -> StreamingResponse:
    return StreamingResponse(_frames(events), media_type="text/event-stream", headers=HEADERS)
