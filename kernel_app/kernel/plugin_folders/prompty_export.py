"""A prompt function written out as a ``.prompty`` file (``kernel-app plugins export P.F --to prompty``).

The file is what :mod:`.prompty` reads back into the same function: the description, the default
execution settings (Prompty v2's ``model.options``, camelCase where Prompty names them, the rest under
``additionalProperties``), the variables as ``inputs`` and the template with its ``<message>`` tags as
role lines. jinja2 and handlebars templates are kept as they are (``template.format.kind``); a
semantic-kernel template is rewritten in jinja2, which Prompty reads, when it only reads variables
(``{{$name}}`` -> ``{{name}}``); one that calls functions is refused with what to do.
"""

from __future__ import annotations

import html
import re
from typing import Any

from kernel_app.base.errors import UsageError

# semantic-kernel's setting names -> Prompty v2's option names (the rest go under additionalProperties).
OPTION_NAMES = {
    "max_tokens": "maxOutputTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "frequency_penalty": "frequencyPenalty",
    "presence_penalty": "presencePenalty",
    "stop": "stopSequences",
    "seed": "seed",
}
_MESSAGE = re.compile(r'<message\s+role="(?P<role>\w+)"(?P<attrs>[^>]*)>(?P<content>.*?)</message>', re.DOTALL)
_NAME_ATTR = re.compile(r'name="([^"]*)"')
_SK_VARIABLE = re.compile(r"{{\s*\$(?P<name>\w+)\s*}}")
_SK_BLOCK = re.compile(r"{{.*?}}", re.DOTALL)
_TAGS = {
    "jinja2": re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL),
    "handlebars": re.compile(r"{{{.*?}}}|{{.*?}}", re.DOTALL),
}


def prompty_text(function: Any) -> tuple[str, list[str]]:
    """The ``.prompty`` text of a prompt function, and notes on what it could not carry."""
    import yaml

    name = f"{function.plugin_name}.{function.name}"
    template_config = getattr(getattr(function, "prompt_template", None), "prompt_template_config", None)
    if template_config is None:
        raise UsageError(f"{name} is a native (Python) function: only prompt functions export to .prompty")
    notes: list[str] = []
    template_format = template_config.template_format
    template = template_config.template or ""
    if template_format == "semantic-kernel":
        template = _sk_as_jinja2(name, template)
        template_format = "jinja2"
    front: dict[str, Any] = {"name": function.name}
    if template_config.description:
        front["description"] = template_config.description
    options = _options(function.prompt_execution_settings, notes, name)
    if options:
        front["model"] = {"options": options}
    inputs = [_input(variable) for variable in template_config.input_variables]
    if inputs:
        front["inputs"] = inputs
    front["template"] = {"format": {"kind": template_format}, "parser": {"kind": "prompty"}}
    header = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{header}---\n{_role_sections(template, template_format)}", notes


def _sk_as_jinja2(name: str, template: str) -> str:
    """``{{$var}}`` -> ``{{var}}``; any other block (a function call, a literal) cannot be carried over."""
    out: list[str] = []
    position = 0
    for block in _SK_BLOCK.finditer(template):
        variable = _SK_VARIABLE.fullmatch(block.group(0))
        if variable is None:
            raise UsageError(
                f"{name}: its template has {block.group(0)!r}, which only semantic-kernel's syntax reads: "
                "rewrite the template in jinja2 (template_format: jinja2) and export again"
            )
        out.append(_jinja_literal(template[position : block.start()]))
        out.append("{{" + variable.group("name") + "}}")
        position = block.end()
    out.append(_jinja_literal(template[position:]))
    return "".join(out)


def _jinja_literal(text: str) -> str:
    # Text of a semantic-kernel template is literal; in jinja2, "{%" and "{#" would open a tag.
    return text.replace("{%", "{{ '{%' }}").replace("{#", "{{ '{#' }}")


def _options(execution_settings: dict[str, Any], notes: list[str], name: str) -> dict[str, Any]:
    if not execution_settings:
        return {}
    key = "default" if "default" in execution_settings else next(iter(execution_settings))
    dropped = [k for k in execution_settings if k != key]
    if dropped:
        notes.append(f"{name}: only the {key!r} execution settings are exported (not {', '.join(dropped)})")
    settings = execution_settings[key]
    values: dict[str, Any] = dict(settings.extension_data)
    for field in ("temperature", "max_tokens", "top_p", "frequency_penalty", "presence_penalty", "stop", "seed"):
        value = getattr(settings, field, None)
        if value is not None:
            values.setdefault(field, value)
    behavior = settings.function_choice_behavior
    if behavior is not None:
        functions = [f.replace("-", ".", 1) for f in (behavior.filters or {}).get("included_functions", [])]
        values["function_choice_behavior"] = {
            "type": behavior.type_.value,
            **({"functions": functions} if functions else {}),
            "maximum_auto_invoke_attempts": behavior.maximum_auto_invoke_attempts,
        }
    options = {OPTION_NAMES[k]: v for k, v in values.items() if k in OPTION_NAMES}
    extra = {k: v for k, v in values.items() if k not in OPTION_NAMES}
    if extra:
        options["additionalProperties"] = extra
    return options


def _input(variable: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": variable.name}
    if variable.description:
        entry["description"] = variable.description
    if variable.default not in (None, ""):
        entry["default"] = variable.default
    entry["required"] = bool(variable.is_required) and variable.default in (None, "")
    return entry


def _role_sections(template: str, template_format: str) -> str:
    """``<message role="x">text</message>`` -> ``x:`` then the text; a template without tags is the user's."""
    if not _MESSAGE.search(template):
        return f"user:\n{template.strip()}\n"
    sections: list[str] = []
    leading = template[: _MESSAGE.search(template).start()].strip()  # type: ignore[union-attr]
    if leading:  # semantic-kernel sends text before the first message as the system's
        sections.append(f"system:\n{_unescape(leading, template_format)}")
    position = 0
    for match in _MESSAGE.finditer(template):
        between = template[position : match.start()].strip()
        if between and position:  # text between messages: semantic-kernel makes it a user message
            sections.append(f"user:\n{_unescape(between, template_format)}")
        name = _NAME_ATTR.search(match.group("attrs"))
        role = match.group("role") + (f'[name="{name.group(1)}"]' if name else "")
        sections.append(f"{role}:\n{_unescape(match.group('content').strip(), template_format)}")
        position = match.end()
    trailing = template[position:].strip()
    if trailing:
        sections.append(f"user:\n{_unescape(trailing, template_format)}")
    return "\n\n".join(sections) + "\n"


def _unescape(text: str, template_format: str) -> str:
    """The text of a message as its author means it: XML references decoded, template tags untouched."""
    pattern = _TAGS.get(template_format, _TAGS["jinja2"])
    out: list[str] = []
    position = 0
    for match in pattern.finditer(text):
        out.append(html.unescape(text[position : match.start()]))
        out.append(match.group(0))
        position = match.end()
    out.append(html.unescape(text[position:]))
    return "".join(out)
