"""Microsoft Prompty files (``.prompty``) as prompt functions: front matter -> config, body -> chat template.

A ``.prompty`` file is YAML front matter (name, description, model, inputs, outputs, sample, template)
and a template body whose ``system:`` / ``user:`` / ``assistant:`` lines start chat messages. Two spec
generations exist and both are read: v1 (``model.api``, ``model.configuration``, ``model.parameters``,
``inputs``/``outputs`` as mappings, top-level ``sample``) and v2 (``model.id``/``provider``/``apiType``/
``connection``/``options`` in camelCase, ``inputs``/``outputs`` as lists of ``{name, kind}``,
``template.format.kind``).

The result is the same current-schema config a YAML prompt gives (:mod:`prompt_config` checks it again,
and the loader builds the function as for any prompt), so ``.prompty`` is a sibling of the YAML loader:

- ``model.parameters`` / ``model.options`` -> ``execution_settings.default`` (v2 names mapped);
  ``outputs`` -> a ``json_schema`` ``response_format``; the model's identity (``api``/``apiType``,
  ``configuration``, ``id``, ``provider``, ``connection``) is ignored with one warning: Kernel App runs
  the model the user chose.
- ``inputs`` (types, defaults, descriptions; and the keys of ``sample``) -> ``input_variables``.
- The body's role lines become semantic-kernel ``<message role=...>`` tags on the same lines (so findings
  keep the file's line numbers); the text between template tags is XML-escaped, because semantic-kernel
  parses the rendered prompt as XML and falls back to one user message when a ``<`` or ``&`` breaks it.
  Role lines the template itself renders (``{{item.role}}:`` in a history loop) stay text: Prompty splits
  after rendering, we split the file, and say so.
- Templates: ``jinja2`` (the default; ``nunjucks`` is read as jinja2, the same syntax for what prompts use)
  and ``mustache``, rendered by semantic-kernel's handlebars engine (pybars), a superset of mustache's
  variables, sections, inverted sections and comments; mustache-only syntax (partials, set delimiters)
  is refused by lint. No mustache library (chevron, pystache) is needed, and the template runs inside
  semantic-kernel's pipeline: its argument escaping, filters and function calls. A file that names no
  format but opens a mustache section is mustache (langchain-prompty's default), with a warning.
- Each file renders on its own: a jinja2 template that extends, includes or imports another file
  (Prompty 1's ``base:`` inheritance) is refused.

Every finding names the file and, for a front-matter field, the field's line.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel_app.base.errors import Problem
from kernel_app.kernel.plugin_folders.front_matter import FrontMatter, FrontMatterError, split_front_matter
from kernel_app.kernel.plugin_folders.prompt_config import NAME_PATTERN, SETTING_CHECKS

SUFFIX = ".prompty"
ROLES = ("system", "user", "assistant", "developer")
_ROLE_LINE = re.compile(r"^\s*#?\s*(system|user|assistant|developer)\s*(?:\[(?P<attrs>[^\]]*)\])?\s*:\s*$", re.I)
_RENDERED_ROLE_LINE = re.compile(r"^\s*{{\s*[\w.]+\.role\s*}}\s*:\s*$")
_JINJA_TAG = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)
_MUSTACHE_TAG = re.compile(r"{{{.*?}}}|{{.*?}}", re.DOTALL)
_FILE_REF = re.compile(r"^\$\{file:(?P<path>[^}]+)\}$")
# jinja2 tags that read another template by name (Prompty 1's `base:` inheritance uses extends).
_JINJA_OTHER_TEMPLATE = re.compile(r"{%-?\s*(?P<tag>extends|include|import|from)\s+(?P<target>\S+)")
_READS = {"extends": "extends", "include": "includes", "import": "imports", "from": "imports from"}
# A mustache section, inverted section or closing tag: no jinja2 template has one.
_MUSTACHE_SECTION = re.compile(r"{{\s*[#^/]\s*[A-Za-z_][\w.]*\s*}}")

# Keys that describe the prompt and are shown nowhere else: accepted without a word.
DOCUMENTATION_KEYS = {"name", "description", "authors", "metadata", "version", "tags", "id", "kind", "displayName"}
KNOWN_KEYS = DOCUMENTATION_KEYS | {
    "model",
    "inputs",
    "outputs",
    "sample",
    "template",
    "tools",
    "inputSchema",
    "outputSchema",
}
# The model's identity and connection: Kernel App runs the model the user configures instead.
MODEL_IDENTITY_KEYS = ("api", "apiType", "configuration", "id", "provider", "connection")
CHAT_APIS = ("chat", "completion", "responses")
# Prompty v2's camelCase options (and other spellings in the wild) -> the settings semantic-kernel reads.
OPTION_NAMES = {
    "maxOutputTokens": "max_tokens",
    "topP": "top_p",
    "frequencyPenalty": "frequency_penalty",
    "presencePenalty": "presence_penalty",
    "stopSequences": "stop",
    "responseFormat": "response_format",
    # OpenAI's newer name for the same output limit (azure-ai-evaluation's evaluators use it).
    "max_completion_tokens": "max_tokens",
}
# Template formats -> the semantic-kernel engine that renders them.
FORMATS = {"jinja2": "jinja2", "nunjucks": "jinja2", "mustache": "handlebars", "handlebars": "handlebars"}
JSON_TYPES = {
    "string": "string",
    "str": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "object": "object",
    "dict": "object",
}
PYTHON_TYPES = {"string": "str", "str": "str", "integer": "int", "int": "int", "number": "float", "float": "float"}
PYTHON_TYPES |= {"boolean": "bool", "bool": "bool"}
STRUCTURED_KINDS = {"object", "dict", "array", "list"}


@dataclass
class PromptyFile:
    """A ``.prompty`` file read: the config for :func:`prompt_config.normalise`, the chat template, findings."""

    function: str
    config: dict[str, Any]
    template: str
    line_offset: int  # template line 1 is file line line_offset + 1
    problems: list[Problem] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def function_name(path: Path) -> str:
    """``chat.prompty`` -> ``chat``; ``test-sample.prompty`` -> ``test_sample`` (function names are identifiers)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", path.stem)


def read_prompty(path: Path, text: str) -> PromptyFile:
    """Read one ``.prompty`` file; ``problems`` holds every finding (``ok`` is False if it cannot load)."""
    where = str(path)
    reader = _Reader(path, where)
    try:
        front = split_front_matter(text)
    except FrontMatterError as exc:
        reader.error(exc.message, "fix the front matter between the '---' lines", exc.line)
        return PromptyFile(function_name(path), {}, "", 0, reader.problems)
    if not isinstance(front.data, dict):
        reader.error("the front matter must be a YAML mapping", "write `name:`, `description:`, `model:`...", 2)
        return PromptyFile(function_name(path), {}, "", 0, reader.problems)
    reader.front = front
    return reader.read(front)


class _Reader:
    def __init__(self, path: Path, where: str) -> None:
        self.path, self.where = path, where
        self.problems: list[Problem] = []
        self.front = FrontMatter({}, "", 1)

    def error(self, message: str, hint: str, line: int | None = None) -> None:
        self.problems.append(Problem(self.where, message, hint, line=line))

    def warn(self, message: str, hint: str, line: int | None = None) -> None:
        self.problems.append(Problem(self.where, message, hint, "warning", line=line))

    def line(self, *key: str | int) -> int | None:
        return self.front.line_of(*key)

    def read(self, front: FrontMatter) -> PromptyFile:
        raw: dict[str, Any] = front.data
        name = function_name(self.path)
        for key in raw:
            if key not in KNOWN_KEYS:
                known = ", ".join(sorted(KNOWN_KEYS))
                self.warn(f"unknown key {key!r} (ignored)", f"known keys: {known}", self.line(key))
        description = raw.get("description") or raw.get("name") or ""
        if not isinstance(description, str):
            self.error("description must be a string", "write one sentence", self.line("description"))
            description = ""
        config: dict[str, Any] = {"description": " ".join(description.split())}
        template_format = self._template_format(raw.get("template"))
        section = _MUSTACHE_SECTION.search(front.body) if "template" not in raw else None
        if section is not None:
            template_format = self._mustache_by_default(front, section)
        config["template_format"] = template_format
        settings = self._model(raw.get("model"))
        samples = self._samples(raw.get("sample"))
        variables = self._inputs(raw.get("inputs", raw.get("inputSchema")), samples)
        schema = self._outputs(raw.get("outputs", raw.get("outputSchema")))
        if schema is not None:
            if "response_format" in settings:
                self.warn(
                    "response_format is replaced by the JSON schema of outputs",
                    "remove one of the two",
                    self.line("model"),
                )
            settings["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema},
            }
        if raw.get("tools"):
            self.warn(
                "tools are not loaded (ignored)",
                "Kernel App offers its plugins' functions to the model: put the tool in a plugin folder",
                self.line("tools"),
            )
        if settings:
            config["execution_settings"] = {"default": settings}
        config["input_variables"] = variables
        if template_format == "jinja2":
            self._other_templates(front)
        template = self._chat_template(front, template_format)
        return PromptyFile(name, config, template, front.body_line - 1, self.problems, samples)

    # region front matter

    def _template_format(self, value: Any) -> str:
        kind: Any = "jinja2"
        parser: Any = "prompty"
        if isinstance(value, str):
            kind = value
        elif isinstance(value, dict):
            kind = value.get("format", value.get("type", "jinja2"))
            parser = value.get("parser", "prompty")
            kind = kind.get("kind", "jinja2") if isinstance(kind, dict) else kind
            parser = parser.get("kind", "prompty") if isinstance(parser, dict) else parser
        elif value is not None:
            self.error("template must be a format name or a mapping", "write `template: jinja2`", self.line("template"))
        line = self.line("template", "format") or self.line("template")
        if not isinstance(kind, str) or kind.lower() not in FORMATS:
            self.error(
                f"unknown template format {kind!r}",
                f"use one of {', '.join(sorted(FORMATS))}",
                line,
            )
            return "jinja2"
        if kind.lower() == "nunjucks":
            self.warn(
                "nunjucks template rendered as jinja2", "the same syntax for variables, loops and conditions", line
            )
        if parser not in ("prompty", None):
            self.warn(
                f"template parser {parser!r} is read as prompty",
                "role lines (system:, user:...) start messages",
                self.line("template", "parser") or line,
            )
        return FORMATS[kind.lower()]

    def _other_templates(self, front: FrontMatter) -> None:
        """Refuse ``{% extends "base.prompty" %}`` and its kin: each file is rendered on its own.

        Prompty 1 resolves ``base:`` and jinja2's extends/include/import against sibling files; semantic-kernel
        renders one template with no loader, so the run would fail on jinja2's TemplateNotFound.
        """
        found = _JINJA_OTHER_TEMPLATE.search(front.body)
        if found is None:
            return
        target = found.group("target").strip("'\"")
        self.error(
            f"the template {_READS[found.group('tag')]} another file ({target}): each .prompty file renders on its own",
            f"copy what it needs from {target} into this file",
            front.body_line + front.body.count("\n", 0, found.start()),
        )

    def _mustache_by_default(self, front: FrontMatter, section: re.Match[str]) -> str:
        """A file that names no format but opens mustache sections: written for langchain-prompty.

        Prompty's own default is jinja2, where ``{{#name}}`` is a syntax error, so no such file renders as
        jinja2; langchain-prompty's default is mustache, and its files leave the format out.
        """
        self.warn(
            f"no template format given and the body opens a mustache section ({section.group(0)}): read as mustache",
            "add `template: mustache` to say so (Prompty's default is jinja2)",
            front.body_line + front.body.count("\n", 0, section.start()),
        )
        return FORMATS["mustache"]

    def _model(self, model: Any) -> dict[str, Any]:
        if model is None:
            return {}
        if isinstance(model, str):
            self.warn(
                f"model {model!r} is ignored",
                "Kernel App runs the model you choose (--service, --model)",
                self.line("model"),
            )
            return {}
        if not isinstance(model, dict):
            self.error(
                "model must be a mapping or a model name", "write `model: {parameters: ...}`", self.line("model")
            )
            return {}
        api = model.get("apiType", model.get("api", "chat"))
        if api not in CHAT_APIS:
            where = "apiType" if "apiType" in model else "api"
            self.error(
                f"model.{where} {api!r} is not a chat prompt",
                "Kernel App runs chat prompts only: use chat (or remove the file from the plugin folder)",
                self.line("model", where),
            )
        ignored = [f"model.{key}" for key in MODEL_IDENTITY_KEYS if key in model]
        if ignored:
            self.warn(
                f"{', '.join(ignored)} ignored",
                "Kernel App runs the model you choose (--service, --model), with its own connection",
                self.line("model", next(k for k in MODEL_IDENTITY_KEYS if k in model)),
            )
        settings: dict[str, Any] = {}
        for section in ("parameters", "options"):
            values = model.get(section)
            if values is None:
                continue
            if not isinstance(values, dict):
                self.error(
                    f"model.{section} must be a mapping", "write `temperature: 0.2`", self.line("model", section)
                )
                continue
            extra = values.get("additionalProperties")
            items = [(k, v, (section, k)) for k, v in values.items() if k != "additionalProperties"]
            if isinstance(extra, dict):
                items += [(k, v, (section, "additionalProperties", k)) for k, v in extra.items()]
            for key, value, path in items:
                if _is_file_ref(value):  # Prompty reads `${file:schema.json}` anywhere in the front matter
                    value = self._file_reference(value, ("model", *path))
                    if value is None:
                        continue
                self._setting(str(key), value, settings, self.line("model", *path))
        for key in model:
            if key not in (*MODEL_IDENTITY_KEYS, "parameters", "options"):
                self.warn(
                    f"model.{key} is unknown (ignored)",
                    "model holds parameters (v1) or options (v2)",
                    self.line("model", key),
                )
        return settings

    def _setting(self, key: str, value: Any, settings: dict[str, Any], line: int | None) -> None:
        name = OPTION_NAMES.get(key, key)
        if name == "tools":
            self.warn(
                "model.parameters.tools are not loaded (ignored)",
                "Kernel App offers its plugins' functions to the model: put the tool in a plugin folder",
                line,
            )
            return
        check = SETTING_CHECKS.get(name)
        if check is None:
            known = ", ".join(sorted(k for k in SETTING_CHECKS if k != "n"))
            self.warn(f"unknown model setting {key!r} (ignored)", f"known settings: {known}", line)
            return
        error = check(value)
        if error:
            self.error(f"model setting {key}: {error}", f"fix the value of {key!r}", line)
            return
        settings[name] = value

    def _samples(self, sample: Any) -> dict[str, Any]:
        if sample is None:
            return {}
        loaded = self._file_reference(sample, ("sample",))
        if loaded is None and isinstance(sample, str):
            return {}
        value = loaded if loaded is not None else sample
        if not isinstance(value, dict):
            self.warn(
                "sample is not a mapping of input values (ignored)",
                "write `sample: {name: value}`",
                self.line("sample"),
            )
            return {}
        return {str(k): self._file_reference(v, ("sample", str(k))) if _is_file_ref(v) else v for k, v in value.items()}

    def _file_reference(self, value: Any, key: tuple[str, ...]) -> Any:
        """``${file:name.json}`` beside the prompty file -> its JSON; anything else -> None."""
        match = _FILE_REF.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            return None
        relative = match.group("path").strip()
        target = (self.path.parent / relative).resolve()
        line = self.line(*key)
        if Path(relative).is_absolute() or not target.is_relative_to(self.path.parent.resolve()):
            self.error(
                f"${{file:{relative}}} is outside the plugin folder",
                "keep referenced files beside the .prompty file",
                line,
            )
            return None
        try:
            return json.loads(target.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            self.warn(f"${{file:{relative}}} does not exist (ignored)", "add the file or remove the reference", line)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.warn(f"${{file:{relative}}} is not readable JSON: {exc} (ignored)", "fix the file", line)
        return None

    def _inputs(self, inputs: Any, samples: dict[str, Any]) -> list[dict[str, Any]]:
        key: tuple[str, ...] = ("inputs",) if "inputs" in self.front.data else ("inputSchema", "properties")
        if isinstance(inputs, dict) and "properties" in inputs and key[0] == "inputSchema":
            inputs = inputs["properties"]
        loaded = self._file_reference(inputs, key[:1])
        if loaded is not None:
            inputs = loaded
        elif isinstance(inputs, str):
            inputs = None
        entries: list[tuple[str, Any, tuple[str | int, ...]]] = []
        if isinstance(inputs, dict):
            entries = [(str(k), v, (*key, str(k))) for k, v in inputs.items()]
        elif isinstance(inputs, list):
            for index, item in enumerate(inputs):
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    self.error(f"inputs[{index}] needs a name", "write `- name: question`", self.line(*key, index))
                    continue
                entries.append((item["name"], item, (*key, index)))
        elif inputs is not None:
            self.error(
                "inputs must be a mapping or a list", "write `inputs: {question: {type: string}}`", self.line(*key)
            )
        variables: list[dict[str, Any]] = []
        for name, spec, path in entries:
            variable = self._input(name, spec, path)
            if variable is not None:
                variables.append(variable)
                sample = spec.get("sample") if isinstance(spec, dict) else None
                if sample is not None:
                    samples.setdefault(name, sample)
        declared = {v["name"].lower() for v in variables}
        for name in samples:  # Prompty v1 declares inputs by example: the keys of sample
            if name.lower() not in declared and NAME_PATTERN.match(name):
                variables.append({"name": name, "description": "", "is_required": True})
        return variables

    def _input(self, name: str, spec: Any, path: tuple[str | int, ...]) -> dict[str, Any] | None:
        line = self.line(*path)
        if not NAME_PATTERN.match(name):
            self.error(f"invalid input name {name!r}", "use letters, digits and underscores only", line)
            return None
        if not isinstance(spec, dict):
            spec = {"default": spec}
        kind = spec.get("kind", spec.get("type"))
        description = spec.get("description", "")
        variable: dict[str, Any] = {"name": name, "description": description if isinstance(description, str) else ""}
        if isinstance(kind, str) and kind in PYTHON_TYPES:
            # semantic-kernel reads json_schema as a Python type name for the tool schema ("str" ->
            # {"type": "string"}); a JSON schema there becomes {"type": "object"}.
            variable["json_schema"] = PYTHON_TYPES[kind]
        elif kind is not None and kind not in STRUCTURED_KINDS:
            self.warn(
                f"input {name} of kind {kind!r} is given as text",
                "Kernel App passes images, audio and threads as text values",
                self.line(*path, "kind") or self.line(*path, "type") or line,
            )
        default = spec.get("default")
        if default is None or (isinstance(default, list | dict) and not default):
            # An empty list or object default: optional, and the template loops over nothing.
            variable["is_required"] = bool(spec.get("required", default is None))
            variable["default"] = ""
        elif isinstance(default, str):
            variable["default"] = default
            variable["is_required"] = bool(spec.get("required", False))
        elif isinstance(default, bool | int | float):
            variable["default"] = json.dumps(default)
            variable["is_required"] = bool(spec.get("required", False))
        else:
            self.warn(
                f"input {name}: a structured default is not kept",
                "give the value when running (--var-json, --vars FILE)",
                self.line(*path, "default") or line,
            )
            variable["is_required"] = False
        return variable

    def _outputs(self, outputs: Any) -> dict[str, Any] | None:
        if outputs is None:
            return None
        key = "outputs" if "outputs" in self.front.data else "outputSchema"
        if isinstance(outputs, dict) and key == "outputSchema":
            outputs = outputs.get("properties", outputs)
        entries: list[tuple[str, Any, tuple[str | int, ...]]] = []
        if isinstance(outputs, dict):
            entries = [(str(k), v, (key, str(k))) for k, v in outputs.items()]
        elif isinstance(outputs, list):
            for index, item in enumerate(outputs):
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    self.error(f"outputs[{index}] needs a name", "write `- name: answer`", self.line(key, index))
                    continue
                entries.append((item["name"], item, (key, index)))
        else:
            self.error(
                "outputs must be a mapping or a list", "write `outputs: {answer: {type: string}}`", self.line(key)
            )
            return None
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, spec, path in entries:
            spec = spec if isinstance(spec, dict) else {}
            kind = spec.get("kind", spec.get("type", "string"))
            if kind not in JSON_TYPES:
                self.error(
                    f"output {name}: unknown kind {kind!r}",
                    f"use one of {', '.join(sorted(set(JSON_TYPES.values())))}",
                    self.line(*path),
                )
                continue
            prop: dict[str, Any] = {"type": JSON_TYPES[kind]}
            if isinstance(spec.get("description"), str):
                prop["description"] = spec["description"]
            properties[name] = prop
            if spec.get("required", True):
                required.append(name)
        if not properties:
            return None
        return {"type": "object", "properties": properties, "required": required}

    # endregion
    # region body

    def _chat_template(self, front: FrontMatter, template_format: str) -> str:
        body = front.body
        if not body.strip():
            self.error("the prompt is empty", "write the prompt below the front matter", front.body_line)
            return ""
        lines = escape_text(body, template_format).splitlines(keepends=True)
        for index, line in enumerate(lines):
            if _RENDERED_ROLE_LINE.match(line.rstrip("\r\n")):
                self.warn(
                    "role lines the template renders stay text in the message above",
                    "Kernel App splits the file's own role lines; give a history as chat_history (--var-json)",
                    front.body_line + index,
                )
        return chat_template(lines)

    # endregion


def _is_file_ref(value: Any) -> bool:
    return isinstance(value, str) and _FILE_REF.match(value.strip()) is not None


def escape_text(body: str, template_format: str) -> str:
    """XML-escape the body's text, leaving template tags alone (their output is escaped when rendered)."""
    pattern = _JINJA_TAG if template_format == "jinja2" else _MUSTACHE_TAG
    out: list[str] = []
    position = 0
    for match in pattern.finditer(body):
        out.append(html.escape(body[position : match.start()], quote=False))
        out.append(match.group(0))
        position = match.end()
    out.append(html.escape(body[position:], quote=False))
    return "".join(out)


def chat_template(lines: list[str]) -> str:
    """Role lines -> ``<message>`` tags, on the same lines; text before the first role line is the system's.

    The role line itself becomes blank and the tag opens on the message's first line of text, so that the
    message starts with its text and every line keeps its number. A role with no text (a trailing
    ``user:``) sends no message, as Prompty drops it.
    """
    sections: list[tuple[str, str, int]] = []  # (role, attributes, index of its first content line)
    markers: set[int] = set()
    for index, line in enumerate(lines):
        match = _ROLE_LINE.match(line.rstrip("\r\n"))
        if match:
            sections.append((match.group(1).lower(), _attributes(match.group("attrs")), index + 1))
            markers.add(index)
    if not markers or any(line.strip() for line in lines[: min(markers)]):
        sections.insert(0, ("system", "", 0))
    out = [("\n" if line.endswith("\n") else "") if index in markers else line for index, line in enumerate(lines)]
    for number, (role, attributes, start) in enumerate(sections):
        end = sections[number + 1][2] - 1 if number + 1 < len(sections) else len(lines)
        text = [i for i in range(start, end) if lines[i].strip()]
        if not text:
            continue
        out[text[0]] = f'<message role="{role}"{attributes}>' + out[text[0]].lstrip("\r\n")
        last = text[-1]
        newline = "\n" if out[last].endswith("\n") else ""
        out[last] = out[last].rstrip("\r\n") + "</message>" + newline
    return "".join(out)


def _attributes(text: str | None) -> str:
    """``name="Alice"`` (a v2 role's attributes): only ``name`` means something to a chat message."""
    if not text:
        return ""
    match = re.search(r"""\bname\s*=\s*["']?([^"',\s]+)""", text)
    return f' name="{html.escape(match.group(1))}"' if match else ""
