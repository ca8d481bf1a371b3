"""Adaptive Cards for plan approval: the proposal (Approve / Reject as ``Action.Execute``) and its outcome."""

from __future__ import annotations

import json
from typing import Any

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
APPROVE = "approvePlan"
REJECT = "rejectPlan"
APPROVE_CALL = "approveCall"
REJECT_CALL = "rejectCall"
EFFECTS = {
    "model": "It calls the model (it costs tokens, changes nothing outside this chat).",
    "write": "It can change things outside this chat (saved memory, files, the web).",
}
MAX_ARG_CHARS = 80


def _steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks = []
    for number, step in enumerate(steps, 1):
        args = ", ".join(f"{k}={_short(v)}" for k, v in (step.get("args") or {}).items())
        blocks.append({"type": "TextBlock", "text": f"{number}. **{step.get('function', '?')}**({args})", "wrap": True})
    return blocks


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(str(text).split())
    return json.dumps(text[:MAX_ARG_CHARS] + ("…" if len(text) > MAX_ARG_CHARS else ""), ensure_ascii=False)


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return card


def plan_card(plan_id: str, goal: str, steps: list[dict[str, Any]], asked_by: str) -> dict[str, Any]:
    """The proposal: the goal, the numbered steps, and Approve / Reject carrying the plan id."""
    data = {"planId": plan_id}
    return _card(
        [
            {"type": "TextBlock", "text": "Proposed plan", "weight": "Bolder", "size": "Medium"},
            {"type": "TextBlock", "text": goal, "wrap": True, "isSubtle": True},
            *_steps(steps),
            {"type": "TextBlock", "text": f"Nothing runs until {asked_by} approves.", "wrap": True, "size": "Small"},
        ],
        [
            {"type": "Action.Execute", "title": "Approve", "verb": APPROVE, "data": data, "style": "positive"},
            {"type": "Action.Execute", "title": "Reject", "verb": REJECT, "data": data, "style": "destructive"},
        ],
    )


def outcome_card(goal: str, steps: list[dict[str, Any]], outcome: str) -> dict[str, Any]:
    """The card as it is replaced once decided: the same plan, no buttons, what happened."""
    return _card(
        [
            {"type": "TextBlock", "text": "Plan", "weight": "Bolder", "size": "Medium"},
            {"type": "TextBlock", "text": goal, "wrap": True, "isSubtle": True},
            *_steps(steps),
            {"type": "TextBlock", "text": outcome, "wrap": True, "weight": "Bolder"},
        ]
    )


def gone_card() -> dict[str, Any]:
    text = "This plan is no longer waiting for approval: ask again with /plan."
    return _card([{"type": "TextBlock", "text": text, "wrap": True}])


def _call(function: str, arguments: dict[str, Any]) -> dict[str, Any]:
    args = ", ".join(f"{k}={_short(v)}" for k, v in arguments.items())
    return {"type": "TextBlock", "text": f"**{function}**({args})", "wrap": True}


def call_card(approval_id: str, function: str, arguments: dict[str, Any], effect: str, asked_by: str) -> dict[str, Any]:
    """A function the model wants to call in free text: what it is, what it does, Approve / Reject."""
    data = {"approvalId": approval_id}
    return _card(
        [
            {"type": "TextBlock", "text": "May I run this?", "weight": "Bolder", "size": "Medium"},
            _call(function, arguments),
            {"type": "TextBlock", "text": EFFECTS.get(effect, EFFECTS["write"]), "wrap": True, "isSubtle": True},
            {"type": "TextBlock", "text": f"Nothing runs until {asked_by} approves.", "wrap": True, "size": "Small"},
        ],
        [
            {"type": "Action.Execute", "title": "Approve", "verb": APPROVE_CALL, "data": data, "style": "positive"},
            {"type": "Action.Execute", "title": "Reject", "verb": REJECT_CALL, "data": data, "style": "destructive"},
        ],
    )


def call_outcome_card(function: str, arguments: dict[str, Any], outcome: str) -> dict[str, Any]:
    """The call's card once decided: no buttons, what happened."""
    return _card(
        [
            {"type": "TextBlock", "text": "Function call", "weight": "Bolder", "size": "Medium"},
            _call(function, arguments),
            {"type": "TextBlock", "text": outcome, "wrap": True, "weight": "Bolder"},
        ]
    )


def call_gone_card() -> dict[str, Any]:
    text = "This request is no longer waiting for approval (it expired or the server restarted): ask again."
    return _card([{"type": "TextBlock", "text": text, "wrap": True}])
