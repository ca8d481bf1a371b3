"""A stored conversation written out as markdown (the REPL's ``/export FILE.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel_app.conversation.store import AnyConversationStore


def conversation_markdown(store: AnyConversationStore, conversation_id: str) -> str:
    """A stored conversation as markdown: what was said, and what each function returned."""
    import datetime

    conversation = store.get(conversation_id)
    when = datetime.datetime.fromtimestamp(conversation.created_at).strftime("%Y-%m-%d %H:%M")
    lines = [f"# {conversation.title or 'Conversation'}", "", f"_{when}, {conversation.model or conversation.service}_"]
    for message in store.messages(conversation_id):
        if message.role == "user":
            lines += ["", "## You", "", message.content]
        elif message.role == "tool":
            lines += ["", f"### Result of {message.name}", "", message.content]
        elif message.role == "assistant":
            calls = [f"- called `{call.function}({_arguments_text(call.arguments)})`" for call in message.tool_calls]
            if message.content or calls:
                lines += ["", "## Kernel App", ""]
            lines += [*calls, *([message.content] if message.content else [])]
    return "\n".join(lines).rstrip() + "\n"


def _arguments_text(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in arguments.items())
