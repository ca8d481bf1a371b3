"""``/healthz`` (the process answers; no key needed) and ``/readyz`` (started: kernel, service and store ready,
and the embedded model loaded; with ``database_url``, PostgreSQL answers; ``?probe=true``: and the model
answers a one-token request, through the generation queue).

The queue it reports is this process's own: each instance (and each ``--workers`` worker) has its model
queue and limits; only the stores are shared."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from kernel_app import __version__
from kernel_app.base.errors import innermost_message
from kernel_app.interfaces.server.state import State

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/readyz", summary="Readiness: the kernel is built and the model service is configured", response_model=None
)
async def readyz(
    state: State, probe: bool = Query(False, description="Also ask the model for one token")
) -> JSONResponse | dict[str, Any]:
    try:
        service = state.engine.service
    except Exception as error:
        return JSONResponse({"status": "not ready", "reason": f"no chat service: {error}"}, status_code=503)
    if not state.ready:
        return JSONResponse({"status": "not ready", "reason": "starting"}, status_code=503)
    loading = state.model_loading
    if loading is not None and not loading.done():
        return JSONResponse({"status": "not ready", "reason": "loading the model"}, status_code=503)
    failure = loading.exception() if loading is not None else None
    if failure is not None:
        reason = f"the model did not load: {innermost_message(failure)}"
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
    database = await _database(state)
    if database.get("reachable") is False:
        reason = f"the database is unavailable: {database['error']}"
        return JSONResponse({"status": "not ready", "reason": reason, "database": database}, status_code=503)
    answered = None
    if probe:
        answered = await _probe(state)
        if answered is not None and answered != "ok":
            return JSONResponse({"status": "not ready", "reason": answered}, status_code=503)
    return {
        "status": "ready",
        "model_answered": answered == "ok" if probe else None,
        "service": str(service.service_id or ""),
        "model": state.model_name,
        "functions": len(state.kernel.get_full_list_of_function_metadata()),
        "instance": state.instance,
        "database": database,
        # Per process: N instances (or workers) take N times this many generations at once.
        "queue": {
            "running": state.gate.running,
            "waiting": state.gate.waiting,
            "limit": state.gate.queue,
            "scope": "this instance",
        },
    }


async def _database(state: Any) -> dict[str, Any]:
    """The conversation store's backend, and whether PostgreSQL answers now (a short query on the pool)."""
    import asyncio

    store = state.store
    if store.backend != "postgresql":
        return {"backend": store.backend, "shared": False}
    try:
        await asyncio.to_thread(store.ping)
    except Exception as error:
        return {"backend": store.backend, "shared": True, "reachable": False, "error": innermost_message(error)}
    return {"backend": store.backend, "shared": True, "reachable": True}


async def _probe(state: Any) -> str:
    """ "ok" when the model answers a one-token request within 60 s, else why not (one line)."""
    import asyncio

    from kernel_app.conversation.engine import collect
    from kernel_app.conversation.store import Message
    from kernel_app.interfaces.server.limits import Busy, gated

    try:
        state.gate.check()
    except Busy as busy:
        return str(busy)
    events = state.plain.complete([Message("user", "Say OK.")], stream=False, options={"max_tokens": 1})
    try:
        result = await asyncio.wait_for(collect(gated(state.gate, events, 60)), 65)
    except asyncio.TimeoutError:
        return "the model did not answer within 60 s"
    return "ok" if result.error is None else f"the model failed: {result.error}"
