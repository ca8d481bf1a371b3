"""A template may call a plugin its author adds later (issue 24), as Azure's samples do.

``{{UserProfilePlugin.GetUserAge $userId}}`` names a native plugin the author registers from their own code.
Semantic Kernel loads such a prompt and fails only when it runs without that plugin; so do we: lint warns
(``--strict`` keeps the error, for CI), the function loads and lists, running it without the plugin is a
one-line error naming the missing function, and with the plugin's folder trusted it runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel_app.base.errors import UsageError
from kernel_app.kernel.plugin_folders.loader import PluginDirectory, load_plugin_directories
from kernel_app.providers.scripted import ScriptedChatCompletion
from tests.support.cli import run_cli

# The same call in each template format semantic-kernel reads.
TEMPLATES = {
    "semantic-kernel": "The user is {{UserProfilePlugin.GetUserAge $userId}} years old.\nAdvise {{$userId}}.",
    "handlebars": "The user is {{UserProfilePlugin-GetUserAge userId=userId}} years old.\nAdvise {{userId}}.",
    "jinja2": "The user is {{ UserProfilePlugin_GetUserAge(userId=userId) }} years old.\nAdvise {{ userId }}.",
}
CALL_NAME = {
    "semantic-kernel": "UserProfilePlugin.GetUserAge",
    "handlebars": "UserProfilePlugin.GetUserAge",
    "jinja2": "UserProfilePlugin_GetUserAge",
}

NATIVE_PLUGIN = '''
from typing import Annotated

from semantic_kernel.functions import kernel_function


class UserProfilePlugin:
    """What the Azure sample registers from its application code."""

    @kernel_function(name="GetUserAge", description="The age of a user.")
    def get_user_age(self, userId: Annotated[str, "the user"]) -> str:
        return {"alice": "41"}.get(userId, "unknown")
'''


def advisor_folder(root: Path, template_format: str) -> Path:
    folder = root / "Advisor" / "Advise"
    folder.mkdir(parents=True)
    (folder / "skprompt.txt").write_text(TEMPLATES[template_format], encoding="utf-8")
    config = {
        "description": "Advice for a user.",
        "template_format": template_format,
        "input_variables": [{"name": "userId", "description": "the user", "is_required": True}],
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def native_folder(root: Path) -> None:
    (root / "UserProfilePlugin").mkdir(parents=True)
    (root / "UserProfilePlugin" / "user_profile.py").write_text(NATIVE_PLUGIN, encoding="utf-8")


def load(root: Path, *, strict_calls: bool = False, trusted: bool = False) -> Any:
    from kernel_app.base.paths import builtin_plugins_dir
    from kernel_app.kernel.builder import OTHER_FUNCTIONS

    return load_plugin_directories(
        [PluginDirectory(root, trusted=trusted), PluginDirectory(builtin_plugins_dir(), trusted=True, builtin=True)],
        other_functions=OTHER_FUNCTIONS,
        strict_calls=strict_calls,
    )


def build(root: Path, tmp_path: Path, *, trusted: bool = False) -> tuple[Any, ScriptedChatCompletion]:
    from kernel_app.base.config import load_settings
    from kernel_app.kernel.builder import build_kernel

    service = ScriptedChatCompletion(default="some advice")
    settings = load_settings(
        plugins_dirs=[root], trusted_dirs=[root] if trusted else [], memory_dir=tmp_path / "memory"
    )
    return build_kernel(settings, chat_service=service), service


async def invoke(built: Any, name: str, **variables: Any) -> str:
    from kernel_app.kernel.runner import resolve_function, run_chain

    function = resolve_function(built.kernel, name, built.report)
    return (await run_chain(built.kernel, [function], variables=variables)).result


@pytest.mark.parametrize("template_format", list(TEMPLATES))
def test_a_call_to_a_missing_plugin_is_a_warning_and_the_function_loads(tmp_path: Path, template_format: str) -> None:
    plugins = tmp_path / "plugins"
    folder = advisor_folder(plugins, template_format)
    report = load(plugins)
    assert [f.name for f in report.plugins["Advisor"]] == ["Advise"]
    problems = [str(p) for p in report.problems if p.path.startswith(str(plugins))]
    assert problems == [
        f"{folder}/skprompt.txt:1: warning: calls {CALL_NAME[template_format]}, which no loaded plugin has"
        f" (running it fails until one does): add a plugin folder with {CALL_NAME[template_format]},"
        " --trust the folder that holds its Python, or fix the name (see kernel-app plugins list)"
    ]


@pytest.mark.parametrize("template_format", list(TEMPLATES))
def test_strict_keeps_the_call_an_error_and_the_function_out(tmp_path: Path, template_format: str) -> None:
    plugins = tmp_path / "plugins"
    advisor_folder(plugins, template_format)
    report = load(plugins, strict_calls=True)
    assert "Advisor" not in report.plugins or not report.plugins["Advisor"]
    (problem,) = [p for p in report.problems if p.path.startswith(str(plugins))]
    assert problem.severity == "error" and "Advisor.Advise" in report.failed


def test_a_misspelt_call_names_the_closest_function(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    folder = plugins / "Ctx" / "Today"
    folder.mkdir(parents=True)
    (folder / "skprompt.txt").write_text("Line one\nTODAY is {{time.Datee}}", encoding="utf-8")
    (problem,) = [str(p) for p in load(plugins).problems if "calls" in p.message]
    assert problem.startswith(f"{folder}/skprompt.txt:2: warning: calls time.Datee, which no loaded plugin has")
    assert "fix the name (did you mean Time.date" in problem


def test_an_untrusted_native_plugin_of_that_name_is_named_in_the_hint(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    advisor_folder(plugins, "semantic-kernel")
    native_folder(plugins)
    problems = [str(p) for p in load(plugins).problems if p.path.startswith(str(plugins))]
    assert any("user_profile.py: Python file in an untrusted directory" in p for p in problems)
    assert any(
        "warning: calls UserProfilePlugin.GetUserAge" in p
        and "plugin UserProfilePlugin is here but did not load (see its finding)" in p
        for p in problems
    ), problems
    assert [str(p) for p in load(plugins, trusted=True).problems if p.path.startswith(str(plugins))] == []


@pytest.mark.parametrize("template_format", list(TEMPLATES))
async def test_running_without_the_plugin_is_one_line_naming_the_missing_function(
    tmp_path: Path, template_format: str
) -> None:
    plugins = tmp_path / "plugins"
    advisor_folder(plugins, template_format)
    built, service = build(plugins, tmp_path)
    with pytest.raises(UsageError) as caught:
        await invoke(built, "Advisor.Advise", userId="alice")
    message = str(caught.value)
    assert message.startswith(f"Advisor.Advise: its template calls {CALL_NAME[template_format]}, which is not loaded")
    assert "\n" not in message
    assert service.requests == []  # refused before anything reached the model


@pytest.mark.parametrize("template_format", list(TEMPLATES))
async def test_it_runs_once_the_native_plugin_is_trusted(tmp_path: Path, template_format: str) -> None:
    plugins = tmp_path / "plugins"
    advisor_folder(plugins, template_format)
    native_folder(plugins)
    built, service = build(plugins, tmp_path, trusted=True)
    assert await invoke(built, "Advisor.Advise", userId="alice") == "some advice"
    assert "The user is 41 years old." in service.requests[-1].prompt


@pytest.mark.e2e
def test_cli_lint_warns_list_shows_and_strict_fails(tmp_path: Path) -> None:
    plugins = tmp_path / "my-plugins"
    advisor_folder(plugins, "semantic-kernel")
    result = run_cli("plugins", "lint", str(plugins))
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    assert ": warning: calls UserProfilePlugin.GetUserAge, which no loaded plugin has" in line
    strict = run_cli("plugins", "lint", "--strict", str(plugins))
    assert strict.returncode == 1
    (line,) = strict.stdout.splitlines()
    assert ": calls UserProfilePlugin.GetUserAge" in line and ": warning:" not in line
    listed = run_cli("--plugins-dir", str(plugins), "plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "Advisor.Advise" in {f"{f['plugin']}.{f['function']}" for f in json.loads(listed.stdout)}
    native_folder(plugins)
    trusted = run_cli("--trust", str(plugins), "plugins", "lint", "--strict", str(plugins))
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert trusted.stdout == ""


def test_semantic_kernels_core_plugin_names_resolve_without_a_warning(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    folder = plugins / "Ctx" / "Notes"
    folder.mkdir(parents=True)
    template = (
        "{{TimePlugin.Date}} {{TextMemoryPlugin.recall $input collection='SWOT' relevance='0.5' limit='2'}}\n"
        "{{TextMemorySkill.save $input key='k'}} {{ConversationSummaryPlugin.SummarizeConversation $input}}"
    )
    (folder / "skprompt.txt").write_text(template, encoding="utf-8")
    config = {"description": "d.", "input_variables": [{"name": "input", "description": "i"}]}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert [str(p) for p in load(plugins).problems if p.path.startswith(str(plugins))] == []


def test_core_plugins_with_effects_are_warnings_that_say_why(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    folder = plugins / "Io" / "Fetch"
    folder.mkdir(parents=True)
    (folder / "skprompt.txt").write_text(
        "{{HttpPlugin.GetAsync $input}}\n{{FileIOPlugin.Read $input}}", encoding="utf-8"
    )
    config = {"description": "d.", "input_variables": [{"name": "input", "description": "i"}]}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    http, file_io = [str(p) for p in load(plugins).problems if p.path.startswith(str(plugins))]
    assert ":1: warning: calls HttpPlugin.GetAsync" in http and "http plugin reaches the network" in http
    assert (
        ":2: warning: calls FileIOPlugin.Read" in file_io and "reads and writes files, so it is not provided" in file_io
    )


async def test_a_dotted_handlebars_call_with_a_positional_argument_is_the_same_call(tmp_path: Path) -> None:
    # As Semantic Kernel samples write it: the dot, and the argument without a name (kernel.template_engines).
    plugins = tmp_path / "plugins"
    folder = advisor_folder(plugins, "handlebars")
    (folder / "skprompt.txt").write_text(
        "The user is {{UserProfilePlugin.GetUserAge userId}} years old.\nAdvise {{userId}}.", encoding="utf-8"
    )
    (problem,) = [str(p) for p in load(plugins).problems if p.path.startswith(str(plugins))]
    assert ":1: warning: calls UserProfilePlugin.GetUserAge, which no loaded plugin has" in problem
    built, service = build(plugins, tmp_path)
    with pytest.raises(UsageError, match=r"^Advisor.Advise: its template calls UserProfilePlugin.GetUserAge, which"):
        await invoke(built, "Advisor.Advise", userId="alice")
    assert service.requests == []
    native_folder(plugins)
    built, service = build(plugins, tmp_path, trusted=True)
    assert await invoke(built, "Advisor.Advise", userId="alice") == "some advice"
    assert "The user is 41 years old.\nAdvise alice." in service.requests[-1].prompt
