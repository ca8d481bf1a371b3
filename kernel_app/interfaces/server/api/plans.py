"""Plans: create (returns the plan, nothing runs), execute by id (that is the approval), get, list.

Plans are kept in a store (:mod:`.plan_store`: SQLite beside the conversation store, or PostgreSQL with
``database_url``), so they survive a restart and every server on one database sees them. A plan runs at
most once, wherever it is executed: a second execute is a 409 with its status. The planner
is chosen by ``planner`` through the planner factory (:mod:`planners.factory`), the same kinds as every
surface. ``function-calling`` makes no plan to review: create checks the request and keeps the goal,
and execute lets the model call the functions itself; a call with an effect runs only as the server
runs calls no one is asked about (:func:`kernel_app.interfaces.server.chat_surface.runs_unasked`), the
rest are answered "not run", and the calls that ran become the plan shown afterwards.

Execute with ``Accept: text/event-stream`` streams the run step by step (the plan executor's ``on_step``
as the engine's ``PlanStepStarted`` and ``PlanStepFinished`` events, then ``plan_finished``), for a status
line like "step 2 of 3: BusinessThinking.SWOT"; without it, the answer is the plan once it ran, as
before. Either way the record keeps each step's result (``steps``), and ``GET /v1/plans?conversation_id=``
lists the plans executed into a conversation, so a page shows them again after a reload.

A plan is its asker's: only the caller who proposed it (their principal: a signed-in user, an API key)
gets or executes it; anyone else gets 404, and it does not run. Key-less local use sees every plan.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from kernel_app.conversation.events import Event, PlanStepFinished, PlanStepStarted
from kernel_app.conversation.off_loop import off_the_loop
from kernel_app.interfaces.server.api.plan_store import RestPlanRecord, RestPlanStore
from kernel_app.interfaces.server.errors import ApiError
from kernel_app.interfaces.server.pg_decisions import PgDecisionStore, open_decisions
from kernel_app.interfaces.server.security import identity_of, owner_filter
from kernel_app.interfaces.server.side_store import DecisionStore
from kernel_app.interfaces.server.sse import HEADERS, frame
from kernel_app.interfaces.server.state import State
from planners.factory import DEFAULT_PLANNER

router = APIRouter(prefix="/v1/plans", tags=["plans"])
log = logging.getLogger("kernel_app.server")


class NewPlan(BaseModel):
    goal: str = Field(min_length=1, description="What you want done, in plain words")
    exclude: list[str] = Field(default_factory=list, description="Plugin.Function names (or Plugin) not to use")
    planner: str = Field(
        default=DEFAULT_PLANNER,
        description="sequential (several steps), action (one call) or function-calling (no plan to review: "
        "on execute the model calls the functions; a MODEL or WRITE call runs only as the server allows unasked)",
    )


class Approval(BaseModel):
    plan: dict[str, Any] | None = Field(
        default=None,
        description="The plan as the reviewer edited it (its steps' arguments); checked against the catalogue "
        "again before it runs. Empty: the plan as proposed",
    )
    conversation_id: str | None = Field(
        default=None, description="A conversation the goal and the result join (as the REPL's /plan does)"
    )


def to_dict(record: RestPlanRecord) -> dict[str, Any]:
    """A plan as the API shows it."""
    from planners import Plan

    plan = None if record.plan is None else Plan.from_dict(record.plan)
    error = record.error or (record.outcome if record.state == "interrupted" else None)
    return {
        "id": record.id,
        "goal": record.goal,
        "status": record.status,
        "planner": record.planner,
        "plan": record.plan,
        "text": FUNCTION_CALLING_TEXT if plan is None else str(plan),
        "result": record.result,
        "error": error,
        "usage": record.usage,
        "steps": record.steps,
        "conversation_id": record.conversation_id,
        "created_at": record.created_at,
    }


FUNCTION_CALLING_TEXT = "(function-calling: no plan to review; on execute the model calls the functions itself)"


@router.post("", status_code=201, summary="Plan a goal; nothing runs until you execute it")
async def create(body: NewPlan, state: State, request: Request) -> dict[str, Any]:
    from kernel_app.kernel.screening import require_clean, screen_of
    from planners.factory import create_planner, proposes_plan

    await require_clean(screen_of(state.kernel), body.goal, "input")  # a blocked goal: 422 content_blocked
    plan_id = f"plan_{uuid.uuid4().hex[:12]}"
    owner = identity_of(request).principal
    if not proposes_plan(body.planner):  # an unknown kind: a 400 naming the kinds
        create_planner(body.planner, state.kernel, excluded=body.exclude or None)  # a bad --exclude fails now
        record = RestPlanRecord(plan_id, body.goal, None, planner=body.planner, exclude=list(body.exclude), owner=owner)
        plans(state).add(record)
        return to_dict(record)
    state.gate.check()
    await state.gate.acquire()
    try:
        planner: Any = create_planner(body.planner, state.kernel, excluded=body.exclude or None)
        plan = await planner.create_plan(body.goal)
    finally:
        state.gate.release()
    record = RestPlanRecord(
        plan_id,
        body.goal,
        plan.to_dict(),
        planner=body.planner,
        exclude=list(body.exclude),
        usage=planner.last_usage.to_dict(),
        owner=owner,
    )
    plans(state).add(record)
    return to_dict(record)


@router.get("/{plan_id}", summary="A plan and, once executed, its result")
async def get(plan_id: str, state: State, request: Request) -> dict[str, Any]:
    return to_dict(_find(state, plan_id, owner_filter(request)))


@router.get("", summary="The plans executed into a conversation, oldest first, with their steps' results")
async def list_plans(
    state: State,
    request: Request,
    conversation_id: str = Query(description="The conversation the plans were executed into"),
) -> dict[str, Any]:
    owner = owner_filter(request)
    await off_the_loop(state.store, state.store.get, conversation_id, owner=owner)  # another's or none: 404
    found = plans(state).having("conversation_id", conversation_id)
    return {"data": [to_dict(record) for record in found if owner is None or record.owner == owner]}


@router.post(
    "/{plan_id}/execute",
    summary="Approve and run a plan (once, on whichever server), as proposed or edited",
    description="With `Accept: text/event-stream` the steps stream as they run: `plan_step_started` "
    '(its number, function and status line, "step 2 of 3: BusinessThinking.SWOT"), `plan_step_finished` '
    "(its result, or ok false and its error), then `plan_finished` (the plan as GET shows it). Otherwise "
    "the answer is that plan once it ran (a failure: 422 plan_failed).",
    response_model=None,
)
async def execute(
    plan_id: str, state: State, request: Request, body: Approval | None = None
) -> dict[str, Any] | StreamingResponse:
    body = body or Approval()
    store = plans(state)
    record = _find(state, plan_id, owner_filter(request))  # another's plan: 404, before anything is decided
    edits = _edited(state, record, body.plan) if body.plan is not None else None
    if body.conversation_id is not None:
        # 404 before the plan runs
        await off_the_loop(state.store, state.store.get, body.conversation_id, owner=owner_filter(request))
    if record.state == "waiting":
        state.gate.check()  # a busy server says so before it takes the plan (it can be executed again)
    # The approval: one conditional UPDATE, so of two executes (here or on another server) one runs it;
    # the edits are written by the same update, so only the execute that wins keeps its version.
    changes: dict[str, Any] = {"conversation_id": body.conversation_id}
    if edits is not None:
        changes["plan"] = edits
    if not store.decide(plan_id, "approved", "running", changes=changes):
        decided = store.get(plan_id) or record
        raise ApiError(409, f"plan {plan_id} was already executed ({decided.status})", "plan_already_executed")
    if edits is not None:
        record.plan = edits
    record.conversation_id = body.conversation_id
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(_streamed(state, record), media_type="text/event-stream", headers=HEADERS)
    return await _run(state, record, _ignore)


def _ignore(_event: Event) -> None:
    """Where a plan's step events go when no one streams them (the record still keeps the steps)."""


async def _run(state: Any, record: RestPlanRecord, emit: Callable[[Event], None]) -> dict[str, Any]:
    """Run an approved plan (its place at the gate held), tell ``emit`` each step's start and end, and
    keep the outcome and the steps' results in the record: the plan as GET shows it, or a 422."""
    from planners import Plan, PlanExecutor
    from planners.errors import PlanExecutionError

    store = plans(state)
    steps: dict[int, dict[str, Any]] = {}  # step number -> the step as the record keeps it
    total = len(record.plan["steps"]) if record.plan is not None else 0

    def keep(event: PlanStepStarted | PlanStepFinished) -> None:
        """The step into the record as it starts and ends: a page opened during the run shows them."""
        emit(event)
        steps[event.step] = event.kept()
        store.update_running(record.id, {"steps": [steps[number] for number in sorted(steps)]})

    def on_step(event: str, number: int, step: Any, result: Any) -> None:
        if event == "started":
            keep(PlanStepStarted.of(record.id, number, total, step.function, step.output))
        elif result is not None:
            seconds = round(result.seconds, 3)
            keep(PlanStepFinished(record.id, number, total, step.function, step.output, result.output, seconds))

    def kept() -> list[dict[str, Any]]:
        """The steps that ended (one cut short by another's failure did not)."""
        return [steps[number] for number in sorted(steps) if steps[number]["status"] != "running"]

    await state.gate.acquire()
    try:
        if record.plan is None:  # function-calling: it plans and runs in one go
            answer, calls, usage = await _call_functions(state, record)
            record.plan = calls.to_dict()
        else:
            # The catalogue the planner used, rebuilt from the kernel and the plan's exclusions: the
            # executor checks the plan against it again, so a function outside it never runs.
            executor = PlanExecutor(state.kernel, excluded=record.exclude or None, on_step=on_step)
            result = await executor.execute(Plan.from_dict(record.plan))
            answer, usage = result.result, result.usage
    except Exception as error:
        from kernel_app.base.errors import innermost_message

        message = str(error).splitlines()[0] if str(error) else innermost_message(error)
        if isinstance(error, PlanExecutionError) and record.plan is not None:
            output_name = record.plan["steps"][error.step - 1].get("output", "")
            what = message.removeprefix(f"step {error.step} ({error.function}) ")  # the step's line names it
            failed = PlanStepFinished(record.id, error.step, total, error.function, output_name, ok=False, error=what)
            emit(failed)
            steps[error.step] = failed.kept()
        store.finish(record.id, "failed", message, {"error": message, "plan": record.plan, "steps": kept()})
        raise ApiError(422, message, "plan_failed") from None
    finally:
        state.gate.release()
    settled = {"result": answer, "usage": usage.to_dict(), "plan": record.plan, "steps": kept()}
    store.finish(record.id, "done", "done", settled)
    if record.conversation_id is not None:
        from kernel_app.interfaces.server.chat_surface import remember_plan

        remember_plan(state, record.conversation_id, record.goal, answer)
    return to_dict(store.get(record.id) or record)


_RUNNING: set[asyncio.Task[Any]] = set()  # streamed plans' runs: kept here, so none is collected mid-run


async def _streamed(state: Any, record: RestPlanRecord) -> AsyncIterator[str]:
    """A plan's run as server-sent events. The run is a task of its own: a client that goes away stops
    only the events, and the plan still ends and keeps its outcome (a reloaded page finds it)."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def run() -> dict[str, Any]:
        try:
            return await _run(state, record, queue.put_nowait)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run(), name=f"plan {record.id}")
    _RUNNING.add(task)
    task.add_done_callback(_settled)
    while (event := await queue.get()) is not None:
        yield frame(event.to_dict())
    try:
        await task
    except ApiError:
        pass  # a failed plan: its record says so (status failed, error)
    except Exception:  # after its outcome was kept (joining the conversation): the plan itself ended
        log.exception("plan %s: what followed its run failed", record.id)
    finished = plans(state).get(record.id) or record
    yield frame({"type": "plan_finished", **to_dict(finished)})


def _settled(task: asyncio.Task[Any]) -> None:
    _RUNNING.discard(task)
    if not task.cancelled() and task.exception() is not None:  # retrieved: a failure is the record's
        log.debug("plan run ended with %s", type(task.exception()).__name__)


@router.post("/{plan_id}/reject", summary="Reject a proposed plan: it never runs")
async def reject(plan_id: str, state: State, request: Request) -> dict[str, Any]:
    store = plans(state)
    record = _find(state, plan_id, owner_filter(request))  # another's plan: 404, as for execute
    if not store.decide(plan_id, "rejected", "rejected"):
        decided = store.get(plan_id) or record
        raise ApiError(409, f"plan {plan_id} was already decided ({decided.status})", "plan_already_executed")
    return to_dict(store.get(plan_id) or record)


def _edited(state: Any, record: RestPlanRecord, edited: dict[str, Any]) -> dict[str, Any]:
    """A reviewer's version of a proposed plan, checked as every plan is (against the catalogue the
    planner used): a 400 naming the first problem, before anything is approved."""
    from planners import Plan, PlanExecutor
    from planners.errors import PlanParseError, PlanValidationError

    if record.plan is None:
        message = "plan: a function-calling goal has no plan to edit; execute it as it is"
        raise ApiError(400, message, "plan_not_editable")
    try:
        plan = Plan.from_dict(edited)
        PlanExecutor(state.kernel, excluded=record.exclude or None).validate(plan)  # as execute checks it
    except (PlanParseError, PlanValidationError) as error:
        raise ApiError(400, f"plan: {str(error).splitlines()[0]}", "invalid_plan") from None
    return plan.to_dict()


def plans(state: Any) -> DecisionStore[RestPlanRecord] | PgDecisionStore[RestPlanRecord]:
    """The server's plan store, opened on first use: SQLite beside the conversation store, or PostgreSQL
    with ``database_url``. Opening it marks what this server was running when it stopped as interrupted."""
    if state.plans is None:
        store = open_decisions(RestPlanStore, state.store.path, state.settings.database_url)
        store.interrupt_running()
        state.plans = store
    return state.plans


async def _call_functions(state: Any, stored: RestPlanRecord) -> tuple[str, Any, Any]:
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


def _find(state: Any, plan_id: str, owner: str | None) -> RestPlanRecord:
    """The plan, if it is ``owner``'s (None: anyone's); else the same 404 as for no plan at all."""
    record = plans(state).get(plan_id)
    if record is None or (owner is not None and record.owner != owner):
        raise ApiError(404, f"no plan {plan_id!r}: propose it with POST /v1/plans", "plan_not_found")
    return record
