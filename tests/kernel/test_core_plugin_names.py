"""Semantic Kernel's core plugin names, called from a template in each format, run on our kernel (issue 24).

Each mapping listed in plugins/README.md is called three ways, as Semantic Kernel samples write it: the
semantic-kernel syntax (``{{MathPlugin.Add $x amount='2'}}``), handlebars with the dot and a positional
argument (``{{MathPlugin.Add x amount="2"}}``) and jinja2 (``{{ MathPlugin_Add(x, amount="2") }}``). The prompt
the scripted model receives shows what the call returned. (``TextMemoryPlugin`` needs the memory's embedding
model: tests/kernel/test_text_memory_plugin_names.py.)
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from kernel_app.base.errors import UsageError
from kernel_app.providers.scripted import ScriptedChatCompletion

# (plugin.function as the SK syntax writes it, the arguments after the first, the value of x, the result)
MAPPINGS: list[tuple[str, dict[str, str], str, str]] = [
    ("MathPlugin.Add", {"amount": "2"}, "3", "[5.0]"),
    ("MathPlugin.Subtract", {"amount": "2"}, "3", "[1.0]"),
    ("MathPlugin.Multiply", {"amount": "2"}, "3", "[6.0]"),
    ("MathPlugin.Divide", {"amount": "2"}, "3", "[1.5]"),
    ("MathSkill.Add", {"amount": "2"}, "3", "[5.0]"),  # the old name
    ("TextPlugin.trim", {}, "  padded  ", "[padded]"),
    ("TextPlugin.trimStart", {}, "  padded  ", "[padded  ]"),
    ("TextPlugin.trim_start", {}, "  padded  ", "[padded  ]"),
    ("TextPlugin.trimEnd", {}, "  padded  ", "[  padded]"),
    ("TextPlugin.uppercase", {}, "Shop", "[SHOP]"),
    ("TextPlugin.lowercase", {}, "Shop", "[shop]"),
    ("TextPlugin.length", {}, "Shop", "[4]"),
    ("TextPlugin.concat", {"input2": "keeper"}, "Shop", "[Shopkeeper]"),
    ("TextPlugin.echo", {}, "Shop", "[Shop]"),
    ("text.uppercase", {}, "Shop", "[SHOP]"),
    ("TextSkill.Uppercase", {}, "Shop", "[SHOP]"),  # semantic-kernel's docstrings register it as "text"
    ("WaitPlugin.wait", {}, "0.01", "[]"),
    ("WaitPlugin.Seconds", {}, "0.01", "[]"),  # .NET's name
    ("wait.wait", {}, "0.01", "[]"),
    ("ConversationSummaryPlugin.SummarizeConversation", {}, "We talked.", "[a summary]"),
    ("ConversationSummarySkill.SummarizeConversation", {}, "We talked.", "[a summary]"),
    ("TimePlugin.year", {}, "", f"[{datetime.date.today().year}]"),
    ("TimeSkill.Year", {}, "", f"[{datetime.date.today().year}]"),
]
FORMATS = ("semantic-kernel", "handlebars", "jinja2")


def call_in(template_format: str, name: str, rest: dict[str, str], with_input: bool) -> str:
    plugin, function = name.split(".")
    if template_format == "semantic-kernel":
        named = "".join(f" {k}='{v}'" for k, v in rest.items())
        return f"{{{{{name}{' $x' if with_input else ''}{named}}}}}"
    if template_format == "handlebars":
        named = "".join(f' {k}="{v}"' for k, v in rest.items())
        if not with_input and not rest:
            return f"{{{{{plugin}-{function}}}}}"  # without arguments a dotted name reads a variable's field
        return f"{{{{{name}{' x' if with_input else ''}{named}}}}}"
    arguments = (["x"] if with_input else []) + [f'{k}="{v}"' for k, v in rest.items()]
    return f"{{{{ {plugin}_{function}({', '.join(arguments)}) }}}}"


def case_name(index: int) -> str:
    return f"Case{index}"


@pytest.fixture(scope="module")
def plugins_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugins")
    for template_format in FORMATS:
        plugin = {"semantic-kernel": "Sk", "handlebars": "Hb", "jinja2": "J2"}[template_format]
        for index, (name, rest, x, _) in enumerate(MAPPINGS):
            folder = root / plugin / case_name(index)
            folder.mkdir(parents=True)
            call = call_in(template_format, name, rest, with_input=bool(x))
            (folder / "skprompt.txt").write_text(f"Result: [{call}]\nThe end.", encoding="utf-8")
            config = {
                "description": f"Calls {name}.",
                "template_format": template_format,
                "input_variables": [{"name": "x", "description": "the value", "default": "", "is_required": False}],
            }
            (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return root


def build(plugins: Path, tmp_path: Path) -> tuple[Any, ScriptedChatCompletion]:
    from kernel_app.base.config import load_settings
    from kernel_app.kernel.builder import build_kernel

    service = ScriptedChatCompletion(default="a summary")
    settings = load_settings(plugins_dirs=[plugins], memory_dir=tmp_path / "memory")
    return build_kernel(settings, chat_service=service), service


async def rendered(built: Any, service: ScriptedChatCompletion, name: str, **variables: Any) -> str:
    from kernel_app.kernel.runner import resolve_function, run_chain

    function = resolve_function(built.kernel, name, built.report)
    await run_chain(built.kernel, [function], variables=variables)
    prompt = service.requests[-1].prompt
    return prompt.split("Result: ", 1)[1].split("\nThe end.", 1)[0]


def test_lint_finds_every_mapping_without_a_warning(plugins_dir: Path) -> None:
    from kernel_app.base.paths import builtin_plugins_dir
    from kernel_app.kernel.builder import OTHER_FUNCTIONS
    from kernel_app.kernel.plugin_folders.loader import PluginDirectory, load_plugin_directories

    report = load_plugin_directories(
        [PluginDirectory(plugins_dir), PluginDirectory(builtin_plugins_dir(), trusted=True, builtin=True)],
        other_functions=OTHER_FUNCTIONS,
    )
    assert [str(p) for p in report.problems] == []
    for plugin in ("Sk", "Hb", "J2"):
        assert len(report.plugins[plugin]) == len(MAPPINGS), plugin


@pytest.fixture(scope="module")
def built_cases(plugins_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ScriptedChatCompletion]:
    return build(plugins_dir, tmp_path_factory.mktemp("memory"))


@pytest.mark.parametrize("template_format", FORMATS)
@pytest.mark.parametrize("index", range(len(MAPPINGS)), ids=[m[0] for m in MAPPINGS])
async def test_each_mapping_runs_from_a_template(
    built_cases: tuple[Any, ScriptedChatCompletion], template_format: str, index: int
) -> None:
    _, _, x, expected = MAPPINGS[index]
    built, service = built_cases
    plugin = {"semantic-kernel": "Sk", "handlebars": "Hb", "jinja2": "J2"}[template_format]
    assert await rendered(built, service, f"{plugin}.{case_name(index)}", x=x) == expected


def test_the_lint_record_of_the_template_only_plugins_is_theirs() -> None:
    from kernel_app.kernel.builder import OTHER_FUNCTIONS
    from kernel_app.kernel.core_plugins import template_plugins

    for name, plugin in template_plugins().items():
        assert sorted(OTHER_FUNCTIONS[name]) == sorted(plugin.functions), name


def test_the_template_only_plugins_are_never_offered_to_the_model(tmp_path: Path) -> None:
    built, _ = build(tmp_path / "none", tmp_path)
    names = {f"{m.plugin_name}.{m.name}" for m in built.kernel.get_full_list_of_function_metadata()}
    assert not any(n.startswith(("MathPlugin.", "TextPlugin.", "WaitPlugin.")) for n in names)
    assert built.kernel.get_function("MathPlugin", "Add").name == "Add"  # but a template finds them


def one_function(root: Path, template: str, template_format: str = "semantic-kernel") -> Path:
    folder = root / "Slow" / "Pause"
    folder.mkdir(parents=True)
    (folder / "skprompt.txt").write_text(template, encoding="utf-8")
    config = {
        "description": "d.",
        "template_format": template_format,
        "input_variables": [{"name": "x", "description": "x"}],
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        ("11", "WaitPlugin.wait: 11 seconds is more than a template may wait (at most 10): wait less"),
        ("soon", "WaitPlugin.wait: 'soon' is not a number of seconds"),
    ],
)
async def test_a_wait_past_the_bound_is_refused_in_one_line(tmp_path: Path, seconds: str, message: str) -> None:
    from kernel_app.kernel.runner import resolve_function, run_chain

    built, service = build(one_function(tmp_path / "plugins", "A pause: {{WaitPlugin.wait $x}}"), tmp_path)
    with pytest.raises(Exception) as caught:
        await run_chain(built.kernel, [resolve_function(built.kernel, "Slow.Pause")], variables={"x": seconds})
    error: BaseException | None = caught.value
    while error is not None and not isinstance(error, UsageError):
        error = error.__cause__ or error.__context__  # semantic-kernel wraps what a nested call raised
    assert error is not None and str(error) == message
    assert service.requests == []


async def test_dividing_by_zero_says_so(tmp_path: Path) -> None:
    from kernel_app.kernel.runner import resolve_function, run_chain

    template = '{{MathPlugin.Divide x amount="0"}}'
    built, _ = build(one_function(tmp_path / "plugins", template, "handlebars"), tmp_path)
    with pytest.raises(UsageError, match=r"^MathPlugin.Divide: cannot divide by zero"):
        await run_chain(built.kernel, [resolve_function(built.kernel, "Slow.Pause")], variables={"x": "1"})
