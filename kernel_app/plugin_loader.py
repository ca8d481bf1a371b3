"""Strict, explained loading of plugin directories.

A plugin directory holds plugin folders; each plugin folder holds function folders
(``<Function>/skprompt.txt`` + ``config.json``), YAML prompt files (``*.yaml``) and, in trusted
directories only, Python files with ``@kernel_function`` classes.

We do not hand folders to ``kernel.add_plugin(parent_directory=...)``: semantic-kernel 1.45 skips a
function folder without ``skprompt.txt`` with only a logged warning, fails the whole plugin on one bad
``config.json`` with a bare ``ValueError``, ignores the old config schema, and imports every ``.py``
file it finds — code from a folder the user never trusted. Instead each file is checked here, every
problem becomes a :class:`Problem` (``path: what is wrong: what to do``), and the good functions load
even when their neighbours do not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel_app.errors import Problem
from kernel_app.prompt_config import NAME_PATTERN, normalise
from kernel_app.template_lint import template_problems

if TYPE_CHECKING:
    from semantic_kernel.functions import KernelFunction

PROMPT_FILE = "skprompt.txt"
CONFIG_FILE = "config.json"
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class PluginDirectory:
    path: Path
    trusted: bool = False


@dataclass
class LoadReport:
    """What loading found: the functions that loaded, per plugin, and every problem."""

    plugins: dict[str, list[KernelFunction]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # "Plugin.Function" -> the error that kept it from loading, so `run` can say why.
    failed: dict[str, Problem] = field(default_factory=dict)
    origins: dict[str, Path] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def add_function(self, plugin: str, function: KernelFunction, path: Path) -> None:
        functions = self.plugins.setdefault(plugin, [])
        if any(f.name.lower() == function.name.lower() for f in functions):
            self.problems.append(
                Problem(
                    str(path),
                    f"duplicate function {plugin}.{function.name}",
                    "each function name may appear once per plugin (folder, YAML name: or Python method): rename one",
                )
            )
            return
        functions.append(function)

    def fail(self, plugin: str, function: str, problem: Problem) -> None:
        self.problems.append(problem)
        self.failed.setdefault(f"{plugin}.{function}", problem)


def load_plugin_directories(directories: Iterable[PluginDirectory]) -> LoadReport:
    """Load every plugin folder of every directory; later directories cannot shadow earlier plugins."""
    report = LoadReport()
    for directory in directories:
        _load_directory(directory, report)
    return report


def _load_directory(directory: PluginDirectory, report: LoadReport) -> None:
    root = directory.path
    if not root.exists():
        report.problems.append(
            Problem(str(root), "plugin directory does not exist", "check --plugins-dir / KERNEL_APP_PLUGINS")
        )
        return
    if not root.is_dir():
        report.problems.append(Problem(str(root), "not a directory", "give the folder that holds plugin folders"))
        return
    if _looks_like_plugin_folder(root):
        # Someone pointed at a plugin folder rather than the directory that holds plugin folders: load it as one.
        _load_plugin_folder(root, directory.trusted, report)
        return
    for entry in sorted(root.iterdir()):
        if _ignored(entry):
            continue
        if entry.is_dir():
            _load_plugin_folder(entry, directory.trusted, report)
        elif entry.suffix in YAML_SUFFIXES or entry.name in (PROMPT_FILE, CONFIG_FILE):
            report.problems.append(
                Problem(
                    str(entry),
                    "prompt file outside a plugin folder",
                    f"move it into a plugin folder: {root}/<Plugin>/{entry.name}",
                )
            )


def _ignored(entry: Path) -> bool:
    return entry.name.startswith((".", "__")) or entry.suffix in (".md", ".pyc") or entry.name == "__init__.py"


def _looks_like_plugin_folder(folder: Path) -> bool:
    return any(
        (child.is_dir() and (child / PROMPT_FILE).exists()) or child.suffix in YAML_SUFFIXES
        for child in folder.iterdir()
    )


def _load_plugin_folder(folder: Path, trusted: bool, report: LoadReport) -> None:
    plugin = folder.name
    if not NAME_PATTERN.match(plugin):
        report.problems.append(
            Problem(
                str(folder),
                f"invalid plugin name {plugin!r}",
                "rename the folder using letters, digits and underscores only",
            )
        )
        return
    if plugin in report.origins:
        report.problems.append(
            Problem(
                str(folder),
                f"plugin {plugin} is already loaded from {report.origins[plugin]}",
                "rename one of the two folders",
            )
        )
        return
    report.origins[plugin] = folder
    before = len(report.plugins.get(plugin, [])) + sum(1 for k in report.failed if k.startswith(plugin + "."))
    for entry in sorted(folder.iterdir()):
        if _ignored(entry):
            continue
        if entry.is_dir():
            _load_function_folder(plugin, entry, report)
        elif entry.suffix in YAML_SUFFIXES:
            _load_yaml(plugin, entry, report)
        elif entry.suffix == ".py":
            _load_python(plugin, entry, trusted, report)
        elif entry.name in (PROMPT_FILE, CONFIG_FILE):
            report.problems.append(
                Problem(
                    str(entry),
                    "prompt file directly in the plugin folder",
                    f"put it in a function folder: {folder}/<Function>/{entry.name}",
                )
            )
        else:
            report.problems.append(
                Problem(
                    str(entry),
                    "unexpected file (ignored)",
                    "plugin folders hold function folders, *.yaml and *.py",
                    "warning",
                )
            )
    after = len(report.plugins.get(plugin, [])) + sum(1 for k in report.failed if k.startswith(plugin + "."))
    if after == before and not any(p.path.startswith(str(folder)) and p.severity == "error" for p in report.problems):
        report.problems.append(
            Problem(
                str(folder),
                "no functions found",
                "add <Function>/skprompt.txt with config.json, or a *.yaml prompt file",
            )
        )


def _load_function_folder(plugin: str, folder: Path, report: LoadReport) -> None:
    name = folder.name
    prompt_path, config_path = folder / PROMPT_FILE, folder / CONFIG_FILE
    if not NAME_PATTERN.match(name):
        report.fail(
            plugin,
            name,
            Problem(
                str(folder),
                f"invalid function name {name!r}",
                "rename the folder using letters, digits and underscores only",
            ),
        )
        return
    if not prompt_path.exists():
        report.fail(
            plugin,
            name,
            Problem(str(folder), f"no {PROMPT_FILE}", f"add {PROMPT_FILE} with the prompt text (or remove the folder)"),
        )
        return
    template = _read_text(prompt_path, plugin, name, report)
    if template is None:
        return
    if not template.strip():
        report.fail(plugin, name, Problem(str(prompt_path), "the prompt is empty", "write the prompt text"))
        return
    raw: Any = {}
    if config_path.exists():
        text = _read_text(config_path, plugin, name, report)
        if text is None:
            return
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            report.fail(
                plugin,
                name,
                Problem(
                    str(config_path),
                    f"invalid JSON: {exc.msg}",
                    "fix the JSON syntax (a missing comma or quote?)",
                    line=exc.lineno,
                    column=exc.colno,
                ),
            )
            return
    else:
        report.problems.append(
            Problem(
                str(folder),
                f"no {CONFIG_FILE}: loaded with default settings",
                f"add {CONFIG_FILE} with a description and input_variables",
                "warning",
            )
        )
    _build_prompt_function(
        plugin, name, raw, template, str(config_path if config_path.exists() else prompt_path), folder, report
    )


def _load_yaml(plugin: str, path: Path, report: LoadReport) -> None:
    import yaml

    text = _read_text(path, plugin, path.stem, report)
    if text is None:
        return
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        report.fail(
            plugin,
            path.stem,
            Problem(
                str(path),
                f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
                "fix the YAML syntax (indentation?)",
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            ),
        )
        return
    if not isinstance(raw, dict):
        report.fail(
            plugin, path.stem, Problem(str(path), "the YAML must be a mapping", "start with `name:` and `template:`")
        )
        return
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        report.fail(
            plugin,
            path.stem,
            Problem(
                str(path), f"missing or invalid name: {name!r}", "add `name: MyFunction` (letters, digits, underscores)"
            ),
        )
        return
    template = raw.get("template")
    if not isinstance(template, str) or not template.strip():
        report.fail(plugin, name, Problem(str(path), "missing template", "add `template: |` with the prompt text"))
        return
    body = {k: v for k, v in raw.items() if k not in ("name", "template")}
    _build_prompt_function(plugin, name, body, template, str(path), path, report)


def _build_prompt_function(
    plugin: str, name: str, raw: Any, template: str, config_where: str, origin: Path, report: LoadReport
) -> None:
    config = normalise(raw, config_where)
    report.problems.extend(p for p in config.problems if p.severity == "warning")
    errors = [p for p in config.problems if p.severity == "error"]
    if errors:
        for problem in errors:
            report.fail(plugin, name, problem)
        return
    data = dict(config.data, name=name, template=template)
    lint = template_problems(
        template,
        data.get("template_format", "semantic-kernel"),
        data["input_variables"],
        str(origin / PROMPT_FILE) if origin.is_dir() else str(origin),
    )
    template_errors = [p for p in lint if p.severity == "error"]
    report.problems.extend(p for p in lint if p.severity == "warning")
    if template_errors:
        for problem in template_errors:
            report.fail(plugin, name, problem)
        return
    try:
        function = _prompt_function(plugin, name, data)
    except Exception as exc:  # semantic-kernel's own validation: keep its words, say where
        report.fail(
            plugin,
            name,
            Problem(
                config_where,
                f"semantic-kernel rejected the function: {_first_line(exc)}",
                "check the config against the schema in plugins/README.md",
            ),
        )
        return
    report.add_function(plugin, function, origin)


def _prompt_function(plugin: str, name: str, data: dict[str, Any]) -> KernelFunction:
    from semantic_kernel.functions import KernelFunctionFromPrompt
    from semantic_kernel.prompt_template import PromptTemplateConfig

    config = PromptTemplateConfig.model_validate(data)
    return KernelFunctionFromPrompt(
        function_name=name,
        plugin_name=plugin,
        description=config.description,
        prompt_template_config=config,
        template_format=config.template_format,
    )


def _load_python(plugin: str, path: Path, trusted: bool, report: LoadReport) -> None:
    if not trusted:
        report.fail(
            plugin,
            path.stem,
            Problem(
                str(path),
                "Python file in an untrusted directory (not executed)",
                "if you trust this code, mark the directory trusted (--trust DIR, or trusted_dirs in the config file)",
            ),
        )
        return
    from semantic_kernel.functions import KernelPlugin

    try:
        native = KernelPlugin.from_python_file(plugin_name=plugin, py_file=str(path))
    except Exception as exc:
        report.fail(
            plugin,
            path.stem,
            Problem(
                str(path),
                f"could not load native functions: {type(exc).__name__}: {_first_line(exc)}",
                "fix the module; it needs one class with @kernel_function methods and a no-argument constructor",
            ),
        )
        return
    for function in native.functions.values():
        report.add_function(plugin, function, path)


def _read_text(path: Path, plugin: str, name: str, report: LoadReport) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        report.fail(plugin, name, Problem(str(path), f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8"))
    except OSError as exc:
        report.fail(plugin, name, Problem(str(path), f"cannot read: {exc.strerror}", "check the file's permissions"))
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
