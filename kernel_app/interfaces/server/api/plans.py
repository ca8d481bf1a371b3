"""Plans: create (returns the plan, nothing runs), execute by id (that is the approval), get.

Plans live for the server's lifetime. A plan runs at most once: a second execute is a 409.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kernel_app.interfaces.server.errors import ApiError
from kernel_app.interfaces.server.state import State

router = APIRouter(prefix="/v1/plans", tags=["plans"])


class NewPlan(BaseModel):
    goal: str = Field(min_length=1, description="What you want done, in plain words")
    exclude: list[str] = Field(default_factory=list, description="Plugin.Function names (or Plugin) not to use")


@dataclass
class StoredPlan:
    id: str
    goal: str
    plan: Any
    catalogue: Any
    created_at: float = field(default_factory=time.time)
    status: str = "proposed"  # proposed, running, done, failed
    result: str | None = None
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "goal": self.goal,
            "status": self.status,
            "plan": self.plan.to_dict(),
            "text": str(self.plan),
            "result": self.result,
            "error": self.error,
            "usage": self.usage,
            "created_at": self.created_at,
        }


@router.post("", status_code=201, summary="Plan a goal; nothing runs until you execute it")
async def create(body: NewPlan, state: State) -> dict[str, Any]:
    from planners import SequentialPlanner

    state.gate.check()
    await state.gate.acquire()
    try:
        planner = SequentialPlanner(state.kernel, excluded=body.exclude or None)
        plan = await planner.create_plan(body.goal)
    finally:
        state.gate.release()
    stored = StoredPlan(f"plan_{uuid.uuid4().hex[:12]}", body.goal, plan, planner.catalogue)
    stored.usage = planner.last_usage.to_dict()
    state.plans[stored.id] = stored
    return stored.to_dict()


@router.get("/{plan_id}", summary="A plan and, once executed, its result")
async def get(plan_id: str, state: State) -> dict[str, Any]:
    return _find(state, plan_id).to_dict()


@router.post("/{plan_id}/execute", summary="Approve and run a plan (once)")
async def execute(plan_id: str, state: State) -> dict[str, Any]:
    from planners import PlanExecutor

    stored = _find(state, plan_id)
    async with stored.lock:
        if stored.status != "proposed":
            raise ApiError(409, f"plan {plan_id} was already executed ({stored.status})", "plan_already_executed")
        stored.status = "running"
    state.gate.check()
    await state.gate.acquire()
    try:
        result = await PlanExecutor(state.kernel, catalogue=stored.catalogue).execute(stored.plan)
    except Exception as error:
        from kernel_app.base.errors import innermost_message

        stored.status, stored.error = "failed", str(error).splitlines()[0] if str(error) else innermost_message(error)
        raise ApiError(422, stored.error, "plan_failed") from None
    finally:
        state.gate.release()
    stored.status, stored.result = "done", result.result
    stored.usage = result.usage.to_dict()
    return stored.to_dict()


def _find(state: Any, plan_id: str) -> StoredPlan:
    stored = state.plans.get(plan_id)
    if stored is None:
        raise ApiError(404, f"no plan {plan_id!r}: plans last while the server runs", "plan_not_found")
    return stored
