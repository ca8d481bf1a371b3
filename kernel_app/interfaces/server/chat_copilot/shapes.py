"""The web app's JSON: camelCase, numeric enums, dates as ISO 8601; and our records in and out of it.

ChatSession, ChatMessage, AskResult, ChatMemorySource and the ProposedPlan a plan message carries
(Semantic Kernel 0.x's ``Plan``: ``name``, ``skill_name``, ``parameters`` as ``[{Key, Value}]``...),
as chat-copilot's web app reads them.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel_app.base.usage import Usage
    from kernel_app.conversation.store import Conversation, Message
    from kernel_app.interfaces.server.chat_copilot.records import ChatRecord, DocumentRecord, ViewMessage

# The web app's user id and name when its authType is None (every browser is this one user).
DEFAULT_USER_ID = "c05c61eb-65e4-4223-915a-fe72b0c9ece1"
DEFAULT_USER_NAME = "Default User"
BOT = "bot"  # the web app shows a message with this user id as the bot

USER, BOT_ROLE = 0, 1  # AuthorRoles
MESSAGE, PLAN, DOCUMENT = 0, 1, 2  # ChatMessageType
# PlanState: NoOp, Approved, Rejected, Derived, PlanApprovalRequired, Disabled, Error
NO_OP, APPROVED, REJECTED, DERIVED, APPROVAL_REQUIRED, DISABLED, PLAN_ERROR = range(7)
ACTION, SEQUENTIAL = 0, 1  # PlanType: one step, several

_STEP = re.compile(r"^\s*(\d+)\. ([A-Za-z_][A-Za-z0-9_]*) = ", re.MULTILINE)


def iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat()


def millis(timestamp: float) -> int:
    return int(timestamp * 1000)


def chat_session(conversation: Conversation, record: ChatRecord | None) -> dict[str, Any]:
    description = record.system_description if record else ""
    return {
        "id": conversation.id,
        "title": conversation.title or "New Chat",
        "createdOn": iso(record.created_at if record else conversation.created_at),
        "systemDescription": description,
        "safeSystemDescription": description,
        "memoryBalance": record.memory_balance if record else 0.5,
        "enabledPlugins": [],
        "version": "2.0",
    }


def chat_message(message: ViewMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "chatId": message.chat_id,
        "timestamp": millis(message.created_at),
        "userId": message.user_id,
        "userName": message.user_name,
        "content": message.content,
        "authorRole": message.author_role,
        "prompt": "",
        "citations": message.citations,
        "type": message.type,
        "tokenUsage": message.token_usage,
    }


def store_message(chat_id: str, message: Message) -> ViewMessage:
    """A conversation-store message the web app did not write (a turn from ``kernel-app chat --resume``)."""
    from kernel_app.interfaces.server.chat_copilot.records import ViewMessage

    is_user = message.role == "user"
    return ViewMessage(
        chat_id=chat_id,
        author_role=USER if is_user else BOT_ROLE,
        user_id=DEFAULT_USER_ID if is_user else BOT,
        user_name=DEFAULT_USER_NAME if is_user else "Kernel App",
        content=message.content,
        id=f"seq-{message.seq}",
        created_at=message.created_at,
    )


def token_usage(usage: Usage) -> dict[str, int]:
    """The web app's token graph knows these names: the prompt and the answer."""
    return {"metaPromptTemplate": usage.prompt_tokens, "responseCompletion": usage.completion_tokens}


def ask_result(value: str, chat_id: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    variables = [{"key": "chatId", "value": chat_id}, {"key": "input", "value": value}]
    if usage is not None:
        variables.append({"key": "tokenUsage", "value": json.dumps(usage)})
    return {"value": value, "variables": variables}


def variable(variables: list[dict[str, Any]], key: str) -> str | None:
    for item in variables or []:
        if isinstance(item, dict) and str(item.get("key", "")).lower() == key.lower():
            value = item.get("value")
            return None if value is None else str(value)
    return None


def document_source(document: DocumentRecord) -> dict[str, Any]:
    return {
        "id": document.id,
        "chatId": document.chat_id,
        "sourceType": "File",
        "name": document.name,
        "hyperlink": None,
        "sharedBy": document.shared_by,
        "createdOn": millis(document.created_at),
        "size": document.size,
        "tokens": document.chunks,
    }


def document_content(names_and_sizes: list[tuple[str, int]]) -> str:
    """A document message's content, as the web app's document bubble parses it."""
    documents = [{"name": name, "size": _size(size), "isUploaded": True} for name, size in names_and_sizes]
    return json.dumps({"documents": documents})


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} bytes"


def step_outputs(shown: str) -> dict[int, str]:
    """Step number -> output name, from the plan as the planner prints it (``1. sum = Math.add(...)``)."""
    return {int(number): name for number, name in _STEP.findall(shown)}


def text_value(value: Any) -> str:
    """A step argument as the web app edits it: text (numbers and lists as JSON)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def proposed_plan(
    *,
    goal: str,
    said: str,
    steps: list[dict[str, Any]],
    outputs: dict[int, str],
    descriptions: dict[str, str],
    message_id: str,
    state: int = APPROVAL_REQUIRED,
) -> dict[str, Any]:
    """The content of a plan message (``type`` 1): what the web app shows with Approve / Reject."""
    plan_steps = []
    for number, step in enumerate(steps, 1):
        plugin, _, name = str(step["function"]).partition(".")
        output = outputs.get(number)
        plan_steps.append(
            {
                "name": name,
                "skill_name": plugin,
                "description": descriptions.get(str(step["function"]), ""),
                "index": number - 1,
                "parameters": [{"Key": k, "Value": text_value(v)} for k, v in dict(step.get("args") or {}).items()],
                "outputs": [output] if output else [],
                "state": [],
                "steps": [],
                "next_step_index": 0,
            }
        )
    last = outputs.get(len(steps))
    return {
        "proposedPlan": {
            "name": goal,
            "skill_name": "Kernel App",
            "description": goal,
            "index": 0,
            "state": [],
            "parameters": [],
            "outputs": [last] if last else [],
            "steps": plan_steps,
            "next_step_index": 0,
        },
        "type": SEQUENTIAL if len(steps) > 1 else ACTION,
        "state": state,
        "userIntent": goal,
        "originalUserInput": said,
        "generatedPlanMessageId": message_id,
    }


class PlanEditError(ValueError):
    """The posted plan cannot be read as the proposed one with edited arguments."""


def plan_edits(steps: list[dict[str, Any]], posted: dict[str, Any]) -> list[str]:
    """The user's edits of a posted ProposedPlan, as the REPL's ``STEP name=value`` edits.

    Steps may not be removed, added or reordered (the web app lets a user delete one; the plan would then
    not be the one that was checked): that is a :class:`PlanEditError`."""
    plan = posted.get("proposedPlan") if isinstance(posted, dict) else None
    given = plan.get("steps") if isinstance(plan, dict) else None
    if not isinstance(given, list):
        raise PlanEditError("proposedPlan.proposedPlan.steps: missing; post the plan message's content back")
    if len(given) != len(steps):
        raise PlanEditError(
            f"proposedPlan: {len(given)} steps posted for a plan of {len(steps)}: steps cannot be removed; "
            "reject it and ask for a new plan"
        )
    edits = []
    for number, (step, sent) in enumerate(zip(steps, given, strict=True), 1):
        function = f"{sent.get('skill_name', '')}.{sent.get('name', '')}" if isinstance(sent, dict) else ""
        if function != step["function"]:
            raise PlanEditError(f"proposedPlan step {number}: {function or '?'} is not {step['function']}")
        original = {k: text_value(v) for k, v in dict(step.get("args") or {}).items()}
        for parameter in sent.get("parameters") or []:
            key, value = str(parameter.get("Key", "")), parameter.get("Value")
            if key in original and value is not None and str(value) != original[key]:
                edits.append(f"{number} {key}={_quoted(str(value))}")
    return edits


def _quoted(value: str) -> str:
    """A value the REPL's ``name=value`` reader takes whole (it reads one quoted word or up to a space)."""
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise PlanEditError("a step argument may not contain both ' and \": edit it without one of them")
