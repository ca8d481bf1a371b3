"""``response_format`` as .NET Semantic Kernel and YAML prompts spell it reaches the model as OpenAI expects.

semantic-kernel 1.45 fails every run on ``response_format: json_object`` (the string form) and on
``{"type": "text"}``; the loader normalises at load time (kernel/plugin_folders/response_format.py). Checked
on the shape, on the wire to the loopback OpenAI server, and on the embedded model's request (its fake).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel_app.kernel.plugin_folders.loader import PluginDirectory, load_plugin_directories
from kernel_app.kernel.plugin_folders.response_format import (
    TEXT,
    ResponseFormatError,
    normalise_response_format,
)
from tests.support.fake_llama import llama_chunks, scripted_llama  # noqa: F401 (the fixture `scripted`)

SCHEMA: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WRAPPED = {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA}}


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("json_object", {"type": "json_object"}),
        ("JSON_OBJECT", {"type": "json_object"}),
        ({"type": "json_object"}, {"type": "json_object"}),
        ("text", TEXT),
        ({"type": "text"}, TEXT),
        # OpenAI's shape, kept (name, strict and description included)
        (
            {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
            {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
        ),
        # OpenAI's shape without the name it requires
        ({"type": "json_schema", "json_schema": {"schema": SCHEMA}}, WRAPPED),
        # the flat shape (the Responses API, many YAML prompts)
        (
            {"type": "json_schema", "name": "city", "schema": SCHEMA},
            {**WRAPPED, "json_schema": {"name": "city", "schema": SCHEMA}},
        ),
        # .NET: ChatResponseFormat serialised with PascalCase, Microsoft.Extensions.AI's schemaName, a bare schema
        (
            {"Type": "json_schema", "JsonSchema": {"Name": "city", "Schema": SCHEMA}},
            {**WRAPPED, "json_schema": {"name": "city", "schema": SCHEMA}},
        ),
        ({"schemaName": "city", "schema": SCHEMA}, {**WRAPPED, "json_schema": {"name": "city", "schema": SCHEMA}}),
        (SCHEMA, WRAPPED),
    ],
)
def test_every_spelling_becomes_openais_shape(written: Any, normalised: Any) -> None:
    assert normalise_response_format(written) == normalised


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("xml", "unknown response_format 'xml'"),
        ("json_schema", "'json_schema' needs a schema"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "json_schema needs a 'schema' object"),
        ({"type": "json_schema", "json_schema": {"name": "a b", "schema": SCHEMA}}, "name 'a b' is invalid"),
        (42, "expected a string or an object, got 42"),
    ],
)
def test_a_format_no_model_accepts_is_one_line_naming_it(written: Any, says: str) -> None:
    with pytest.raises(ResponseFormatError, match=says) as caught:
        normalise_response_format(written)
    assert "\n" not in str(caught.value)


# Plugin folders with each spelling, in both config.json schemas and in YAML.
def write_plugins(root: Path) -> None:
    def config_folder(name: str, config: dict[str, Any]) -> None:
        folder = root / "Shapes" / name
        folder.mkdir(parents=True)
        (folder / "skprompt.txt").write_text("Name a city in {{$input}}.", encoding="utf-8")
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")

    variables = [{"name": "input", "description": "a country"}]
    config_folder(
        "JsonObject",
        {
            "description": "d.",
            "input_variables": variables,
            "execution_settings": {"default": {"response_format": "json_object"}},
        },
    )
    config_folder(
        "OldSchema",
        {
            "schema": 1,
            "description": "d.",
            "completion": {"max_tokens": 50, "response_format": "json_object"},
            "input": {"parameters": [{"name": "input", "description": "a country", "defaultValue": ""}]},
        },
    )
    config_folder(
        "Text",
        {
            "description": "d.",
            "input_variables": variables,
            "execution_settings": {"default": {"response_format": "text"}},
        },
    )
    (root / "Shapes" / "Schema.yaml").write_text(
        """name: Schema
description: d.
template: Name a city in {{$input}}.
input_variables:
  - name: input
    description: a country
execution_settings:
  default:
    max_tokens: 60
    response_format:
      type: json_schema
      json_schema:
        name: city
        strict: true
        schema:
          type: object
          properties:
            city: {type: string}
          required: [city]
""",
        encoding="utf-8",
    )
    (root / "Shapes" / "DotnetSchema.yaml").write_text(
        """name: DotnetSchema
description: d.
template: Name a city in {{$input}}.
input_variables:
  - name: input
    description: a country
execution_settings:
  default:
    response_format:
      type: object
      properties:
        city: {type: string}
      required: [city]
""",
        encoding="utf-8",
    )


CITY = {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": SCHEMA}}
SENT = {
    "Shapes.JsonObject": {"type": "json_object"},
    "Shapes.OldSchema": {"type": "json_object"},
    "Shapes.Text": None,
    "Shapes.Schema": CITY,
    "Shapes.DotnetSchema": WRAPPED,
}


def test_lint_accepts_every_spelling_and_names_a_bad_one(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    write_plugins(plugins)
    report = load_plugin_directories([PluginDirectory(plugins)], specs_only=True)
    assert [str(p) for p in report.problems] == []
    bad = plugins / "Bad" / "Fn"
    bad.mkdir(parents=True)
    (bad / "skprompt.txt").write_text("hi", encoding="utf-8")
    (bad / "config.json").write_text(
        json.dumps({"description": "d.", "execution_settings": {"default": {"response_format": "xml"}}}),
        encoding="utf-8",
    )
    report = load_plugin_directories([PluginDirectory(plugins)], specs_only=True)
    (problem,) = [str(p) for p in report.problems]
    assert problem.startswith(
        f"{bad}/config.json: execution_settings.default: response_format: unknown response_format 'xml': use"
    )
    assert "Bad.Fn" in report.failed


async def _run(built: Any, name: str) -> str:
    from kernel_app.kernel.runner import resolve_function, run_chain

    function = resolve_function(built.kernel, name, built.report)
    return (await run_chain(built.kernel, [function], variables={"input": "France"})).result


@pytest.mark.e2e  # the loopback OpenAI server
@pytest.mark.parametrize("name", list(SENT))
async def test_openai_gets_openais_shape(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openai_server: Any
) -> None:
    from kernel_app.base.config import load_settings
    from kernel_app.kernel.builder import build_kernel

    plugins = tmp_path / "plugins"
    write_plugins(plugins)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    openai_server.queue('{"city": "Lyon"}')
    settings = load_settings(service="openai", plugins_dirs=[plugins], memory_dir=tmp_path / "memory")
    assert await _run(build_kernel(settings), name) == '{"city": "Lyon"}'
    assert openai_server.requests[-1].body.get("response_format") == SENT[name]


@pytest.mark.parametrize("name", list(SENT))
async def test_the_embedded_model_gets_json_mode_or_a_schema(name: str, tmp_path: Path, scripted: Any) -> None:
    from kernel_app.base.config import load_settings
    from kernel_app.kernel.builder import build_kernel

    plugins = tmp_path / "plugins"
    write_plugins(plugins)
    service, server = scripted([llama_chunks('{"city": "Lyon"}')])
    settings = load_settings(plugins_dirs=[plugins], memory_dir=tmp_path / "memory")
    assert await _run(build_kernel(settings, chat_service=service), name) == '{"city": "Lyon"}'
    sent = server.requests[0].get("response_format")
    if SENT[name] is None:
        assert sent is None
    elif SENT[name]["type"] == "json_object":
        assert sent == {"type": "json_object"}  # llama.cpp's JSON mode
    else:
        # llama.cpp builds a grammar from the schema (the profile may tighten string patterns)
        assert sent["type"] == "json_schema"
        assert sent["json_schema"]["schema"]["required"] == ["city"]
        assert set(sent["json_schema"]["schema"]["properties"]) == {"city"}
