"""chat-copilot's plan messages across a restart, over HTTP on 127.0.0.1 with the scripted model: a plan
message waiting when the server stops is kept in copilot.sqlite3, and a new server over the same data
folder runs it once on its approval (a /plan's plan, or the model's own call in free text, which then
answers with its result and says the server restarted); a second approval gets 409."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from kernel_app.conversation import ConversationStore
from tests.support.copilot_client import approval, ask
from tests.support.server import make_app, running, saved_notes
from tests.support.tool_scripted import ToolScripted, tools

SUM_PLAN = json.dumps({"steps": [{"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}]})
SAVE = ("memory-save", {"input": "Opens at seven", "collection": "notes"})


def propose(tmp_path: Path, service: ToolScripted, text: str) -> tuple[str, dict[str, Any]]:
    """A chat whose message left a plan message waiting; the server then stops. (chat id, plan message)"""
    with running(make_app(tmp_path, service)) as url:
        base = f"{url}/copilot"
        chat_id = httpx.post(f"{base}/chats", json={"title": "Bakery"}).json()["chatSession"]["id"]
        answered = httpx.post(f"{base}/chats/{chat_id}/messages", json=ask(text, chat_id), timeout=30)
        assert answered.status_code == 200, answered.text  # answered at once: the plan waits
        [plan_message] = [m for m in httpx.get(f"{base}/chats/{chat_id}/messages").json() if m["type"] == 1]
    return chat_id, plan_message


def test_a_plan_waiting_at_a_restart_runs_once_with_its_edits(tmp_path: Path) -> None:
    first = ToolScripted()
    first.queue(SUM_PLAN)
    chat_id, plan_message = propose(tmp_path, first, "/plan add 110 and 990")

    def edit(plan: dict[str, Any]) -> None:
        plan["proposedPlan"]["steps"][0]["parameters"][0]["Value"] = "5"

    body = ask("Yes, proceed", chat_id, proposedPlan=approval(plan_message, 1, edit))
    second = ToolScripted(default="never asked")
    with running(make_app(tmp_path, second)) as url:
        base = f"{url}/copilot"
        shown = httpx.get(f"{base}/chats/{chat_id}/messages").json()
        assert json.loads(shown[0]["content"])["state"] == 4  # still waiting: Approve / Reject, not stale
        stranger = ask("Yes", chat_id, proposedPlan=approval(plan_message, 1), userId="someone-else")
        assert httpx.post(f"{base}/chats/{chat_id}/plan", json=stranger).status_code == 403
        ran = httpx.post(f"{base}/chats/{chat_id}/plan", json=body, timeout=30)
        assert ran.status_code == 200 and ran.json()["value"] == "995"  # 5 + 990: the edit was honoured
        again = httpx.post(f"{base}/chats/{chat_id}/plan", json=body)
        assert again.status_code == 409 and "nothing runs again" in again.json()["error"]["message"]
        listed = httpx.get(f"{base}/chats/{chat_id}/messages").json()
    assert second.requests == []  # planned before the restart: the model is not asked again
    assert [m["content"] for m in listed][:2] == ["995", "Yes, proceed"]
    assert json.loads(listed[2]["content"])["state"] == 1  # the plan message shows it was approved
    with running(make_app(tmp_path, ToolScripted())) as url:  # and after another restart, still once
        late = httpx.post(f"{url}/copilot/chats/{chat_id}/plan", json=body)
        assert late.status_code == 409
    stored = ConversationStore(tmp_path / "memory" / "conversations.sqlite3").messages(chat_id)
    assert [m.content for m in stored if m.role == "assistant"] == ["995"]  # it ran once


def test_the_models_call_waiting_at_a_restart_runs_once_and_says_so(tmp_path: Path) -> None:
    first = ToolScripted()
    first.queue(tools(SAVE), "never said")
    chat_id, plan_message = propose(tmp_path, first, "Remember that we open at seven")
    assert saved_notes(tmp_path) == []
    body = ask("Yes, proceed", chat_id, proposedPlan=approval(plan_message, 1))
    second = ToolScripted(default="never asked")
    with running(make_app(tmp_path, second)) as url:
        base = f"{url}/copilot"
        answer = httpx.post(f"{base}/chats/{chat_id}/plan", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        text = answer.json()["value"]
        assert text.startswith("The server restarted while memory.save waited for your approval")
        assert "I ran memory.save as you approved. Its result:" in text
        assert saved_notes(tmp_path) == ["Opens at seven"] and second.requests == []  # the model was not asked
        assert httpx.post(f"{base}/chats/{chat_id}/plan", json=body).status_code == 409
        # The question, the call and its result joined the conversation: the model sees them next.
        second.queue("We open at seven.")
        next_answer = httpx.post(f"{base}/chats/{chat_id}/messages", json=ask("When do we open?", chat_id), timeout=30)
        assert next_answer.json()["value"] == "We open at seven."
        prompt = second.requests[-1].prompt
        assert "Remember that we open at seven" in prompt and "I ran memory.save as you approved" in prompt
        listed = [m["content"] for m in httpx.get(f"{base}/chats/{chat_id}/messages").json()]
    assert listed[:4] == ["We open at seven.", "When do we open?", text, "Yes, proceed"]
    assert listed.count(text) == 1  # the turn's stored messages are not shown a second time
    assert saved_notes(tmp_path) == ["Opens at seven"]


def test_after_a_restart_a_rejected_call_runs_nothing(tmp_path: Path) -> None:
    first = ToolScripted()
    first.queue(tools(SAVE), "never said")
    chat_id, plan_message = propose(tmp_path, first, "Remember that we open at seven")
    with running(make_app(tmp_path, ToolScripted(default="never asked"))) as url:
        base = f"{url}/copilot"
        no = ask("No", chat_id, proposedPlan=approval(plan_message, 2))
        rejected = httpx.post(f"{base}/chats/{chat_id}/plan", json=no, timeout=30)
        assert rejected.status_code == 200 and rejected.json()["value"] == "Not run: memory.save."
        yes = ask("Yes", chat_id, proposedPlan=approval(plan_message, 1))
        assert httpx.post(f"{base}/chats/{chat_id}/plan", json=yes).status_code == 409  # too late
    assert saved_notes(tmp_path) == []
