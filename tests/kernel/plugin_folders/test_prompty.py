"""``.prompty`` files in a plugin folder: both spec versions, templates, role sections, lint with lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kernel_app.base.config import Settings
from kernel_app.kernel.plugin_folders.loader import LoadReport, PluginDirectory, load_plugin_directories
from kernel_app.providers.scripted import ScriptedChatCompletion, ScriptedRequest

LEGACY = """\
---
name: Support Answer
description: Answer a customer's question with their orders in mind.
authors:
  - Someone
model:
  api: chat
  configuration:
    type: azure_openai
    azure_deployment: gpt-4o-mini
  parameters:
    max_tokens: 128
    temperature: 0.2
inputs:
  customer:
    type: object
  question:
    type: string
  tone:
    type: string
    default: friendly
outputs:
  answer:
    type: string
sample:
  customer:
    firstName: Ann
    orders:
      - name: Tent
  question: Which tent did I buy?
---
system:
You help {{customer.firstName}} & answer in a {{tone}} tone <briefly>.
{% for order in customer.orders %}
- {{order.name}}
{% endfor %}

user:
{{question}}
"""

V2 = """\
---
name: basic-prompt
description: A basic prompt
model:
  id: gpt-4
  provider: openai
  apiType: chat
  connection:
    kind: key
  options:
    temperature: 0.7
    maxOutputTokens: 300
    stopSequences: ["###"]
inputs:
  - name: firstName
    kind: string
    default: Jane
  - name: question
    kind: string
    description: What to answer
template:
  format:
    kind: jinja2
  parser:
    kind: prompty
---
system:
You are helping {{firstName}}.

user[name="Alice"]:
{{question}}

assistant:
Sure.

user:
Thanks
"""

MUSTACHE = """\
---
name: mustache
description: Greet everyone on a list.
template: mustache
inputs:
  people:
    type: array
---
system:
Greet{{#people}} {{name}}{{/people}}.{{^people}} nobody{{/people}}
"""


def write(root: Path, plugin: str, name: str, text: str) -> Path:
    folder = root / plugin
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load(root: Path, specs_only: bool = False) -> LoadReport:
    return load_plugin_directories([PluginDirectory(root)], specs_only=specs_only)


async def run(root: Path, name: str, /, answer: str = "ok", **variables: Any) -> ScriptedRequest:
    from kernel_app.kernel.builder import build_kernel
    from kernel_app.kernel.runner import resolve_function, run_chain

    service = ScriptedChatCompletion(default=answer)
    built = build_kernel(Settings(plugins_dirs=[root], memory_dir=root / ".memory"), chat_service=service)
    function = resolve_function(built.kernel, name, built.report)
    await run_chain(built.kernel, [function], variables=variables)
    return service.requests[-1]


def lines_of(report: LoadReport, root: Path) -> list[str]:
    return [str(p).replace(str(root) + "/", "") for p in report.problems]


async def test_legacy_prompty_sends_its_settings_roles_and_structured_output(tmp_path: Path) -> None:
    write(tmp_path, "Support", "answer.prompty", LEGACY)
    report = load(tmp_path)
    assert report.errors == []
    function = report.plugins["Support"][0]
    assert function.name == "answer"
    assert function.description == "Answer a customer's question with their orders in mind."
    parameters = {p.name: p for p in function.metadata.parameters}
    assert parameters["tone"].default_value == "friendly" and not parameters["tone"].is_required
    assert parameters["question"].is_required
    # Typed inputs reach function calling's tool schema with their type.
    assert parameters["question"].schema_data == {"type": "string"}

    customer = {"firstName": "Ann", "orders": [{"name": "Tent"}, {"name": "Stove"}]}
    sent = await run(tmp_path, "Support.answer", customer=customer, question="Which tent?")
    assert [m["role"] for m in sent.messages] == ["system", "user"]
    # The template's own text arrives as written: "&" and "<briefly>" do not break the XML of the messages.
    assert sent.messages[0]["content"].startswith("You help Ann & answer in a friendly tone <briefly>.")
    assert "- Tent" in sent.messages[0]["content"] and "- Stove" in sent.messages[0]["content"]
    assert sent.messages[1]["content"] == "Which tent?"
    assert sent.settings["max_tokens"] == 128 and sent.settings["temperature"] == 0.2
    schema = sent.settings["response_format"]["json_schema"]["schema"]
    assert schema == {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


async def test_v2_prompty_maps_options_inputs_and_named_roles(tmp_path: Path) -> None:
    write(tmp_path, "Chat", "basic-prompt.prompty", V2)
    report = load(tmp_path)
    assert report.errors == []
    assert [f.name for f in report.plugins["Chat"]] == ["basic_prompt"]
    sent = await run(tmp_path, "Chat.basic_prompt", question="What is 2+2?")
    assert [(m["role"], m["content"]) for m in sent.messages] == [
        ("system", "You are helping Jane."),
        ("user", "What is 2+2?"),
        ("assistant", "Sure."),
        ("user", "Thanks"),
    ]
    assert sent.settings["temperature"] == 0.7 and sent.settings["max_tokens"] == 300
    assert sent.settings["stop"] == ["###"]


async def test_a_mustache_template_renders_sections_with_the_handlebars_engine(tmp_path: Path) -> None:
    write(tmp_path, "Greet", "mustache.prompty", MUSTACHE)
    assert load(tmp_path).errors == []
    sent = await run(tmp_path, "Greet.mustache", people=[{"name": "Ann"}, {"name": "Bo"}])
    assert sent.messages[0]["content"] == "Greet Ann Bo."
    nobody = await run(tmp_path, "Greet.mustache", people=[])
    assert nobody.messages[0]["content"] == "Greet. nobody"


async def test_a_body_without_role_lines_is_one_message_and_a_file_without_front_matter_loads(tmp_path: Path) -> None:
    write(tmp_path, "Bare", "plain.prompty", "Say hello to {{name}}.\n")
    report = load(tmp_path)
    assert report.errors == []
    sent = await run(tmp_path, "Bare.plain", name="Ann")
    # semantic-kernel sends a lone system message as the user's (ChatHistory.from_rendered_prompt).
    assert [(m["role"], m["content"]) for m in sent.messages] == [("user", "Say hello to Ann.")]


def test_bad_fields_are_errors_on_their_front_matter_line(tmp_path: Path) -> None:
    bad = LEGACY.replace("temperature: 0.2", "temperature: 7").replace("  tone:\n", "  to-ne:\n")
    write(tmp_path, "Bad", "answer.prompty", bad)
    write(tmp_path, "Bad", "embed.prompty", "---\nname: e\nmodel:\n  apiType: embedding\n---\n{{text}}\n")
    write(tmp_path, "Bad", "format.prompty", "---\ndescription: d\ntemplate:\n  format:\n    kind: liquid\n---\nHi\n")
    write(tmp_path, "Bad", "syntax.prompty", "---\ndescription: d\n---\nsystem:\nHi {% if x %}\n")
    write(tmp_path, "Bad", "yaml.prompty", "---\ndescription: [unclosed\n---\nHi\n")
    report = load(tmp_path)
    errors = [str(p).replace(str(tmp_path) + "/", "") for p in report.errors]
    assert any(e.startswith("Bad/answer.prompty:13: model setting temperature: 7 is out of range") for e in errors)
    assert any(e.startswith("Bad/answer.prompty:19: invalid input name 'to-ne'") for e in errors)
    assert any(e.startswith("Bad/embed.prompty:4: model.apiType 'embedding' is not a chat prompt") for e in errors)
    assert any(e.startswith("Bad/format.prompty:4: unknown template format 'liquid'") for e in errors)
    assert any(e.startswith("Bad/syntax.prompty:5: template syntax error") for e in errors)
    assert any(e.startswith("Bad/yaml.prompty:") and "invalid YAML" in e for e in errors)
    assert set(report.failed) == {"Bad.answer", "Bad.embed", "Bad.format", "Bad.syntax", "Bad.yaml"}


def test_ignored_model_fields_tools_and_rendered_roles_are_one_line_warnings(tmp_path: Path) -> None:
    chat = """\
---
description: Chat with a history.
model:
  api: chat
  configuration:
    type: azure_openai
  parameters:
    tools: ${file:functions.json}
    logprobs: true
inputs:
  chat_history:
    type: list
    default: []
---
system:
Be brief.
{% for item in chat_history %}
{{item.role}}:
{{item.content}}
{% endfor %}
"""
    write(tmp_path, "Chat", "chat.prompty", chat)
    write(tmp_path, "Chat", "functions.json", "[]")  # a ${file:} beside it is not an unexpected file
    report = load(tmp_path)
    assert report.errors == []
    found = lines_of(report, tmp_path)
    assert found == [
        "Chat/chat.prompty:4: warning: model.api, model.configuration ignored: Kernel App runs the model you choose"
        " (--service, --model), with its own connection",
        "Chat/chat.prompty:8: warning: model.parameters.tools are not loaded (ignored): Kernel App offers its"
        " plugins' functions to the model: put the tool in a plugin folder",
        "Chat/chat.prompty:9: warning: unknown model setting 'logprobs' (ignored): known settings: "
        + found[2].split("known settings: ")[1],
        "Chat/chat.prompty:18: warning: role lines the template renders stay text in the message above: Kernel App"
        " splits the file's own role lines; give a history as chat_history (--var-json)",
    ]
    parameters = {p.name: p for p in report.plugins["Chat"][0].metadata.parameters}
    assert parameters["chat_history"].is_required is False


async def test_an_optional_list_input_loops_over_nothing_when_not_given(tmp_path: Path) -> None:
    chat = "---\ndescription: d\ninputs:\n  history:\n    type: list\n    default: []\n---\n"
    chat += "system:\nBe brief.{% for item in history %} [{{item.content}}]{% endfor %}\n\nuser:\nhi\n"
    write(tmp_path, "Chat", "chat.prompty", chat)
    sent = await run(tmp_path, "Chat.chat")
    assert sent.messages[0]["content"] == "Be brief."


def test_samples_and_file_inputs_declare_variables(tmp_path: Path) -> None:
    write(tmp_path, "S", "sample.json", json.dumps({"question": "Why?", "topic": "sky"}))
    write(tmp_path, "S", "schema.json", json.dumps([{"name": "question", "kind": "string", "default": "What?"}]))
    write(tmp_path, "S", "a.prompty", "---\ndescription: d\nsample: ${file:sample.json}\n---\n{{topic}} {{question}}\n")
    write(tmp_path, "S", "b.prompty", "---\ndescription: d\ninputs: ${file:schema.json}\n---\n{{question}}\n")
    write(tmp_path, "S", "c.prompty", "---\ndescription: d\nsample: ${file:../../outside.json}\n---\nx\n")
    report = load(tmp_path, specs_only=True)
    functions = {f.name: f for f in report.plugins["S"]}
    assert [p.name for p in functions["a"].parameters] == ["question", "topic"]
    assert functions["b"].parameters[0].default_value == "What?"
    assert "c" not in functions
    assert "S/c.prompty:3: ${file:../../outside.json} is outside the plugin folder" in lines_of(report, tmp_path)[0]


async def test_a_setting_given_as_a_file_reference_is_read_from_the_file(tmp_path: Path) -> None:
    # prompty's own structured_output.prompty: `response_format: ${file:structured_output_schema.json}`.
    schema = {"type": "json_schema", "json_schema": {"name": "event", "schema": {"type": "object"}}}
    write(tmp_path, "S", "schema.json", json.dumps(schema))
    settings = "  parameters:\n    response_format: ${file:schema.json}\n    temperature: ${file:absent.json}\n"
    write(tmp_path, "S", "event.prompty", f"---\ndescription: d\nmodel:\n{settings}---\nuser:\n{{{{text}}}}\n")
    report = load(tmp_path)
    assert report.errors == []
    assert "S/event.prompty:6: warning: ${file:absent.json} does not exist (ignored)" in lines_of(report, tmp_path)[0]
    sent = await run(tmp_path, "S.event", text="Ann meets Bo on Friday")
    assert sent.settings["response_format"] == schema and "temperature" not in sent.settings


async def test_a_file_that_names_no_format_but_opens_mustache_sections_is_read_as_mustache(tmp_path: Path) -> None:
    # langchain-prompty's test prompts: its default format is mustache, Prompty's is jinja2.
    history_loop = "{{#chat_history}}\n{{type}}:\n{{content}}\n{{/chat_history}}\n"
    body = f"system:\nYou help {{{{name}}}}.\n\n{history_loop}\nuser:\n{{{{input}}}}\n"
    write(tmp_path, "L", "chat.prompty", f"---\ndescription: d\nsample:\n  name: Jane\n---\n{body}")
    report = load(tmp_path)
    assert report.errors == []
    assert (
        "L/chat.prompty:9: warning: no template format given and the body opens a mustache section"
        " ({{#chat_history}}): read as mustache: add `template: mustache` to say so (Prompty's default is jinja2)"
    ) in lines_of(report, tmp_path)
    history = [{"type": "assistant", "content": "Hello"}]
    sent = await run(tmp_path, "L.chat", name="Jane", chat_history=history, input="Why?")
    assert sent.messages[0]["content"].rstrip() == "You help Jane.\n\nassistant:\nHello"
    assert sent.messages[-1] == {"role": "user", "content": "Why?"}


def test_a_template_that_extends_another_file_is_refused_on_its_line(tmp_path: Path) -> None:
    # prompty's faithfulness.prompty: `base: evaluation.prompty` and jinja2 inheritance from that file.
    write(tmp_path, "P", "base.prompty", "---\ndescription: d\n---\n{% block body %}{% endblock %}\n")
    child = "---\ndescription: d\nbase: base.prompty\n---\n\n{% extends 'base.prompty' %}\n"
    child += "{% block body %}x{% endblock %}\n"
    write(tmp_path, "P", "child.prompty", child)
    report = load(tmp_path)
    assert [f.name for f in report.plugins["P"]] == ["base"]
    assert [str(p).replace(str(tmp_path) + "/", "") for p in report.errors] == [
        "P/child.prompty:6: the template extends another file (base.prompty): each .prompty file renders on its"
        " own: copy what it needs from base.prompty into this file"
    ]


async def test_max_completion_tokens_is_sent_as_the_output_limit(tmp_path: Path) -> None:
    # azure-ai-evaluation's task_adherence.prompty sets OpenAI's newer name for max_tokens.
    write(
        tmp_path,
        "E",
        "judge.prompty",
        "---\ndescription: d\nmodel:\n  parameters:\n    max_completion_tokens: 800\n---\nJudge.\n",
    )
    assert load(tmp_path).problems == []
    sent = await run(tmp_path, "E.judge")
    assert sent.settings["max_tokens"] == 800


def test_lint_and_list_show_prompty_functions(tmp_path: Path) -> None:
    from kernel_app.interfaces.cli.main import cli

    write(tmp_path, "Support", "answer.prompty", LEGACY)
    write(tmp_path, "Support", "broken.prompty", LEGACY.replace("max_tokens: 128", "max_tokens: lots"))
    lint = CliRunner().invoke(cli, ["plugins", "lint", str(tmp_path)])
    assert lint.exit_code == 1
    findings = [line.replace(str(tmp_path) + "/", "") for line in lint.stdout.splitlines()]
    assert (
        "Support/broken.prompty:12: model setting max_tokens: expected a whole number of at least 1, got 'lots':"
        in ("\n".join(findings))
    )
    assert all(line.startswith("Support/") for line in findings), findings
    listed = CliRunner().invoke(cli, ["--plugins-dir", str(tmp_path), "plugins", "list", "--json"])
    functions = {f"{f['plugin']}.{f['function']}": f for f in json.loads(listed.stdout)}
    answer = functions["Support.answer"]
    assert answer["description"] == "Answer a customer's question with their orders in mind."
    assert [p["name"] for p in answer["parameters"]] == ["customer", "question", "tone"]
    assert "Support.broken" not in functions


@pytest.mark.parametrize(
    ("body", "role_lines"),
    [
        ("system:\nA\nuser:\nB\n", ["system", "user"]),
        ("Intro\n\nuser:\nB\n", ["system", "user"]),
        ("# system:\nA\n\nUSER :\nB\nassistant:\n", ["system", "user"]),  # prompty's "#" and case; a trailing role
    ],
)
def test_role_lines_become_message_tags_on_the_same_lines(body: str, role_lines: list[str]) -> None:
    import re

    from kernel_app.kernel.plugin_folders.prompty import chat_template

    template = chat_template(body.splitlines(keepends=True))
    assert template.count("\n") == body.count("\n")
    assert re.findall(r'<message role="(\w+)">', template) == role_lines
    assert template.count("</message>") == len(role_lines)
