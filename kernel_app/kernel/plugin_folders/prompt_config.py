"""Normalise both Semantic Kernel prompt-config schemas into the current one, checking as we go.

semantic-kernel 1.45 validates ``config.json`` as a ``PromptTemplateConfig`` and silently ignores keys it
does not know — including the whole of the old schema (``"completion"``, ``"input": {"parameters": [...]}``),
so an old plugin loses its settings and parameters without a word. We map the old keys onto the new ones
*before* semantic-kernel sees the config, and report every problem as a :class:`~kernel_app.base.errors.Problem`
instead of one bare ``ValueError``.

Which schema a file uses is decided by the keys that carry meaning, never by ``"schema": 1``: semantic-
kernel's own current-schema samples all carry ``"schema": 1`` next to ``execution_settings``. A file that
mixes old keys with current ones is read as current, the old sections are used only where the current
schema says nothing, and a warning names both.

When a variable is required (one rule for both schemas, lint and ``plugins list``): unless the author
says ``"is_required": false``, a variable without a non-empty default must be given. semantic-kernel's
``is_required`` defaults to true, and the old schema's empty ``defaultValue`` meant the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kernel_app.base.errors import Problem
from kernel_app.kernel.plugin_folders.response_format import TEXT, ResponseFormatError, normalise_response_format

NAME_PATTERN = re.compile(r"^[0-9A-Za-z_]+$")
TEMPLATE_FORMATS = ("semantic-kernel", "handlebars", "jinja2")

# Keys of the current schema (PromptTemplateConfig) and of the old one (schema 1).
NEW_KEYS = {
    "name",
    "description",
    "template",
    "template_format",
    "input_variables",
    "execution_settings",
    "allow_dangerously_set_content",
    "output_variable",
}
OLD_KEYS = {"schema", "type", "description", "completion", "input", "default_services", "default_backends"}
# Keys that say which schema a file is written in ("schema", "type", "description" appear in both).
CURRENT_MARKERS = {"execution_settings", "input_variables", "template_format"}
OLD_MARKERS = {"completion", "input", "default_services", "default_backends"}
# For a mixed file: the old section -> the current key that carries the same meaning.
OLD_TO_CURRENT = {"completion": "execution_settings", "input": "input_variables"}

VARIABLE_KEYS = {"name", "description", "default", "is_required", "json_schema", "allow_dangerously_set_content"}
# Spellings seen in real plugin folders (.NET, the old schema, typos) -> the key semantic-kernel reads.
VARIABLE_KEY_SPELLINGS = {
    "required": "is_required",
    "isrequired": "is_required",
    "defaultvalue": "default",
    "default_value": "default",
    "jsonschema": "json_schema",
    "type": "json_schema",
    "allowdangerouslysetcontent": "allow_dangerously_set_content",
}

# The old schema's parameter key -> the key semantic-kernel's execution settings understand.
SETTING_RENAMES = {"stop_sequences": "stop", "max_completion_tokens": "max_tokens"}


def _number(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number between {low} and {high}, got {value!r}"
        if not low <= value <= high:
            return f"{value} is out of range: use a number between {low} and {high}"
        return None

    return check


def _positive_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"expected a whole number of at least 1, got {value!r}"
    return None


def _int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected a whole number, got {value!r}"
    return None


def _stop(value: Any) -> str | None:
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return None
    return f"expected a string or a list of strings, got {value!r}"


def _anything(_: Any) -> str | None:
    return None


SETTING_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "max_tokens": _positive_int,
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "stop": _stop,
    "seed": _int,
    "number_of_responses": _positive_int,
    "n": _positive_int,
    "service_id": lambda v: None if isinstance(v, str) else f"expected a string, got {v!r}",
    "model_id": lambda v: None if isinstance(v, str) else f"expected a string, got {v!r}",
    "ai_model_id": lambda v: None if isinstance(v, str) else f"expected a string, got {v!r}",
    "response_format": _anything,  # checked and normalised by response_format.py
    "function_choice_behavior": _anything,
    "logit_bias": _anything,
    "user": _anything,
    "chat_system_prompt": _anything,
}


@dataclass
class NormalisedConfig:
    """The config in the current schema (a dict ready for ``PromptTemplateConfig``), plus findings."""

    data: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    schema: str = "current"

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def normalise(raw: Any, path: str) -> NormalisedConfig:
    """Check ``raw`` (parsed config.json or YAML) and return it in the current schema."""
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        return NormalisedConfig(
            {}, [Problem(path, f"the config must be a JSON object, found a {kind}", 'wrap it in {"description": ...}')]
        )
    keys = set(raw)
    if keys & OLD_MARKERS and not keys & CURRENT_MARKERS:
        return _normalise_old(raw, path)
    if keys & OLD_MARKERS:
        return _normalise_mixed(raw, path)
    return _normalise_new(raw, path)


def _normalise_mixed(raw: dict[str, Any], path: str) -> NormalisedConfig:
    """Current keys win; an old section is used only where its current counterpart is missing."""
    current = {k: v for k, v in raw.items() if k not in OLD_MARKERS}
    config = _normalise_new(current, path)
    old_markers = sorted(set(raw) & OLD_MARKERS)
    present = sorted(set(raw) & CURRENT_MARKERS)
    old = _normalise_old({k: raw[k] for k in (*old_markers, "description") if k in raw}, path)
    for key in old_markers:
        counterpart = OLD_TO_CURRENT.get(key)
        if counterpart is not None and counterpart not in raw and old.data.get(counterpart):
            config.data[counterpart] = old.data[counterpart]
            config.problems.extend(p for p in old.problems if p.severity == "error")
            outcome = f"its {key!r} was used as {counterpart}"
        else:
            outcome = f"{key!r} was ignored" + (f" ({counterpart!r} is used)" if counterpart else "")
        config.problems.append(
            Problem(
                path,
                f"mixes the old schema's {key!r} with the current schema's {', '.join(map(repr, present))}: {outcome}",
                f"move it into {counterpart or 'the current schema'} (see plugins/README.md)",
                "warning",
            )
        )
    config.schema = "current (with old-schema keys)"
    return config


def _normalise_old(raw: dict[str, Any], path: str) -> NormalisedConfig:
    problems: list[Problem] = []
    for key in sorted(set(raw) - OLD_KEYS - NEW_KEYS):
        problems.append(_unknown_key(path, key, OLD_KEYS))
    kind = raw.get("type", "completion")
    if kind != "completion":
        problems.append(
            Problem(
                path,
                f'"type": {kind!r} is not supported',
                'only "completion" prompt functions load; use "type": "completion"',
            )
        )
    if raw.get("schema", 1) != 1:
        problems.append(
            Problem(
                path,
                f'"schema": {raw.get("schema")!r} is unknown',
                'use "schema": 1 or the current schema (input_variables)',
            )
        )
    data: dict[str, Any] = {"description": _description(raw, path, problems)}
    completion = raw.get("completion", {})
    settings = _check_settings(completion, f"{path}: completion", path, problems)
    if settings:
        data["execution_settings"] = {"default": settings}
    data["input_variables"] = _old_parameters(raw.get("input", {}), path, problems)
    return NormalisedConfig(data, problems, schema="old (schema 1)")


def _old_parameters(section: Any, path: str, problems: list[Problem]) -> list[dict[str, Any]]:
    if not isinstance(section, dict) or not isinstance(section.get("parameters", []), list):
        problems.append(
            Problem(
                path,
                '"input" must be {"parameters": [...]}',
                "list each parameter as {name, description, defaultValue}",
            )
        )
        return []
    variables = []
    for index, param in enumerate(section.get("parameters", [])):
        where = f"input.parameters[{index}]"
        if not isinstance(param, dict):
            problems.append(Problem(path, f"{where} must be an object", 'write {"name": ..., "description": ...}'))
            continue
        default = param.get("defaultValue", param.get("default", ""))
        variable = {
            "name": param.get("name"),
            "description": param.get("description", ""),
            "default": default,
            # In schema 1 every parameter had a defaultValue; an empty one means "must be given".
            "is_required": param.get("is_required", default in ("", None)),
        }
        if _check_variable(variable, where, path, problems):
            variables.append(variable)
    _check_duplicate_variables(variables, path, problems)
    return variables


def _normalise_new(raw: dict[str, Any], path: str) -> NormalisedConfig:
    problems: list[Problem] = []
    for key in sorted(set(raw) - NEW_KEYS - {"schema", "type"}):
        problems.append(_unknown_key(path, key, NEW_KEYS))
    if raw.get("type", "completion") != "completion":
        problems.append(
            Problem(path, f'"type": {raw["type"]!r} is not supported', 'only "completion" prompt functions load')
        )
    data: dict[str, Any] = {"description": _description(raw, path, problems)}
    for key in ("name", "template"):
        if key in raw:
            data[key] = raw[key]
    template_format = raw.get("template_format", "semantic-kernel")
    if template_format not in TEMPLATE_FORMATS:
        problems.append(
            Problem(path, f"unknown template_format {template_format!r}", f"use one of {', '.join(TEMPLATE_FORMATS)}")
        )
    else:
        data["template_format"] = template_format
    if "allow_dangerously_set_content" in raw:
        data["allow_dangerously_set_content"] = bool(raw["allow_dangerously_set_content"])

    raw_settings = raw.get("execution_settings", {})
    if not isinstance(raw_settings, dict):
        problems.append(
            Problem(
                path,
                "execution_settings must be an object of service id -> settings",
                'write {"default": {"max_tokens": 500}}',
            )
        )
    else:
        settings: dict[str, Any] = {}
        for service_id, values in raw_settings.items():
            checked = _check_settings(values, f"{path}: execution_settings.{service_id}", path, problems)
            if checked is not None:
                settings[service_id] = checked
        if settings:
            data["execution_settings"] = settings
            _check_service_ids(settings, path, problems)

    raw_vars = raw.get("input_variables", [])
    variables: list[dict[str, Any]] = []
    if not isinstance(raw_vars, list):
        problems.append(
            Problem(path, "input_variables must be a list", 'write [{"name": "input", "description": ...}]')
        )
    else:
        for index, item in enumerate(raw_vars):
            where = f"input_variables[{index}]"
            if not isinstance(item, dict):
                problems.append(Problem(path, f"{where} must be an object", 'write {"name": ..., "description": ...}'))
                continue
            variable = _known_variable_keys(item, where, path, problems)
            # A non-empty default makes the variable optional unless the author says otherwise
            # (semantic-kernel's is_required defaults to True); an empty default is no default.
            if variable.get("default") not in (None, "") and "is_required" not in variable:
                variable["is_required"] = False
            if _check_variable(variable, where, path, problems):
                variables.append(variable)
        _check_duplicate_variables(variables, path, problems)
    data["input_variables"] = variables
    return NormalisedConfig(data, problems)


# The service ids Kernel App registers (kernel_app.providers); "default" applies to whichever runs.
SERVICE_IDS = ("default", "local", "openai", "azure")


def _check_service_ids(settings: dict[str, Any], path: str, problems: list[Problem]) -> None:
    """Settings keyed by an id no service here has: say what running will do with them."""
    if any(key in SERVICE_IDS for key in settings):
        return
    ids = ", ".join(repr(k) for k in settings)
    if len(settings) == 1:
        message = f"execution_settings are keyed by {ids}, which no service here is named: used for any service"
        hint = 'rename the key to "default" to say so'
    else:
        message = f'execution_settings are keyed by {ids} and none is "default": running fails as ambiguous'
        hint = f'rename the one to use to "default" (or to the service: {", ".join(SERVICE_IDS[1:])})'
    problems.append(Problem(path, message, hint, "warning"))


def _known_variable_keys(item: dict[str, Any], where: str, path: str, problems: list[Problem]) -> dict[str, Any]:
    """The variable with only the keys semantic-kernel reads; a misspelt key is a warning with the right one."""
    variable: dict[str, Any] = {}
    for key, value in item.items():
        if key in VARIABLE_KEYS:
            variable[key] = value
            continue
        spelling = VARIABLE_KEY_SPELLINGS.get(str(key).lower().replace("-", "_")) or _closest(str(key), VARIABLE_KEYS)
        known = ", ".join(sorted(VARIABLE_KEYS))
        hint = f'did you mean "{spelling}"? rename it' if spelling else f"known keys: {known}"
        problems.append(
            Problem(path, f"{where} ({item.get('name', '?')}): unknown key {key!r} (ignored)", hint, "warning")
        )
    return variable


def _closest(word: str, candidates: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word.lower(), sorted(candidates), n=1, cutoff=0.75)
    return found[0] if found else None


def _description(raw: dict[str, Any], path: str, problems: list[Problem]) -> str:
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(Problem(path, f"description must be a string, got {description!r}", "write one sentence"))
        return ""
    if not description.strip():
        problems.append(
            Problem(
                path, "no description", 'add one sentence to "description": planners choose functions by it', "warning"
            )
        )
    return description


def _check_settings(values: Any, where: str, path: str, problems: list[Problem]) -> dict[str, Any] | None:
    if not isinstance(values, dict):
        problems.append(Problem(where, f"settings must be an object, got {values!r}", 'write {"max_tokens": 500}'))
        return None
    checked: dict[str, Any] = {}
    for key, value in values.items():
        name = SETTING_RENAMES.get(str(key), str(key))  # a YAML key may be a number: then an unknown setting
        check = SETTING_CHECKS.get(name)
        if check is None:
            known = ", ".join(sorted(k for k in SETTING_CHECKS if k not in ("n",)))
            problems.append(Problem(where, f"unknown setting {key!r} (ignored)", f"known settings: {known}", "warning"))
            continue
        error = check(value)
        if error:
            problems.append(Problem(where, f"{key}: {error}", f"fix the value of {key!r}"))
            continue
        if name == "response_format":
            # semantic-kernel 1.45 fails every run on the string forms .NET writes: see response_format.py.
            try:
                value = normalise_response_format(value)
            except ResponseFormatError as exc:
                problems.append(Problem(where, f"{key}: {exc.message}", exc.hint))
                continue
            if value == TEXT:
                continue  # plain text is the default, and semantic-kernel refuses {"type": "text"}
        checked[name] = value
    return checked


def _check_variable(variable: dict[str, Any], where: str, path: str, problems: list[Problem]) -> bool:
    name = variable.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append(
            Problem(path, f"{where}: invalid variable name {name!r}", "use letters, digits and underscores only")
        )
        return False
    default = variable.get("default")
    if default is not None and not isinstance(default, str):
        problems.append(
            Problem(
                path, f"{where} ({name}): default must be a string, got {default!r}", f'write "default": "{default}"'
            )
        )
        return False
    if "is_required" in variable and not isinstance(variable["is_required"], bool):
        problems.append(Problem(path, f"{where} ({name}): is_required must be true or false", "use a JSON boolean"))
        return False
    return True


def _check_duplicate_variables(variables: list[dict[str, Any]], path: str, problems: list[Problem]) -> None:
    seen: set[str] = set()
    for variable in list(variables):
        key = variable["name"].lower()
        if key in seen:
            problems.append(Problem(path, f"variable {variable['name']!r} is declared twice", "remove one declaration"))
            variables.remove(variable)
        seen.add(key)


def _unknown_key(path: str, key: str, known: set[str]) -> Problem:
    return Problem(path, f"unknown key {key!r} (ignored)", f"known keys: {', '.join(sorted(known))}", "warning")
