"""``/plan`` in Teams: plan now, keep the plan (:mod:`.plan_store`), show its card, run it after the click.

A part of :class:`kernel_app.interfaces.server.teams.agent.TeamsAgent`, given what it needs of the
agent (:class:`.host.TeamsHost`) and its store. The planner comes from the planner factory
(:func:`planners.factory.create_planner`), as on every surface; ``function-calling`` has no plan to
approve, so the agent runs it as a turn (:meth:`PlanCards.takes`). The plan waits in ``teams.sqlite3``,
not in a task, so a click after a restart runs it the same way: the invoke is answered at once with the
card replaced by its outcome, and the plan runs in a proactive turn of its conversation that streams its
progress and then updates the card.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from kernel_app.interfaces.server.chat_surface import (
    acquire_waiting,
    busy_text,
    failure,
    remember_plan,
    reply_text,
    sentence,
    sorry,
    too_long_text,
)
from kernel_app.interfaces.server.pg_decisions import PgDecisionStore
from kernel_app.interfaces.server.side_store import DecisionStore
from kernel_app.interfaces.server.teams import cards
from kernel_app.interfaces.server.teams.http import after_response
from kernel_app.interfaces.server.teams.plan_store import PlanRecord
from kernel_app.interfaces.server.teams.turns import (
    THINKING,
    Renderer,
    adaptive,
    card_response,
    clicked,
    continuation,
    in_its_conversation,
    user_of,
)

if TYPE_CHECKING:
    from microsoft_agents.hosting.core import TurnContext

    from kernel_app.commands.dispatch import ChatSession
    from kernel_app.interfaces.server.teams.host import TeamsHost

log = logging.getLogger("kernel_app.teams")

APPROVAL_TIMEOUT = 3600.0  # seconds a proposed plan waits for its card to be clicked (a restart included)


class PlanCards:
    """``/plan`` with a plan to approve: planned now, kept in ``store``, run after its card's click."""

    def __init__(self, host: TeamsHost, store: DecisionStore[PlanRecord] | PgDecisionStore[PlanRecord]) -> None:
        self.host = host
        self.store = store

    @staticmethod
    def takes(text: str) -> bool:
        """Whether a ``/plan`` message is this part's: a planner that proposes a plan (or options that do
        not parse, which :meth:`propose` answers); function-calling has no plan to approve."""
        from kernel_app.commands.syntax import plan_command
        from planners.factory import proposes_plan

        try:
            options, _, _ = plan_command(text)
        except Exception:
            return True
        return proposes_plan(options["planner"])

    async def propose(self, context: TurnContext, session: ChatSession, text: str, group: bool) -> None:
        """Plan now (holding the model's queue), keep the plan, show its card; it runs after the click."""
        # Never silent while the planner's model composes the plan: "Thinking…" (typing in a group chat).
        render = Renderer(context, group)
        render.keep_typing()
        render.info(THINKING)
        try:
            await self._propose(context, session, text, group, render)
        finally:
            await render.stop_typing()

    async def _propose(
        self, context: TurnContext, session: ChatSession, text: str, group: bool, render: Renderer
    ) -> None:
        from kernel_app.commands.dispatch import PLAN_USAGE, Reply
        from kernel_app.commands.syntax import plan_command
        from kernel_app.interfaces.server.limits import Busy

        say = render.final
        try:
            options, goal, named = plan_command(text)
        except Exception as error:
            await say(reply_text(Reply(failure(error), "error")))
            return
        if not goal:
            await say(reply_text(Reply(PLAN_USAGE, "error")))
            return
        server = self.host.state
        gate = server.gate
        try:
            await gate.acquire()
        except Busy as busy:
            await say(busy_text(busy.retry_after))
            return
        timeout = server.request_timeout
        try:
            plan = await asyncio.wait_for(self._make_plan(goal, options), timeout)
        except asyncio.TimeoutError as error:
            # Without a timeout, wait_for never times out: the TimeoutError is the planner's own failure.
            await say(too_long_text(timeout) if timeout is not None else reply_text(Reply(failure(error), "error")))
            return
        except Exception as error:
            await say(reply_text(Reply(failure(error), "error")))
            return
        finally:
            gate.release()
        owner, owner_name = user_of(context.activity)
        record = PlanRecord(
            id=f"plan_{uuid.uuid4().hex[:12]}",
            teams_id=str(context.activity.conversation.id),
            conversation_id=session.conversation_id,
            owner=owner,
            owner_name=owner_name,
            group=group,
            goal=goal,
            plan=plan.to_dict(),
            activity=continuation(context.activity).model_dump(mode="json", by_alias=True, exclude_none=True),
            exclude=list(options["exclude"]),
            result_name=named,
        )
        self.store.add(record)
        card = cards.plan_card(record.id, goal, record.steps, owner_name)
        await render.card(card, "Here is the plan: approve or reject it on the card.")

    async def _make_plan(self, goal: str, options: dict[str, Any]) -> Any:
        from planners.factory import create_planner

        planner: Any = create_planner(
            options["planner"],
            self.host.state.kernel,
            max_functions=options["max_functions"],
            excluded=options["exclude"] or None,
        )
        return await planner.create_plan(goal)

    async def on_approve(self, context: TurnContext, _state: Any, data: Any) -> Any:
        return self._decide(context, data, approved=True)

    async def on_reject(self, context: TurnContext, _state: Any, data: Any) -> Any:
        return self._decide(context, data, approved=False)

    def _decide(self, context: TurnContext, data: Any, *, approved: bool) -> Any:
        """Answer the card's invoke at once; an approved plan runs after it, in its own turn."""
        only = "Only {owner_name}, who asked for this plan, can approve or reject it."
        record = clicked(context, data, "planId", self.store, cards.gone_card(), only)
        if not isinstance(record, PlanRecord):
            return record
        plan_id, name, card_id = record.id, user_of(context.activity)[1], context.activity.reply_to_id
        late = "Not approved in time: nothing ran. Ask again with /plan."
        if self.store.expire_if_late(record, APPROVAL_TIMEOUT, late, card_id):
            pass  # nothing runs: the card shows it came too late
        elif approved:
            if self.store.decide(plan_id, "approved", f"Approved by {name}: running…", card_id):
                record.card_id = card_id or record.card_id
                identity = context.identity
                after_response(lambda: self.host.spawn(self._run_plan(record, identity)))
        else:
            self.store.decide(plan_id, "rejected", f"Rejected by {name}: nothing ran.", card_id)
        decided = self.store.get(plan_id) or record  # a second click: the outcome, nothing runs again
        return card_response(cards.outcome_card(decided.goal, decided.steps, decided.outcome))

    async def _run_plan(self, record: PlanRecord, identity: Any) -> None:
        """The approved plan's progress and result, in a proactive turn of the conversation it came from."""
        began = time.perf_counter()
        try:
            lock = self.host.lock(record.teams_id)
            await in_its_conversation(
                self.host.adapter, identity, record.activity, lock, lambda context: self._execute(context, record)
            )
        except Exception:
            log.exception("Teams: the approved plan's turn failed")
            self.store.finish(record.id, "failed", "The plan failed: please try again.")
        finally:
            log.debug("Teams: plan ran in %.2f s", time.perf_counter() - began)

    async def _execute(self, context: TurnContext, record: PlanRecord) -> None:
        from microsoft_agents.activity import Activity

        from planners import Plan, PlanExecutor

        render = Renderer(context, record.group)
        total = len(record.steps)

        def on_step(event: str, number: int, step: Any, _result: Any) -> None:
            if event == "started":
                render.info(sentence(f"step {number}/{total} {step.function}"))

        ok = False
        server = self.host.state
        await acquire_waiting(server.gate)
        try:
            executor = PlanExecutor(server.kernel, excluded=record.exclude or None, on_step=on_step)
            result = await executor.execute(Plan.from_dict(record.plan))  # validated again: the kernel may differ
            text, ok = result.result or "(no result)", True
        except Exception as error:
            text = sorry(failure(error))
        finally:
            server.gate.release()
        if ok:
            self._remember_result(record, result.result)
        await render.final(text)
        state, outcome = ("done", "Done: the result is below.") if ok else ("failed", "The plan failed: see below.")
        self.store.finish(record.id, state, outcome)
        if record.card_id:
            card = cards.outcome_card(record.goal, record.steps, outcome)
            await context.update_activity(Activity(type="message", id=record.card_id, attachments=[adaptive(card)]))

    def _remember_result(self, record: PlanRecord, result: str) -> None:
        """As the REPL's /plan does: the result joins the conversation and becomes $last (and $NAME)."""
        remember_plan(self.host.state, record.conversation_id, record.goal, result)
        session = self.host.live_session(record.teams_id)
        if session is not None:
            session.results["last"] = result
            if record.result_name:
                session.results[record.result_name] = result
