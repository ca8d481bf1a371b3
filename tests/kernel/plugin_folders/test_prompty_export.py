"""``plugins export P.F --to prompty``: a prompt function as a .prompty file that loads back the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kernel_app.base.errors import UsageError
from kernel_app.kernel.plugin_folders.loader import PluginDirectory, load_plugin_directories
from kernel_app.kernel.plugin_folders.prompty_export import prompty_text

CONFIG: dict[str, Any] = {
    "description": "Tell a joke.",
    "input_variables": [
        {"name": "input", "description": "The topic", "is_required": True},
        {"name": "style", "description": "How", "default": "dry"},
        {"name": "audience", "description": "Who", "default": "", "is_required": False},
    ],
    "execution_settings": {
        "default": {
            "max_tokens": 200,
            "temperature": 0.8,
            "top_p": 0.9,
            "stop": ["###"],
            "response_format": {"type": "json_object"},
        }
    },
}

CASES = {
    "semantic-kernel": "Tell a {{$style}} joke about {{$input}} for {{$audience}} {% not jinja %} {# nor this #}.",
    "semantic-kernel-roles": (
        '<message role="system">Be brief &amp; kind, 1 &lt; 2.</message>\n'
        '<message role="user">A {{$style}} joke about {{$input}} {{$audience}}</message>\n'
        '<message role="assistant">Why?</message>'
    ),
    "jinja2": (
        '<message role="system">Jokes, {{ style }} ones{% if audience %} for {{ audience }}{% endif %}.</message>'
        '<message role="user">{{ input }}</message>'
    ),
    "handlebars": '<message role="system">{{#if audience}}For {{audience}}: {{/if}}{{style}}</message>\n'
    '<message role="user" name="Ann">{{input}}</message>',
}


def make(root: Path, case: str, template: str) -> Path:
    folder = root / "Jokes" / "Joke"
    folder.mkdir(parents=True)
    template_format = case.removesuffix("-roles")
    (folder / "config.json").write_text(json.dumps(CONFIG | {"template_format": template_format}), encoding="utf-8")
    (folder / "skprompt.txt").write_text(template, encoding="utf-8")
    return folder


async def rendered(function: Any, **arguments: Any) -> list[tuple[str, str | None, str]]:
    from semantic_kernel import Kernel
    from semantic_kernel.contents import ChatHistory
    from semantic_kernel.functions import KernelArguments

    text = await function.prompt_template.render(Kernel(), KernelArguments(**arguments))
    history = ChatHistory.from_rendered_prompt(text)
    return [(str(m.role.value), m.name, (m.content or "").strip()) for m in history.messages]


def variables(function: Any) -> list[tuple[str, str, Any, bool]]:
    return [(p.name, p.description, p.default_value or None, bool(p.is_required)) for p in function.metadata.parameters]


def settings(function: Any) -> dict[str, Any]:
    return dict(function.prompt_execution_settings["default"].extension_data)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_export_then_load_gives_the_same_prompt_settings_and_variables(tmp_path: Path, case: str) -> None:
    make(tmp_path / "src", case, CASES[case])
    original = load_plugin_directories([PluginDirectory(tmp_path / "src")]).plugins["Jokes"][0]
    text, notes = prompty_text(original)
    assert notes == []
    (tmp_path / "out" / "Jokes").mkdir(parents=True)
    (tmp_path / "out" / "Jokes" / "Joke.prompty").write_text(text, encoding="utf-8")
    report = load_plugin_directories([PluginDirectory(tmp_path / "out")])
    assert report.problems == [], "\n".join(map(str, report.problems))
    loaded = report.plugins["Jokes"][0]
    assert loaded.name == "Joke" and loaded.description == "Tell a joke."
    assert settings(loaded) == settings(original)
    assert variables(loaded) == variables(original)
    for arguments in ({"input": "cats"}, {"input": "dogs", "style": "warm", "audience": "kids"}):
        full = {"style": "dry", "audience": ""} | arguments
        assert await rendered(loaded, **full) == await rendered(original, **full)


def test_a_template_that_calls_functions_or_a_native_function_is_refused(tmp_path: Path) -> None:
    make(tmp_path, "semantic-kernel", "Today is {{time.Date}}; tell a joke about {{$input}}.")
    report = load_plugin_directories([PluginDirectory(tmp_path)], other_functions={"time": ["Date"]})
    function = report.plugins["Jokes"][0]
    with pytest.raises(UsageError) as raised:
        prompty_text(function)
    assert str(raised.value) == (
        "Jokes.Joke: its template has '{{time.Date}}', which only semantic-kernel's syntax reads: rewrite the"
        " template in jinja2 (template_format: jinja2) and export again"
    )

    from semantic_kernel.functions import KernelFunctionFromMethod, kernel_function

    @kernel_function(name="ping")
    def ping() -> str:
        return "pong"

    with pytest.raises(UsageError, match=r"Tools\.ping is a native"):
        prompty_text(KernelFunctionFromMethod(method=ping, plugin_name="Tools"))


def test_only_the_default_settings_are_exported_and_the_rest_is_noted(tmp_path: Path) -> None:
    folder = make(tmp_path, "semantic-kernel", "{{$input}}")
    config = json.loads((folder / "config.json").read_text())
    config["execution_settings"]["openai"] = {"max_tokens": 5}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    function = load_plugin_directories([PluginDirectory(tmp_path)]).plugins["Jokes"][0]
    _, notes = prompty_text(function)
    assert notes == ["Jokes.Joke: only the 'default' execution settings are exported (not openai)"]


def test_the_cli_writes_the_file_that_lint_accepts(tmp_path: Path) -> None:
    from kernel_app.interfaces.cli.main import cli

    make(tmp_path / "src", "semantic-kernel", CASES["semantic-kernel"])
    out = tmp_path / "out" / "Jokes"
    out.mkdir(parents=True)
    runner = CliRunner()
    exported = runner.invoke(
        cli,
        ["--plugins-dir", str(tmp_path / "src"), "plugins", "export", "jokes.joke", "--to", "prompty", "-o", str(out)],
    )
    assert exported.exit_code == 0, exported.output
    assert exported.stderr == f"wrote {out / 'Joke.prompty'}\n"
    text = (out / "Joke.prompty").read_text(encoding="utf-8")
    assert text.startswith("---\nname: Joke\ndescription: Tell a joke.\nmodel:\n  options:\n    maxOutputTokens: 200\n")
    assert "user:\nTell a {{style}} joke about {{input}}" in text
    lint = runner.invoke(cli, ["plugins", "lint", str(tmp_path / "out")])
    assert lint.exit_code == 0 and lint.stdout == ""
    missing = runner.invoke(
        cli, ["--plugins-dir", str(tmp_path / "src"), "plugins", "export", "Jokes.Jok", "--to", "prompty"]
    )
    assert isinstance(missing.exception, UsageError)  # the entry point prints it on one line, exit status 2
    assert str(missing.exception) == "no function Jokes.Jok: did you mean Jokes.Joke?"
