"""The embedded model's structured answers keep to the prompt's script (no stray CJK in an English SWOT).

The request llama.cpp gets is checked through the real service on a stand-in for ``xllamacpp.Server``
(tests/providers/llama/test_local_tools.py); the grammar engine's honouring of the pattern is checked on the tiny model.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from semantic_kernel.contents import ChatHistory

from kernel_app.providers.execution_settings import json_schema_format
from kernel_app.providers.llama.script import NO_CJK_CLASS, NO_CJK_PATTERN, has_cjk, same_script, without_cjk
from kernel_app.providers.llama.service import LocalLlamaPromptExecutionSettings
from plugins.BusinessThinking._swot_tables import POINT_MAX, SWOT_SCHEMA
from tests.support.fake_llama import llama_chunks, scripted_llama  # noqa: F401 (the fake llama.cpp fixture ``scripted``)

SCHEMA = {
    "type": "object",
    "properties": {
        "point": {"type": "string", "minLength": 3},
        "kind": {"type": "string", "enum": ["a", "b"]},
        "day": {"type": "string", "format": "date"},
        "code": {"type": "string", "pattern": "^[A-Z]+$"},
        "either": {"type": ["string", "null"]},
        "items": {"type": "array", "items": {"type": "string"}},
        "count": {"type": "integer"},
    },
    "anyOf": [{"type": "string"}],
}


def test_free_text_strings_get_the_pattern_and_constrained_ones_keep_theirs() -> None:
    restricted = without_cjk(SCHEMA)
    properties = restricted["properties"]
    assert (
        properties["point"]["pattern"] == NO_CJK_PATTERN.replace("*$", "{3,}$")
        and properties["point"]["minLength"] == 3
    )
    assert properties["either"]["pattern"] == NO_CJK_PATTERN
    assert properties["items"]["items"]["pattern"] == NO_CJK_PATTERN
    assert restricted["anyOf"][0]["pattern"] == NO_CJK_PATTERN
    assert "pattern" not in properties["kind"] and "pattern" not in properties["day"]
    assert properties["code"]["pattern"] == "^[A-Z]+$" and "pattern" not in properties["count"]
    assert "pattern" not in SCHEMA["properties"]["point"]  # a copy: the caller's schema is untouched


def test_a_strings_length_bounds_go_into_its_pattern() -> None:
    # llama.cpp reads a string's pattern alone and drops minLength/maxLength, which keep a small model from
    # looping inside one SWOT cell (the tiny tier wrote one sentence 60 times): the pattern carries them.
    cell = without_cjk(SWOT_SCHEMA)
    strings = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string" and "maxLength" in node:
                strings.append(node)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(cell)
    assert strings, "the SWOT schema bounds its cells"
    for node in strings:
        pattern = node["pattern"]
        assert pattern.endswith(f"{{{node['minLength']},{node['maxLength']}}}$")
        assert re.fullmatch(pattern, "x" * node["maxLength"]) and not re.fullmatch(
            pattern, "x" * (node["maxLength"] + 1)
        )
        assert not re.fullmatch(pattern, "x" * (node["minLength"] - 1)) and not re.fullmatch(pattern, "ab挑战cd")


@pytest.mark.parametrize(
    ("text", "cjk"),
    [
        ("which can be a challenge for顾客", True),
        ("ベーカリー", True),
        ("빵집", True),
        ("a comma，full width", True),
        ("Crème brûlée in Zürich, São Paulo — naïve café", False),
        ("Пекарня в Лионе", False),
        ("", False),
    ],
)
def test_what_counts_as_cjk(text: str, cjk: bool) -> None:
    assert has_cjk([text]) is cjk
    assert (re.fullmatch(NO_CJK_PATTERN, text) is None) is cjk


def test_the_pattern_leaves_the_quote_out_so_that_a_string_can_end() -> None:
    # llguidance matched a class that admitted '"' against the JSON text: no string could end, and a plan
    # ran to its token limit. Escapes stay possible.
    assert re.fullmatch(NO_CJK_PATTERN, 'say "hi"') is None and re.fullmatch(NO_CJK_PATTERN, "a\nb") is None
    assert re.fullmatch(NO_CJK_PATTERN, "line one\\nline two \\u00e9") is not None


def test_a_request_is_restricted_only_with_a_schema_and_no_cjk_in_its_messages() -> None:
    english = [{"role": "user", "content": "A SWOT of a bakery in Lyon"}]
    chinese = [{"role": "user", "content": [{"type": "text", "text": "里昂一家面包店的SWOT"}]}]
    wrapped = {"max_tokens": 9, "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}}
    plain = {"response_format": {"type": "json_object", "schema": SCHEMA}}
    restricted = same_script(wrapped, english)
    point = restricted["response_format"]["json_schema"]["schema"]["properties"]["point"]
    assert point["pattern"] == f"^{NO_CJK_CLASS}{{3,}}$"
    assert restricted["max_tokens"] == 9 and "pattern" not in SCHEMA["properties"]["point"]
    assert same_script(plain, english)["response_format"]["schema"]["anyOf"][0]["pattern"] == NO_CJK_PATTERN
    assert same_script(wrapped, chinese) is wrapped  # a prompt in CJK may be answered in it
    for untouched in ({"max_tokens": 9}, {"response_format": {"type": "json_object"}}, {"grammar": "root ::= x"}):
        assert same_script(untouched, english) is untouched


async def test_the_swot_request_reaching_llama_cpp_excludes_cjk(scripted) -> None:
    service, server = scripted([llama_chunks("{}"), llama_chunks("{}")])
    settings = LocalLlamaPromptExecutionSettings(max_tokens=9, response_format=json_schema_format(SWOT_SCHEMA, "swot"))
    for prompt in ("A SWOT of a bakery in Lyon", "里昂一家面包店"):
        history = ChatHistory()
        history.add_user_message(prompt)
        await service.get_chat_message_content(history, settings)
    english, chinese = (json.dumps(r["response_format"], ensure_ascii=False) for r in server.requests)
    point: dict[str, Any] = server.requests[0]["response_format"]["json_schema"]["schema"]
    point = point["properties"]["strengths"]["items"]["properties"]["point"]
    assert point["pattern"] == f"^{NO_CJK_CLASS}{{3,{POINT_MAX}}}$" and point["maxLength"] == POINT_MAX
    pattern = json.dumps(NO_CJK_CLASS, ensure_ascii=False)[1:-1]
    assert english.count(pattern) == 8 and pattern not in chinese  # point and why, in four quadrants
