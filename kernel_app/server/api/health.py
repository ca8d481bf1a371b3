"""``/healthz`` (the process answers; no key needed) and ``/readyz`` (started: kernel, service and store ready)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kernel_app import __version__
from kernel_app.server.state import State

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/readyz", summary="Readiness: the kernel is built and the model service is configured", response_model=None
)
async def readyz(state: State) -> JSONResponse | dict[str, Any]:
    try:
        service = state.engine.service
    except Exception as error:
        return JSONResponse({"status": "not ready", "reason": f"no chat service: {error}"}, status_code=503)
    if not state.ready:
        return JSONResponse({"status": "not ready", "reason": "starting"}, status_code=503)
    return {
        "status": "ready",
        "service": str(service.service_id or ""),
        "model": state.model_name,
        "functions": len(state.kernel.get_full_list_of_function_metadata()),
        "queue": {"running": state.gate.running, "waiting": state.gate.waiting, "limit": state.gate.queue},
    }
