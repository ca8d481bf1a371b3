"""Structured answers from the embedded model stay in the prompt's script: no stray Chinese in an English SWOT.

Qwen2.5's small tiers slip into Chinese mid-sentence ("but it faces挑战s"; docs/models.md, qwen2.5-coder).
Where the answer is JSON constrained by a schema (the SWOT, plans), llama.cpp's grammar engine
(llguidance) also honours a string's ``pattern``; so when no message of the request holds a CJK
character, every free-text string of the schema gets one that excludes the CJK ranges, and those tokens
cannot be sampled. A prompt that holds CJK (a business described in Chinese or Japanese) leaves the
schema as it is. The service applies this when its model's profile says ``keep_schemas_out_of_cjk``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

# CJK radicals to unified ideographs (with kana and bopomofo), Hangul syllables, CJK compatibility
# ideographs, full-width forms (the model's "，" and "："). Supplementary-plane ideographs are rare in its
# vocabulary and left out.
CJK_RANGES = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_CJK = re.compile(f"[{CJK_RANGES}]")
# The quote and control characters are left out too: llguidance matched the class against the string's
# JSON text, so a class that admits '"' let no string end (a plan ran to its token limit). The backslash
# stays, so that escapes (\n, \u00e9) can still be written.
NO_CJK_CLASS = r'[^"\x00-\x1f' + CJK_RANGES + "]"  # the regex escape \x00, not the character
NO_CJK_PATTERN = f"^{NO_CJK_CLASS}*$"
# A string schema with any of these is constrained already (or a pattern would change what it means).
_CONSTRAINED = ("pattern", "enum", "const", "format")


def has_cjk(texts: Iterable[str]) -> bool:
    return any(_CJK.search(text) for text in texts if text)


def message_texts(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    """The text of OpenAI-shaped messages (content strings or text parts)."""
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return texts


def without_cjk(schema: Any) -> Any:
    """A copy of a JSON schema whose free-text strings may hold no CJK character."""
    schema = copy.deepcopy(schema)
    _restrict(schema)
    return schema


def _restrict(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _restrict(item)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if (kind == "string" or (isinstance(kind, list) and "string" in kind)) and not any(
        key in node for key in _CONSTRAINED
    ):
        node["pattern"] = _pattern(node.get("minLength"), node.get("maxLength"))
    for value in node.values():
        _restrict(value)


def _pattern(least: Any, most: Any) -> str:
    """The no-CJK pattern, with the string's length bounds in it: llama.cpp's schema-to-grammar reads a
    string's ``pattern`` alone and drops its ``minLength``/``maxLength``, which keep a small model from
    looping inside one string (the SWOT's cells; docs/models.md, smollm2)."""
    if not isinstance(least, int) and not isinstance(most, int):
        return NO_CJK_PATTERN
    low = least if isinstance(least, int) else 0
    high = most if isinstance(most, int) else ""
    return f"^{NO_CJK_CLASS}{{{low},{high}}}$"


def same_script(request: dict[str, Any], messages: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``request`` with its JSON schema's strings kept out of CJK when the messages hold none (see above)."""
    response_format = request.get("response_format")
    if not isinstance(response_format, dict):
        return request
    schema_holder, key = _schema_of(response_format)
    if schema_holder is None or has_cjk(message_texts(messages)):
        return request
    restricted = {**response_format}
    if schema_holder is response_format:
        restricted[key] = without_cjk(response_format[key])
    else:
        restricted["json_schema"] = {**response_format["json_schema"], key: without_cjk(schema_holder[key])}
    return {**request, "response_format": restricted}


def _schema_of(response_format: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    # llama.cpp takes {"type": "json_schema", "json_schema": {"schema": ...}} and {"type": "json_object",
    # "schema": ...}
    wrapped = response_format.get("json_schema")
    if isinstance(wrapped, dict) and isinstance(wrapped.get("schema"), dict):
        return wrapped, "schema"
    if isinstance(response_format.get("schema"), dict):
        return response_format, "schema"
    return None, ""
