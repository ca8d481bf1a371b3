"""Loading plugin folders: both config schemas, YAML, native code, and a corpus of broken folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_app.kernel.plugin_folders.loader import LoadReport, PluginDirectory, load_plugin_directories
from kernel_app.providers.scripted import ScriptedChatCompletion

OLD_SCHEMA = {
    "schema": 1,
    "type": "completion",
    "description": "Summarize a text in a few words.",
    "completion": {
        "max_tokens": 123,
        "temperature": 0.7,
        "top_p": 0.4,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "stop_sequences": ["###"],
    },
    "input": {
        "parameters": [
            {"name": "input", "description": "Text to summarize", "defaultValue": ""},
            {"name": "style", "description": "Tone", "defaultValue": "plain"},
        ]
    },
}

NEW_SCHEMA = {
    "description": "Translate a text.",
    "template_format": "semantic-kernel",
    "input_variables": [
        {"name": "input", "description": "Text", "is_required": True},
        {"name": "language", "description": "Target language", "default": "French"},
    ],
    "execution_settings": {"default": {"max_tokens": 77, "temperature": 0.2}},
}


def make_function(root: Path, plugin: str, name: str, prompt: str | None, config: object | str | None) -> Path:
    folder = root / plugin / name
    folder.mkdir(parents=True, exist_ok=True)
    if prompt is not None:
        (folder / "skprompt.txt").write_text(prompt, encoding="utf-8")
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config, indent=2)
        (folder / "config.json").write_text(text, encoding="utf-8")
    return folder


def load(root: Path, trusted: bool = False) -> LoadReport:
    return load_plugin_directories([PluginDirectory(root, trusted=trusted)])


def settings_of(report: LoadReport, plugin: str, name: str) -> dict:
    function = next(f for f in report.plugins[plugin] if f.name == name)
    return function.prompt_execution_settings["default"].extension_data


def test_old_schema_settings_and_parameters_are_honoured(tmp_path: Path) -> None:
    make_function(tmp_path, "Old", "Summarize", "Summarize {{$input}} in a {{$style}} tone.", OLD_SCHEMA)
    report = load(tmp_path)
    assert report.errors == []
    data = settings_of(report, "Old", "Summarize")
    assert data == {
        "max_tokens": 123,
        "temperature": 0.7,
        "top_p": 0.4,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "stop": ["###"],
    }
    function = report.plugins["Old"][0]
    params = {p.name: p for p in function.metadata.parameters}
    assert params["input"].is_required is True
    assert params["style"].default_value == "plain" and params["style"].is_required is False
    assert function.description == "Summarize a text in a few words."


def test_new_schema_loads_with_settings_and_defaults(tmp_path: Path) -> None:
    make_function(tmp_path, "New", "Translate", "Translate {{$input}} to {{$language}}.", NEW_SCHEMA)
    report = load(tmp_path)
    assert report.errors == []
    assert settings_of(report, "New", "Translate") == {"max_tokens": 77, "temperature": 0.2}
    params = {p.name: p for p in report.plugins["New"][0].metadata.parameters}
    assert params["language"].default_value == "French" and params["language"].is_required is False


def test_yaml_prompt_loads(tmp_path: Path) -> None:
    (tmp_path / "Y").mkdir()
    (tmp_path / "Y" / "greet.yaml").write_text(
        "name: Greet\ndescription: Greet someone.\ntemplate: 'Say hello to {{$input}}'\n"
        "input_variables:\n  - name: input\n    description: who\n"
        "execution_settings:\n  default:\n    max_tokens: 12\n",
        encoding="utf-8",
    )
    report = load(tmp_path)
    assert report.errors == []
    assert [f.name for f in report.plugins["Y"]] == ["Greet"]
    assert settings_of(report, "Y", "Greet") == {"max_tokens": 12}


async def test_old_schema_settings_reach_the_model(tmp_path: Path) -> None:
    from semantic_kernel import Kernel
    from semantic_kernel.functions import KernelPlugin

    make_function(tmp_path, "Old", "Summarize", "Summarize {{$input}} in a {{$style}} tone.", OLD_SCHEMA)
    report = load(tmp_path)
    service = ScriptedChatCompletion(["short"])
    kernel = Kernel()
    kernel.add_service(service)
    kernel.add_plugin(KernelPlugin(name="Old", functions=report.plugins["Old"]))
    result = await kernel.invoke(plugin_name="Old", function_name="Summarize", input="a long story")
    assert str(result) == "short"
    sent = service.requests[0]
    assert "a long story" in sent.prompt and "plain tone" in sent.prompt
    assert sent.settings["max_tokens"] == 123 and sent.settings["stop"] == ["###"]


def test_one_bad_function_does_not_hide_good_ones(tmp_path: Path) -> None:
    make_function(tmp_path, "Mixed", "Good", "Hello {{$input}}", NEW_SCHEMA | {"input_variables": [{"name": "input"}]})
    make_function(tmp_path, "Mixed", "Bad", "Hello", "{not json")
    make_function(
        tmp_path, "Other", "AlsoGood", "Hi {{$input}}", {"description": "d", "input_variables": [{"name": "input"}]}
    )
    report = load(tmp_path)
    assert [f.name for f in report.plugins["Mixed"]] == ["Good"]
    assert [f.name for f in report.plugins["Other"]] == ["AlsoGood"]
    assert list(report.failed) == ["Mixed.Bad"]


def test_untrusted_python_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed.txt"
    plugin = tmp_path / "Native"
    plugin.mkdir()
    (plugin / "native.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from semantic_kernel.functions import kernel_function\n"
        "class N:\n    @kernel_function(name='hi')\n    def hi(self) -> str:\n        return 'hi'\n",
        encoding="utf-8",
    )
    report = load(tmp_path, trusted=False)
    assert not marker.exists(), "an untrusted folder's native code must not run on load"
    assert "untrusted" in str(report.failed["Native.native"])
    trusted = load(tmp_path, trusted=True)
    assert marker.exists(), "a trusted folder's native code should run on load"
    assert [f.name for f in trusted.plugins["Native"]] == ["hi"]


def test_builtin_plugins_load_cleanly() -> None:
    from kernel_app.base.paths import builtin_plugins_dir

    report = load(builtin_plugins_dir(), trusted=True)
    assert report.problems == []
    names = {f"{p}.{f.name}" for p, fs in report.plugins.items() for f in fs}
    expected = {
        "BusinessThinking.SWOT",
        "BusinessThinking.SWOTInterview",
        "BusinessThinking.BasicStrategies",
        "BusinessThinking.SeekCostEfficiency",
        "BusinessThinking.SeekTimeEfficiency",
        "BusinessThinking.ShiftDomain",
        "BusinessThinking.ChangeAudience",
        "DesignThinking.Empathize",
        "DesignThinking.Define",
        "DesignThinking.Ideate",
        "DesignThinking.PrototypeWithPaper",
        "DesignThinking.Test",
        "Writer.Summarize",
        "Writer.ShortPoem",
        "Writer.Translate",
        "Math.add",
        "Math.subtract",
        "Math.multiply",
        "Math.divide",
        "Time.today",
        "Time.now",
        "Text.upper",
        "Text.lower",
        "Text.trim",
        "Text.length",
    }
    assert expected <= names


# --- the corpus of broken folders: (what to build, text the problem must contain, severity) -------------


def _bad_plugin_name(root: Path) -> None:
    make_function(root, "Bad-Plugin", "F", "x", {"description": "d"})


def _bad_function_name(root: Path) -> None:
    make_function(root, "P", "my function", "x", {"description": "d"})


def _missing_prompt(root: Path) -> None:
    make_function(root, "P", "F", None, {"description": "d"})


def _empty_prompt(root: Path) -> None:
    make_function(root, "P", "F", "   \n", {"description": "d"})


def _not_utf8(root: Path) -> None:
    folder = make_function(root, "P", "F", None, {"description": "d"})
    (folder / "skprompt.txt").write_bytes(b"caf\xe9 {{$input}}")


def _malformed_json(root: Path) -> None:
    make_function(root, "P", "F", "x", '{\n  "description": "d",\n  "input_variables": [\n}\n')


def _config_not_object(root: Path) -> None:
    make_function(root, "P", "F", "x", "[1, 2]")


def _unknown_template_format(root: Path) -> None:
    make_function(root, "P", "F", "x", {"description": "d", "template_format": "mustache"})


def _setting_wrong_type(root: Path) -> None:
    make_function(root, "P", "F", "x", {"description": "d", "execution_settings": {"default": {"temperature": "hot"}}})


def _setting_out_of_range(root: Path) -> None:
    make_function(root, "P", "F", "x", {"description": "d", "execution_settings": {"default": {"top_p": 3}}})


def _old_schema_bad_type(root: Path) -> None:
    make_function(root, "P", "F", "x", {"schema": 1, "type": "embeddings", "description": "d"})


def _old_schema_wrong_setting_type(root: Path) -> None:
    make_function(
        root,
        "P",
        "F",
        "x",
        {"schema": 1, "type": "completion", "description": "d", "completion": {"max_tokens": "lots"}},
    )


def _non_string_default(root: Path) -> None:
    make_function(root, "P", "F", "{{$n}}", {"description": "d", "input_variables": [{"name": "n", "default": 3}]})


def _invalid_variable_name(root: Path) -> None:
    make_function(root, "P", "F", "x", {"description": "d", "input_variables": [{"name": "my var"}]})


def _duplicate_variable(root: Path) -> None:
    make_function(root, "P", "F", "{{$a}}", {"description": "d", "input_variables": [{"name": "a"}, {"name": "a"}]})


def _duplicate_function(root: Path) -> None:
    make_function(root, "P", "F", "x", {"description": "d"})
    (root / "P" / "f.yaml").write_text("name: F\ntemplate: y\ndescription: d\n", encoding="utf-8")


def _undeclared_variable(root: Path) -> None:
    make_function(
        root, "P", "F", "{{$input}} and {{$contxt}}", {"description": "d", "input_variables": [{"name": "input"}]}
    )


def _bad_yaml(root: Path) -> None:
    (root / "P").mkdir()
    (root / "P" / "f.yaml").write_text("name: F\ntemplate: [unclosed\n  description: d\n", encoding="utf-8")


def _yaml_without_template(root: Path) -> None:
    (root / "P").mkdir()
    (root / "P" / "f.yaml").write_text("name: F\ndescription: d\n", encoding="utf-8")


def _template_syntax_error(root: Path) -> None:
    make_function(
        root, "P", "F", "{{$input}}\nthen {{ $in-put }}", {"description": "d", "input_variables": [{"name": "input"}]}
    )


def _jinja_syntax_error(root: Path) -> None:
    make_function(root, "P", "F", "line one\n{% if x %}never closed", {"description": "d", "template_format": "jinja2"})


def _empty_plugin(root: Path) -> None:
    (root / "P").mkdir()


def _untrusted_python(root: Path) -> None:
    (root / "P").mkdir()
    (root / "P" / "tool.py").write_text("raise SystemExit('must never run')\n", encoding="utf-8")


def _no_description(root: Path) -> None:
    make_function(root, "P", "F", "x", {"input_variables": []})


def _unknown_setting(root: Path) -> None:
    make_function(root, "P", "F", "x", {"description": "d", "execution_settings": {"default": {"temprature": 0.2}}})


BROKEN = [
    (_bad_plugin_name, "invalid plugin name 'Bad-Plugin'", "error"),
    (_bad_function_name, "invalid function name 'my function'", "error"),
    (_missing_prompt, "no skprompt.txt", "error"),
    (_empty_prompt, "the prompt is empty", "error"),
    (_not_utf8, "not UTF-8", "error"),
    (_malformed_json, "config.json:4:1: invalid JSON", "error"),
    (_config_not_object, "must be a JSON object", "error"),
    (_unknown_template_format, "unknown template_format 'mustache'", "error"),
    (_setting_wrong_type, "temperature: expected a number", "error"),
    (_setting_out_of_range, "top_p: 3 is out of range", "error"),
    (_old_schema_bad_type, "\"type\": 'embeddings' is not supported", "error"),
    (_old_schema_wrong_setting_type, "completion: max_tokens: expected a whole number", "error"),
    (_non_string_default, "default must be a string", "error"),
    (_invalid_variable_name, "invalid variable name 'my var'", "error"),
    (_duplicate_variable, "variable 'a' is declared twice", "error"),
    (_duplicate_function, "duplicate function P.F", "error"),
    (_undeclared_variable, "template variable 'contxt' is not declared", "warning"),
    (_bad_yaml, "invalid YAML", "error"),
    (_yaml_without_template, "missing template", "error"),
    (_template_syntax_error, "skprompt.txt:2: template syntax error", "error"),
    (_jinja_syntax_error, "skprompt.txt:2: template syntax error", "error"),
    (_empty_plugin, "no functions found", "error"),
    (_untrusted_python, "untrusted directory", "error"),
    (_no_description, "no description", "warning"),
    (_unknown_setting, "unknown setting 'temprature'", "warning"),
]


@pytest.mark.parametrize(("build", "expected", "severity"), BROKEN, ids=[b[0].__name__.strip("_") for b in BROKEN])
def test_broken_folder_is_explained(tmp_path: Path, build, expected: str, severity: str) -> None:
    build(tmp_path)
    report = load(tmp_path)
    matching = [p for p in report.problems if expected in str(p)]
    assert matching, f"expected a problem containing {expected!r}, got: {[str(p) for p in report.problems]}"
    problem = matching[0]
    assert problem.severity == severity
    # Every line says where, what, and what to do: "path: what is wrong: what to do".
    assert str(problem).startswith(str(tmp_path)) and problem.hint


def test_json_error_names_line_and_column(tmp_path: Path) -> None:
    _malformed_json(tmp_path)
    problem = load(tmp_path).errors[0]
    assert (problem.line, problem.column) == (4, 1)
