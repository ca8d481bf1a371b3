"""A logged model call, the questions ``kernel-app logs`` asks, and the interface every backend offers."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class CallRecord:
    """One request to a model and its answer, as written to the call log (secrets already redacted).

    ``messages`` is the prompt as the model got it (``[{role, content}]``, function calls and results
    included); ``functions`` the functions running when the call was made, outermost first
    (``[{name, arguments}]``): ``function`` is the innermost, ``root_function`` the outermost, and
    ``root_result`` what that outermost function returned (set when it ended).
    """

    started_at: float  # epoch seconds
    service: str
    model: str
    messages: list[dict[str, Any]]
    settings: dict[str, Any]
    answer: str
    latency_ms: float
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    streamed: bool = False
    functions: list[dict[str, Any]] = field(default_factory=list)
    conversation: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    # The outermost function's invocation, and its result once it ended (what the user got from it).
    root_invocation: str | None = None
    root_result: str | None = None
    id: int | None = None

    @property
    def function(self) -> str | None:
        return self.functions[-1]["name"] if self.functions else None

    @property
    def root_function(self) -> str | None:
        return self.functions[0]["name"] if self.functions else None

    def arguments_of(self, name: str | None = None) -> dict[str, Any]:
        """The arguments of function ``name`` in this call's stack (the innermost one when not named)."""
        for entry in reversed(self.functions):
            if name is None or entry["name"] == name:
                return dict(entry.get("arguments") or {})
        return {}

    def prompt_text(self) -> str:
        """The prompt as one text: each message's role on its own line, then its content."""
        return "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in self.messages)

    def to_dict(self) -> dict[str, Any]:
        """Stable keys for ``kernel-app logs --json``."""
        return {
            "id": self.id,
            "started_at": self.started_at,
            "service": self.service,
            "model": self.model,
            "function": self.function,
            "root_function": self.root_function,
            "functions": self.functions,
            "conversation": self.conversation,
            "messages": self.messages,
            "settings": self.settings,
            "answer": self.answer,
            "tool_calls": self.tool_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": self.latency_ms,
            "streamed": self.streamed,
            "finish_reason": self.finish_reason,
            "error": self.error,
            "root_result": self.root_result,
        }


@dataclass
class CallQuery:
    """Which calls to list, newest first. ``function`` matches the innermost or the outermost function."""

    function: str | None = None
    conversation: str | None = None
    since: float | None = None  # epoch seconds
    model: str | None = None
    ids: list[int] | None = None
    limit: int | None = 20


class CallLog(Protocol):
    """What every backend of the call log offers (``SqliteCallLog``, ``PgCallLog``)."""

    backend: str

    def write(self, record: CallRecord) -> int:
        """Store ``record``; returns its id (also set on ``record.id``)."""
        ...

    def write_many(self, records: list[CallRecord]) -> None:
        """Store ``records`` in one transaction (the recorder's batches); each gets its ``id``."""
        ...

    def set_root_result(self, invocation: str, result: str) -> None:
        """Record the result of the outermost function invocation ``invocation`` on its calls."""
        ...

    def query(self, query: CallQuery) -> list[CallRecord]: ...

    def get(self, id: int) -> CallRecord | None: ...

    def clear(self, before: float | None = None) -> int:
        """Delete every call (or those started before ``before``); returns how many were deleted."""
        ...

    def close(self) -> None: ...


def dumps(value: Any) -> str:
    """JSON for a column; anything JSON cannot hold is kept as its text."""
    return json.dumps(value, ensure_ascii=False, default=str)


def record_values(
    record: CallRecord, json_column: Callable[[Any], Any], text: Callable[[str], str] = str
) -> tuple[Any, ...]:
    """``record`` in the order of the backends' INSERT columns; ``json_column`` encodes the JSON columns and
    ``text`` the model's texts (PostgreSQL strips NULs, SQLite keeps them)."""
    return (
        record.started_at,
        record.service,
        record.model,
        record.function,
        record.root_function,
        json_column(record.functions),
        record.conversation,
        json_column(record.messages),
        json_column(record.settings),
        text(record.answer),
        json_column(record.tool_calls),
        record.prompt_tokens,
        record.completion_tokens,
        record.latency_ms,
        record.streamed,
        record.finish_reason,
        text(record.error) if record.error is not None else None,
        record.root_invocation,
        text(record.root_result) if record.root_result is not None else None,
    )


def record_from_row(row: tuple[Any, ...], json_value: Callable[[Any], Any]) -> CallRecord:
    """A record from the backends' SELECT columns (id first); ``json_value`` decodes the JSON columns."""
    (id_, started, service, model, functions, conversation, messages, settings, answer, tool_calls) = row[:10]
    (prompt_tokens, completion_tokens, latency, streamed, finish, error, root_invocation, root_result) = row[10:]
    return CallRecord(
        id=int(id_),
        started_at=float(started),
        service=service,
        model=model,
        functions=json_value(functions),
        conversation=conversation,
        messages=json_value(messages),
        settings=json_value(settings),
        answer=answer,
        tool_calls=json_value(tool_calls),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=float(latency),
        streamed=bool(streamed),
        finish_reason=finish,
        error=error,
        root_invocation=root_invocation,
        root_result=root_result,
    )
