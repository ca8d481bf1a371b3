"""Variables that are not strings: JSON/YAML values for templates that loop over lists or read fields.

``--var-json NAME=JSON`` and ``--vars FILE`` (a JSON or YAML mapping) give a template structured values.
A list of ``{"role": ..., "content": ...}`` objects becomes a semantic-kernel ``ChatHistory``, which is what
templates written for ``chat_history`` expect (``{{$chat_history}}``, ``{{#each chat_history}}``,
``{% for item in chat_history %}{{ message(item) }}``). Its messages also answer ``{{Role}}`` and
``{{Content}}``, as templates written for .NET read them.

A template that loops over a variable or reads its fields, given a plain string, is a one-line error
naming the variable and what the template reads from it (semantic-kernel gives raw internal errors).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kernel_app.base.errors import UsageError

ROLES = ("system", "user", "assistant", "tool", "developer")


def parse_json_vars(pairs: Iterable[str]) -> dict[str, Any]:
    """``NAME=JSON`` pairs (``--var-json``)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            example = '--var-json customer=\'{"name": "Ann"}\''
            raise UsageError(f"--var-json {pair[:60]!r}: expected NAME=JSON, e.g. {example}")
        try:
            values[name.strip()] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--var-json {name.strip()}: invalid JSON at column {exc.colno}: {exc.msg}") from None
    return values


def load_vars_file(path: Path) -> dict[str, Any]:
    """A JSON or YAML file holding one mapping of variable name -> value (``--vars``)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"--vars {path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UsageError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UsageError(f'{path}: expected a mapping of variable name -> value, e.g. {{"customer": {{...}}}}')
    return data


def to_kernel_value(value: Any) -> Any:
    """A chat-shaped list becomes a ChatHistory; anything else is passed as it is."""
    if isinstance(value, list) and value and all(_is_message(item) for item in value):
        return _chat_history(value)
    return value


def check_shape(
    function: str, variable: str, value: Any, *, fields: Iterable[str] = (), iterated: bool = False
) -> None:
    """Refuse a value the template cannot read: a string where it loops, or an object without a field it reads."""
    fields = sorted(fields)
    example = "--var-json " + variable + "='" + _example(fields, iterated) + "'"
    if iterated and value == "":
        return  # an optional list left out (a .prompty `default: []`): the loop runs over nothing
    if iterated and isinstance(value, str | int | float | bool):
        raise UsageError(f"{function}: the template loops over '{variable}', so give it a list: {example}")
    if fields and isinstance(value, str | int | float | bool | list):
        read = ", ".join(f"{variable}.{f}" for f in fields)
        raise UsageError(f"{function}: the template reads {read}, so give '{variable}' as an object: {example}")
    if fields and isinstance(value, dict):
        present = {str(k).lower() for k in value}
        missing = [f for f in fields if f.lower() not in present]
        if missing:
            raise UsageError(
                f"{function}: '{variable}' has no {', '.join(map(repr, missing))}, which the template reads: "
                f"add {'it' if len(missing) == 1 else 'them'} to the object"
            )


def _example(fields: list[str], iterated: bool) -> str:
    if iterated:
        return '[{"role": "user", "content": "..."}]'
    return json.dumps({f: "..." for f in fields})


def _is_message(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    keys = {str(k).lower() for k in item}
    return {"role", "content"} <= keys and str(_get(item, "role")).lower() in ROLES


def _get(item: dict[str, Any], key: str) -> Any:
    return next((v for k, v in item.items() if str(k).lower() == key), None)


def _chat_history(items: list[dict[str, Any]]) -> Any:
    from semantic_kernel.contents import ChatHistory
    from semantic_kernel.contents.utils.author_role import AuthorRole

    message_class = _template_message_class()
    messages = [
        message_class(role=AuthorRole(str(_get(item, "role")).lower()), content=str(_get(item, "content") or ""))
        for item in items
    ]
    return ChatHistory(messages=messages)


_MESSAGE_CLASS: type | None = None


def _template_message_class() -> type:
    """A ChatMessageContent whose fields a template reads in any case (``{{Role}}``, ``{{content}}``)."""
    global _MESSAGE_CLASS
    if _MESSAGE_CLASS is None:
        from enum import Enum
        from html import escape

        from semantic_kernel.contents import ChatMessageContent

        class TemplateMessage(ChatMessageContent):
            def __getitem__(self, key: str) -> Any:
                # pybars reads fields with context[name] first: answer .NET's "Role"/"Content" too, and
                # escaped, as semantic-kernel escapes string values (pybars itself does not).
                try:
                    value = getattr(self, str(key).lower())
                except AttributeError:
                    raise KeyError(key) from None
                value = value.value if isinstance(value, Enum) else value
                return escape(value) if isinstance(value, str) else value

        _MESSAGE_CLASS = TemplateMessage
    return _MESSAGE_CLASS
