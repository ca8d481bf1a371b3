"""Strict, explained loading of plugin directories.

A plugin directory holds plugin folders; each plugin folder holds function folders
(``<Function>/skprompt.txt`` + ``config.json``), YAML prompt files (``*.yaml``), Prompty files
(``*.prompty``, :mod:`.prompty`), Agent Skills (``<skill>/SKILL.md``, :mod:`.skills`; a skill folder may
also be a plugin folder of its own) and, in trusted directories only, Python files with
``@kernel_function`` classes.

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
from typing import TYPE_CHECKING, Any, cast

from kernel_app.base.errors import Problem
from kernel_app.kernel.filters import TEMPLATE_CALLS, TEMPLATE_FIELDS, TEMPLATE_ITERATED, TEMPLATE_VARIABLES
from kernel_app.kernel.plugin_folders.function_lookup import closest_functions, find_function
from kernel_app.kernel.plugin_folders.prompt_config import NAME_PATTERN, normalise
from kernel_app.kernel.plugin_folders.prompty import SUFFIX as PROMPTY_SUFFIX
from kernel_app.kernel.plugin_folders.prompty import read_prompty
from kernel_app.kernel.plugin_folders.skills import SKILL_FILE, is_skill_folder, read_skill, skill_function_name
from kernel_app.kernel.plugin_folders.specs import FunctionSpec, prompt_spec
from kernel_app.kernel.plugin_folders.template_lint import (
    TemplateCall,
    TemplateInfo,
    TemplateSyntaxProblem,
    analyse,
    undeclared_problems,
)

if TYPE_CHECKING:
    from semantic_kernel.functions import KernelFunction

PROMPT_FILE = "skprompt.txt"
CONFIG_FILE = "config.json"
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class PluginDirectory:
    path: Path
    trusted: bool = False
    builtin: bool = False  # ours: a user's plugin of the same name replaces it


@dataclass
class _Calls:
    """The functions one loaded prompt function's template calls, checked once everything is loaded."""

    plugin: str
    function: str
    path: str
    line_offset: int
    calls: list[TemplateCall]


@dataclass
class LoadReport:
    """What loading found: the functions that loaded, per plugin, and every problem."""

    plugins: dict[str, list[KernelFunction]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # "Plugin.Function" -> the error that kept it from loading, so `run` can say why.
    failed: dict[str, Problem] = field(default_factory=dict)
    origins: dict[str, Path] = field(default_factory=dict)
    builtin: set[str] = field(default_factory=set)  # plugins that are ours
    overridden: dict[str, Path] = field(default_factory=dict)  # plugin -> the built-in folder it replaced
    # True: `plugins` holds FunctionSpecs (what list and lint read), made without semantic-kernel.
    specs_only: bool = False
    _calls: list[_Calls] = field(default_factory=list)

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


def load_plugin_directories(
    directories: Iterable[PluginDirectory],
    *,
    other_functions: dict[str, list[str]] | None = None,
    specs_only: bool = False,
    strict_calls: bool = False,
) -> LoadReport:
    """Load every plugin folder of every directory, then check the functions templates call.

    A user's directory loads before the built-ins, so a folder the user points at explicitly wins over
    a built-in plugin of the same name (lint says which); between two user directories the first wins.
    ``other_functions`` are the functions the kernel will have besides plugin folders (memory, core).
    ``specs_only``: the same checks and problems, but :class:`FunctionSpec`s instead of semantic-kernel
    functions, so nothing imports semantic-kernel (``plugins list`` and ``lint``) unless a trusted
    user directory holds Python, which only semantic-kernel can load. ``strict_calls``: a template call to
    a function no plugin has is an error and its function does not load (``plugins lint --strict``);
    otherwise it is a warning, as in Semantic Kernel, where the author adds that plugin from code.
    """
    directories = list(directories)
    report = LoadReport(specs_only=specs_only)
    for directory in [d for d in directories if not d.builtin] + [d for d in directories if d.builtin]:
        _load_directory(directory, report)
    _check_calls(report, other_functions or {}, strict=strict_calls)
    return report


def _check_calls(report: LoadReport, other_functions: dict[str, list[str]], *, strict: bool) -> None:
    """Every ``{{Plugin.function}}`` a template calls should exist, or the prompt fails when run.

    Semantic Kernel loads such a prompt and fails only when it runs without the plugin: authors register
    plugins from their own code (``{{UserProfilePlugin.GetUserAge $userId}}`` in Azure's samples). So the
    function loads and lint warns; running it without the plugin is refused by ``require_called_functions``.
    """
    catalogue = {name: [f.name for f in functions] for name, functions in report.plugins.items()}
    for plugin, names in other_functions.items():
        catalogue.setdefault(plugin, []).extend(names)
    for entry in report._calls:
        for call in entry.calls:
            if find_function(catalogue, call.plugin, call.function, joined=call.joined) is not None:
                continue
            problem = Problem(
                entry.path,
                f"calls {call.name}, which no loaded plugin has (running it fails until one does)",
                _missing_call_hint(report, catalogue, call),
                "error" if strict else "warning",
                line=call.line + entry.line_offset,
            )
            if strict:
                functions = report.plugins.get(entry.plugin, [])
                report.plugins[entry.plugin] = [f for f in functions if f.name != entry.function]
                report.fail(entry.plugin, entry.function, problem)
            else:
                report.problems.append(problem)


def _missing_call_hint(report: LoadReport, catalogue: dict[str, list[str]], call: TemplateCall) -> str:
    plugin = (call.plugin or "").lower()
    if plugin in ("fileioplugin", "fileioskill"):
        return (
            "semantic-kernel's FileIOPlugin reads and writes files, so it is not provided: add a plugin folder"
            " with the file functions you need, from a directory you --trust"
        )
    if plugin in ("http", "httpplugin", "httpskill"):
        return (
            "semantic-kernel's http plugin reaches the network, so it is off: set http_plugin = true"
            " in the config file (or KERNEL_APP_HTTP_PLUGIN=1) to turn it on"
        )
    close = closest_functions(catalogue, call.name)
    fix = f"fix the name (did you mean {', '.join(close)}?)" if close else "fix the name (see kernel-app plugins list)"
    if call.plugin and any(key.lower().startswith(call.plugin.lower() + ".") for key in report.failed):
        return f"plugin {call.plugin} is here but did not load (see its finding): fix that, or {fix}"
    return f"add a plugin folder with {call.name}, --trust the folder that holds its Python, or {fix}"


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
        _load_plugin_folder(root, directory, report)
        return
    for entry in sorted(root.iterdir()):
        if _ignored(entry):
            continue
        if entry.is_dir():
            _load_plugin_folder(entry, directory, report)
        elif entry.suffix in (*YAML_SUFFIXES, PROMPTY_SUFFIX) or entry.name in (PROMPT_FILE, CONFIG_FILE):
            report.problems.append(
                Problem(
                    str(entry),
                    "prompt file outside a plugin folder",
                    f"move it into a plugin folder: {root}/<Plugin>/{entry.name}",
                )
            )


def _ignored(entry: Path) -> bool:
    # "_helpers.py" beside a plugin's Python file is that plugin's own module (imported by it, not a plugin);
    # "NAME.evals.yaml" is the eval file of function NAME (kernel-app eval), not a YAML prompt.
    return entry.name.startswith((".", "_")) or entry.suffix in (".md", ".pyc") or entry.name.endswith(".evals.yaml")


def _looks_like_plugin_folder(folder: Path) -> bool:
    # A folder of skill folders is a directory of plugins (each skill its own plugin), as for any folder.
    return is_skill_folder(folder) or any(
        (child.is_dir() and (child / PROMPT_FILE).exists()) or child.suffix in (*YAML_SUFFIXES, PROMPTY_SUFFIX)
        for child in folder.iterdir()
    )


def _load_plugin_folder(folder: Path, directory: PluginDirectory, report: LoadReport) -> None:
    plugin, trusted = folder.name, directory.trusted
    skill = is_skill_folder(folder)
    if skill:  # a skill dropped in as it is: its folder name is a skill name (unit-converter), made an identifier
        plugin = skill_function_name(folder)
    if not NAME_PATTERN.match(plugin):
        report.problems.append(
            Problem(
                str(folder),
                f"invalid plugin name {plugin!r}",
                "rename the folder using letters, digits and underscores only",
            )
        )
        return
    if directory.builtin and plugin in report.origins:
        report.overridden[plugin] = folder
        report.problems.append(
            Problem(
                str(report.origins[plugin]),
                f"plugin {plugin} replaces the built-in {plugin} ({folder})",
                f"rename the folder to keep the built-in {plugin} too",
                "warning",
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
    if directory.builtin:
        report.builtin.add(plugin)
    before = len(report.plugins.get(plugin, [])) + sum(1 for k in report.failed if k.startswith(plugin + "."))
    if skill:
        _load_skill(plugin, folder, trusted, report)
        return
    has_prompty = any(child.suffix == PROMPTY_SUFFIX for child in folder.iterdir())
    for entry in sorted(folder.iterdir()):
        if _ignored(entry):
            continue
        if entry.is_dir() and is_skill_folder(entry):
            _load_skill(plugin, entry, trusted, report)
        elif entry.is_dir():
            _load_function_folder(plugin, entry, report)
        elif entry.suffix == PROMPTY_SUFFIX:
            _load_prompty(plugin, entry, report)
        elif has_prompty and entry.suffix == ".json":
            continue  # a .prompty file's ${file:...} sample, inputs or tools
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
                    "plugin folders hold function folders, skill folders, *.yaml, *.prompty and *.py",
                    "warning",
                )
            )
    after = len(report.plugins.get(plugin, [])) + sum(1 for k in report.failed if k.startswith(plugin + "."))
    if after == before and not any(p.path.startswith(str(folder)) and p.severity == "error" for p in report.problems):
        report.problems.append(
            Problem(
                str(folder),
                "no functions found",
                "add <Function>/skprompt.txt with config.json, a *.yaml or *.prompty prompt file, or <skill>/SKILL.md",
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
    _build_prompt_function(plugin, name, body, template, str(path), path, report, _template_line_offset(text))


def _reported(plugin: str, name: str, problems: list[Problem], ok: bool, report: LoadReport) -> bool:
    """A parsed file's warnings kept in ``report`` and its errors failing the function; whether it loads."""
    report.problems.extend(p for p in problems if p.severity == "warning")
    if not ok:
        for problem in (p for p in problems if p.severity == "error"):
            report.fail(plugin, name, problem)
    return ok


def _load_prompty(plugin: str, path: Path, report: LoadReport) -> None:
    """A Prompty file: its front matter checked with file lines, then built as any prompt (see prompty.py)."""
    from kernel_app.kernel.plugin_folders.prompty import function_name

    text = _read_text(path, plugin, function_name(path), report)
    if text is None:
        return
    prompty = read_prompty(path, text)
    if not _reported(plugin, prompty.function, prompty.problems, prompty.ok, report):
        return
    _build_prompt_function(
        plugin, prompty.function, prompty.config, prompty.template, str(path), path, report, prompty.line_offset
    )


def _load_skill(plugin: str, folder: Path, trusted: bool, report: LoadReport) -> None:
    """An Agent Skill: a prompt function of its instructions, and its folder read-only (see skills.py)."""
    from kernel_app.kernel.plugin_folders.skills import native_functions, native_specs, prompt_config

    path = folder / SKILL_FILE
    name = skill_function_name(folder)
    text = _read_text(path, plugin, name, report)
    if text is None:
        return
    skill = read_skill(folder, text)
    if not _reported(plugin, name, skill.problems, skill.ok, report):
        return
    if skill.scripts and not trusted:
        report.problems.append(
            Problem(
                str(folder / skill.scripts[0]),
                f"the skill's scripts ({', '.join(skill.scripts)}) do not run: the directory is untrusted",
                "if you trust this code, mark the directory trusted (--trust DIR, or trusted_dirs in the config file)",
                "warning",
            )
        )
    config, template = prompt_config(plugin, skill, trusted)
    before = len(report.plugins.get(plugin, []))
    _build_prompt_function(plugin, name, config, template, str(path), path, report)
    if len(report.plugins.get(plugin, [])) == before:
        return
    natives = native_specs(plugin, skill, trusted) if report.specs_only else native_functions(plugin, skill, trusted)
    for function in natives:
        report.add_function(plugin, cast("KernelFunction", function), path)


def _template_line_offset(text: str) -> int:
    """How many lines of the YAML file come before the template's first line (findings name file lines)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return 0
    for key, value in getattr(node, "value", []):
        if getattr(key, "value", None) == "template":
            block = getattr(value, "style", None) in ("|", ">")
            return value.start_mark.line + (1 if block else 0)
    return 0


def _build_prompt_function(
    plugin: str,
    name: str,
    raw: Any,
    template: str,
    config_where: str,
    origin: Path,
    report: LoadReport,
    line_offset: int = 0,
) -> None:
    config = normalise(raw, config_where)
    report.problems.extend(p for p in config.problems if p.severity == "warning")
    errors = [p for p in config.problems if p.severity == "error"]
    if errors:
        for problem in errors:
            report.fail(plugin, name, problem)
        return
    data = dict(config.data, name=name, template=template)
    template_path = str(origin / PROMPT_FILE) if origin.is_dir() else str(origin)
    try:
        info = analyse(template, data.get("template_format", "semantic-kernel"))
    except TemplateSyntaxProblem as exc:
        line = exc.line + line_offset if exc.line else None
        report.fail(plugin, name, Problem(template_path, f"template syntax error: {exc.message}", exc.hint, line=line))
        return
    report.problems.extend(undeclared_problems(info, data["input_variables"], template_path, line_offset))
    try:
        if report.specs_only:
            function = prompt_spec(plugin, name, data, list(info.variables))
        else:
            function = _prompt_function(plugin, name, data, info)
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
    # With specs_only the report holds FunctionSpecs, which stand in for KernelFunctions (the same attributes).
    report.add_function(plugin, cast("KernelFunction", function), origin)
    if info.calls:
        report._calls.append(_Calls(plugin, name, template_path, line_offset, info.calls))


def _prompt_function(plugin: str, name: str, data: dict[str, Any], info: TemplateInfo) -> KernelFunction:
    from semantic_kernel.functions import KernelFunctionFromPrompt
    from semantic_kernel.prompt_template import PromptTemplateConfig

    from kernel_app.kernel.template_engines import TEMPLATE_CLASSES

    config = PromptTemplateConfig.model_validate(data)
    # Handlebars and jinja2 templates call functions as the semantic-kernel syntax does (template_engines).
    template_class = TEMPLATE_CLASSES.get(config.template_format)
    function = KernelFunctionFromPrompt(
        function_name=name,
        plugin_name=plugin,
        description=config.description,
        prompt_template=template_class(prompt_template_config=config) if template_class else None,
        prompt_template_config=config,
        template_format=config.template_format,
    )
    # What the template reads, for the filters that resolve names and check structured values.
    function.metadata.additional_properties = {
        **(function.metadata.additional_properties or {}),
        TEMPLATE_VARIABLES: list(info.variables),
        TEMPLATE_FIELDS: {k: sorted(v) for k, v in info.fields.items()},
        TEMPLATE_ITERATED: sorted(info.iterated),
        TEMPLATE_CALLS: [(c.plugin, c.function, c.joined) for c in info.calls],
    }
    return function


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
    if report.specs_only:
        from kernel_app.base.paths import builtin_plugins_dir
        from kernel_app.kernel.plugin_folders.native_catalogue import builtin_natives

        recorded = builtin_natives(path, builtin_plugins_dir())
        if recorded is not None:
            for spec in recorded:
                report.add_function(plugin, spec, path)  # type: ignore[arg-type]
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
        spec = FunctionSpec.from_metadata(function.metadata) if report.specs_only else function
        report.add_function(plugin, spec, path)  # type: ignore[arg-type]


def _read_text(path: Path, plugin: str, name: str, report: LoadReport) -> str | None:
    try:
        return path.read_text(encoding="utf-8-sig")  # editors on Windows write a byte-order mark
    except UnicodeDecodeError as exc:
        report.fail(plugin, name, Problem(str(path), f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8"))
    except OSError as exc:
        report.fail(plugin, name, Problem(str(path), f"cannot read: {exc.strerror}", "check the file's permissions"))
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
