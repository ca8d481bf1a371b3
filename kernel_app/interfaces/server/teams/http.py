"""``POST /api/messages``: a small FastAPI app with the one route, its JWT checked by the SDK's per-route
decorator, activities a reply cannot reach refused with a 400 before the SDK runs a turn.

What a card's invoke starts runs once the invoke's answer is sent (:func:`after_response`): a function
that blocks the event loop (a sync plugin) must not hold the answer back, or Teams shows "Unable to reach
app".
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from kernel_app.interfaces.server.teams import PATH, cards

_AFTER_RESPONSE: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("teams_after", default=None)


class _QuietValidation(logging.Filter):
    """The SDK logs a malformed activity as an ERROR with a traceback; it is the client's mistake, answered
    with a one-line 400 here, so a client cannot fill the server's log with tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Validation error for Activity")


def _quiet_sdk_validation() -> None:
    logger = logging.getLogger("microsoft_agents.activity.activity")
    if not any(isinstance(f, _QuietValidation) for f in logger.filters):
        logger.addFilter(_QuietValidation())


def after_response(work: Any) -> None:
    """Call ``work()`` once this request's answer is sent (at once outside a request)."""
    after = _AFTER_RESPONSE.get()
    if after is None:
        work()
    else:
        after.append(work)


def _unanswerable(body: dict[str, Any]) -> str | None:
    """Why an activity (valid JSON, valid to the SDK) cannot be answered, in one line; None when it can."""
    from urllib.parse import urlsplit

    if body.get("deliveryMode") != "expectReplies":
        url = body.get("serviceUrl")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            return "the activity's serviceUrl is missing or not an http(s) URL: replies have nowhere to go"
    if not isinstance(body.get("recipient"), dict) or not body["recipient"].get("id"):
        return "the activity has no recipient.id (the bot it is addressed to)"
    if body.get("type") in ("message", "invoke") and not (
        isinstance(body.get("from"), dict) and (body["from"].get("id") or body["from"].get("aadObjectId"))
    ):
        return "the activity has no from.id (who sent it)"
    return None


def _foreign_card_action(body: dict[str, Any]) -> bool:
    """An ``adaptiveCard/action`` invoke whose verb is none of ours (the SDK would answer 501)."""
    if body.get("type") != "invoke" or body.get("name") != "adaptiveCard/action":
        return False
    value = body.get("value")
    action = value.get("action") if isinstance(value, dict) else None
    verb = action.get("verb") if isinstance(action, dict) else None
    return verb not in (cards.APPROVE, cards.REJECT, cards.APPROVE_CALL, cards.REJECT_CALL)


def build_asgi(app: Any, adapter: Any, connections: Any) -> Any:
    """The route for the SDK's ``AgentApplication`` ``app`` and ``CloudAdapter`` ``adapter``."""
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import JSONResponse
    from microsoft_agents.activity import Activity
    from microsoft_agents.hosting.fastapi import jwt_authorization_decorator, start_agent_process
    from pydantic import ValidationError

    _quiet_sdk_validation()

    async def messages(request: Request) -> Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("not an object")
            Activity.model_validate(body)
        except ValidationError as error:
            where = ".".join(str(part) for part in error.errors()[0]["loc"] if part != "function-after")
            message = f"the body is not an activity: {where or 'the body'} is missing or of the wrong type"
            logging.getLogger("kernel_app.teams").info("Teams: 400, %s", message)
            return JSONResponse({"error": message}, status_code=400)
        except ValueError:
            return JSONResponse({"error": "the body is not an activity (a JSON object)"}, status_code=400)
        problem = _unanswerable(body)
        if problem:
            return JSONResponse({"error": problem}, status_code=400)
        if _foreign_card_action(body):  # an old card, or another app's: say so rather than 501
            return JSONResponse(
                {
                    "statusCode": 200,
                    "type": "application/vnd.microsoft.activity.message",
                    "value": "This button is not one I know: ask again with a new message.",
                }
            )
        after: list[Any] = []
        token = _AFTER_RESPONSE.set(after)
        try:
            response = await start_agent_process(request, app, adapter)
        finally:
            _AFTER_RESPONSE.reset(token)
        response = response if response is not None else Response(status_code=202)
        if after:
            from starlette.background import BackgroundTasks

            async def run_after() -> None:  # async: Starlette would run a plain function in a thread
                for work in after:
                    work()

            tasks = BackgroundTasks()
            tasks.add_task(run_after)
            response.background = tasks
        return response

    messages.__annotations__ = {"request": Request, "return": Response}  # local names: FastAPI cannot resolve them

    asgi = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    asgi.state.agent_configuration = connections.get_default_connection_configuration()
    asgi.add_api_route(PATH, jwt_authorization_decorator(messages), methods=["POST"])
    return asgi
