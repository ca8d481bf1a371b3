"""Plans: create (returns the plan, nothing runs), execute by id (that is the approval), get.

Plans live for the server's lifetime. A plan runs at most once: a second execute is a 409. The planner
is chosen by ``planner`` through the planner factory (:mod:`planners.factory`), the same kinds as every
surface. ``function-calling`` makes no plan to review: create checks the request and keeps the goal,
and execute lets the model call the functions itself; a call with an effect runs only as the server
runs calls no one is asked about (:func:`kernel_app.interfaces.server.chat_surface.runs_unasked`), the
rest are answered "not run", and the calls that ran become the plan shown afterwards.
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
from planners.factory import DEFAULT_PLANNER

router = APIRouter(prefix="/v1/plans", tags=["plans"])


class NewPlan(BaseModel):
    goal: str = Field(min_length=1, description="What you want done, in plain words")
    exclude: list[str] = Field(default_factory=list, description="Plugin.Function names (or Plugin) not to use")
    planner: str = Field(
        default=DEFAULT_PLANNER,
        description="sequential (several steps), action (one call) or function-calling (no plan to review: "
        "on execute the model calls the functions; a MODEL or WRITE call runs only as the server allows unasked)",
    )


@dataclass
class StoredPlan:
    id: str
    goal: str
    plan: Any  # planners.Plan; None for function-calling until it ran (then the calls that ran)
    catalogue: Any
    planner: str = DEFAULT_PLANNER
    exclude: list[str] = field(default_factory=list)
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
            "planner": self.planner,
            "plan": None if self.plan is None else self.plan.to_dict(),
            "text": FUNCTION_CALLING_TEXT if self.plan is None else str(self.plan),
            "result": self.result,
            "error": self.error,
            "usage": self.usage,
            "created_at": self.created_at,
        }


FUNCTION_CALLING_TEXT = "(function-calling: no plan to review; on execute the model calls the functions itself)"


@router.post("", status_code=201, summary="Plan a goal; nothing runs until you execute it")
async def create(body: NewPlan, state: State) -> dict[str, Any]:
    from planners.factory import create_planner, proposes_plan

    plan_id = f"plan_{uuid.uuid4().hex[:12]}"
    if not proposes_plan(body.planner):  # an unknown kind: a 400 naming the kinds
        create_planner(body.planner, state.kernel, excluded=body.exclude or None)  # a bad --exclude fails now
        stored = StoredPlan(plan_id, body.goal, None, None, planner=body.planner, exclude=list(body.exclude))
        state.plans[stored.id] = stored
        return stored.to_dict()
    state.gate.check()
    await state.gate.acquire()
    try:
        planner: Any = create_planner(body.planner, state.kernel, excluded=body.exclude or None)
        plan = await planner.create_plan(body.goal)
    finally:
        state.gate.release()
    stored = StoredPlan(plan_id, body.goal, plan, planner.catalogue, planner=body.planner, exclude=list(body.exclude))
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
        if stored.plan is None:  # function-calling: it plans and runs in one go
            answer, calls, usage = await _call_functions(state, stored)
            stored.plan = calls
        else:
            result = await PlanExecutor(state.kernel, catalogue=stored.catalogue).execute(stored.plan)
            answer, usage = result.result, result.usage
    except Exception as error:
        from kernel_app.base.errors import innermost_message

        stored.status, stored.error = "failed", str(error).splitlines()[0] if str(error) else innermost_message(error)
        raise ApiError(422, stored.error, "plan_failed") from None
    finally:
        state.gate.release()
    stored.status, stored.result = "done", answer
    stored.usage = usage.to_dict()
    return stored.to_dict()


async def _call_functions(state: Any, stored: StoredPlan) -> tuple[str, Any, Any]:
    """A function-calling goal, run: its answer, the calls that ran (a Plan) and the usage. Executing is
    the approval of the goal, not of each call: one with an effect runs only if the server runs it
    unasked, as on the OpenAI-compatible endpoint where no one can be asked."""
    from kernel_app.interfaces.server.chat_surface import runs_unasked
    from planners.factory import create_planner

    def approve_call(request: Any) -> bool:
        return runs_unasked(state, request.effect.value)

    caller: Any = create_planner(
        stored.planner, state.kernel, excluded=stored.exclude or None, approve_call=approve_call
    )
    outcome = await caller.run(stored.goal)
    return outcome.answer, outcome.trace, outcome.usage


def _find(state: Any, plan_id: str) -> StoredPlan:
    stored = state.plans.get(plan_id)
    if stored is None:
        raise ApiError(404, f"no plan {plan_id!r}: plans last while the server runs", "plan_not_found")
    return stored
