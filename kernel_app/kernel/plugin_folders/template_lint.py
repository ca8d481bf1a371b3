"""What a prompt template reads and calls, and the problems lint reports about it.

:func:`analyse` reads a template in any of the three formats and returns the variables it reads at the
top level (with their first line), the ones a loop iterates over, the fields read from each, and the
functions it calls. Syntax errors are :class:`TemplateSyntaxProblem` with a line where we can tell:
semantic-kernel sends an unclosed ``{{`` literally and pybars accepts an unclosed ``{{#if}}``.

semantic-kernel renders a missing ``{{$var}}`` as an empty string with only a logged warning, so a typo
in a variable name silently empties part of the prompt: :func:`template_problems` warns about template
variables that are neither declared nor matched (case-insensitively, as .NET resolves them) by a
declared variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kernel_app.base.errors import Problem

SK_HINT = "semantic-kernel syntax is {{$variable}} or {{Plugin.function $arg}}"
HANDLEBARS_HINT = "handlebars syntax is {{variable}}, {{#each items}}...{{/each}}, {{#if x}}...{{/if}}"
JINJA2_HINT = "fix the jinja2 syntax ({{ var }}, {% if %}...{% endif %})"

# Helpers semantic-kernel's handlebars and jinja2 engines register (utils/*_system_helpers.py), and the
# handlebars keywords: neither is a variable.
# fmt: off
TEMPLATE_HELPERS = frozenset(
    {
        "set", "get", "array", "range", "concat", "or", "add", "subtract", "equals", "less_than", "lessThan",
        "greater_than", "greaterThan", "less_than_or_equal", "lessThanOrEqual", "greater_than_or_equal",
        "greaterThanOrEqual", "json", "double_open", "doubleOpen", "double_close", "doubleClose",
        "camel_case", "camelCase", "snake_case", "snakeCase", "message", "message_to_prompt",
        "messageToPrompt", "messages",
    }
)
# fmt: on
_HANDLEBARS_BUILTIN_BLOCKS = frozenset({"each", "with", "if", "unless"})
_HANDLEBARS_LITERALS = frozenset({"this", "else", "true", "false", "null", "undefined"})


@dataclass(frozen=True)
class TemplateCall:
    """A function the template calls: ``plugin`` is None for ``{{recall $x}}`` (any plugin)."""

    plugin: str | None
    function: str
    line: int
    joined: bool = False  # jinja2: "Plugin_function" in one name

    @property
    def name(self) -> str:
        return f"{self.plugin}.{self.function}" if self.plugin else self.function


@dataclass
class TemplateInfo:
    variables: dict[str, int] = field(default_factory=dict)  # name as written -> first line
    iterated: set[str] = field(default_factory=set)  # variables a loop runs over
    fields: dict[str, set[str]] = field(default_factory=dict)  # variable -> fields read (customer.firstName)
    calls: list[TemplateCall] = field(default_factory=list)

    def use(self, name: str, line: int) -> None:
        self.variables.setdefault(name, line)


class TemplateSyntaxProblem(Exception):
    def __init__(self, message: str, hint: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message, self.hint, self.line = message, hint, line


def analyse(template: str, template_format: str) -> TemplateInfo:
    if template_format == "jinja2":
        return _analyse_jinja2(template)
    if template_format == "handlebars":
        return _analyse_handlebars(template)
    return _analyse_sk(template)


def template_problems(
    template: str, template_format: str, variables: list[dict[str, Any]], path: str, line_offset: int = 0
) -> list[Problem]:
    """Syntax errors and undeclared variables; ``line_offset`` maps template lines to lines of the file."""
    try:
        info = analyse(template, template_format)
    except TemplateSyntaxProblem as exc:
        line = exc.line + line_offset if exc.line else None
        return [Problem(path, f"template syntax error: {exc.message}", exc.hint, line=line)]
    return undeclared_problems(info, variables, path, line_offset)


def undeclared_problems(
    info: TemplateInfo, variables: list[dict[str, Any]], path: str, line_offset: int = 0
) -> list[Problem]:
    declared = {v["name"].lower() for v in variables}
    problems = []
    for name, line in sorted(info.variables.items()):
        if name.lower() in declared:
            continue
        what = "a loop iterates over it" if name in info.iterated else "it renders as empty unless given"
        problems.append(
            Problem(
                path,
                f"template variable '{name}' is not declared ({what})",
                'declare it in input_variables (with a "default" if it is optional)',
                "warning",
                line=line + line_offset,
            )
        )
    return problems


# region semantic-kernel syntax


def _analyse_sk(template: str) -> TemplateInfo:
    from kernel_app.kernel.plugin_folders.sk_syntax import (
        BlockSyntaxError,
        Code,
        FunctionId,
        NamedArg,
        Text,
        Var,
        tokenize,
    )

    try:
        blocks = tokenize(template)
    except BlockSyntaxError as exc:
        message = str(exc).strip().splitlines()[0]
        snippet = re.search(r"code block: (.+?)\. ", message)
        line = _line_of_text(template, snippet.group(1)) if snippet else None
        raise TemplateSyntaxProblem(message, SK_HINT, line) from None
    info = TemplateInfo()
    offset = 0
    for block in blocks:
        # Blocks keep their content, not their position: find each in the template to know its line.
        index = template.find(block.content, offset) if block.content else -1
        if index >= 0:
            offset = index + len(block.content)
        line = template.count("\n", 0, max(index, 0)) + 1
        if isinstance(block, Text) and "{{" in block.content:
            # semantic-kernel sends an unclosed "{{" as text: the variable after it would never be filled.
            opening = template.find("{{", max(index, 0))
            raise TemplateSyntaxProblem("'{{' is never closed with '}}'", SK_HINT, template.count("\n", 0, opening) + 1)
        if isinstance(block, Var):
            if block.name:
                info.use(block.name, line)
        elif isinstance(block, Code):
            for token in block.tokens:
                if isinstance(token, FunctionId):
                    info.calls.append(TemplateCall(token.plugin_name or None, token.function_name, line))
                elif isinstance(token, Var) and token.name:
                    info.use(token.name, line)
                elif isinstance(token, NamedArg) and token.variable and token.variable.name:
                    info.use(token.variable.name, line)
    return info


# endregion
# region handlebars

_HB_TAG = re.compile(r"{{({)?(~)?\s*(.*?)\s*(~)?}?}}", re.DOTALL)
_HB_TOKEN = re.compile(r"""("[^"]*"|'[^']*'|[^\s=()]+=|\(|\)|[^\s()]+)""")
_HB_PATH = re.compile(r"^(?:\.\./|@root\.|this\.)?([A-Za-z_][\w-]*)((?:\.[\w-]+)*)$")
# {{Plugin.function x}}: with arguments, a dotted name is a call, as Semantic Kernel samples write it (the
# kernel's handlebars engine maps it to the function: kernel_app.kernel.template_engines).
HB_DOTTED_CALL = re.compile(r"([A-Za-z_]\w*)\.([A-Za-z_]\w*)")


def _analyse_handlebars(template: str) -> TemplateInfo:
    info = TemplateInfo()
    stack: list[tuple[str, int, bool]] = []  # (block name, line it opened, opens a new context)
    position = 0
    for match in _HB_TAG.finditer(template):
        line = template.count("\n", 0, match.start()) + 1
        position = match.end()
        body = match.group(3)
        if body.startswith("!"):
            continue
        kind = body[:1] if body[:1] in "#/^>&" else ""
        tokens = _HB_TOKEN.findall(body[1:] if kind else body)
        if not tokens:
            continue
        if kind == "/":
            name = tokens[0]
            if not stack or stack[-1][0] != name:
                expected = f"{{{{/{stack[-1][0]}}}}} (opened on line {stack[-1][1]})" if stack else "no open block"
                raise TemplateSyntaxProblem(f"{{{{/{name}}}}} does not close {expected}", HANDLEBARS_HINT, line)
            stack.pop()
            continue
        if kind == ">":
            continue  # a partial: semantic-kernel registers none, pybars reports it when rendering
        inside_loop = any(opens for _, _, opens in stack)
        if kind in ("#", "^"):
            name, arguments = tokens[0], tokens[1:]
            opens = name in ("each", "with")
            if name in _HANDLEBARS_BUILTIN_BLOCKS:
                _hb_values(arguments, info, line, inside_loop, iterate=(name == "each"))
            elif not arguments and "-" not in name and name not in TEMPLATE_HELPERS:
                # A mustache section ({{#people}}...{{/people}}): pybars loops over a list, or renders the
                # block once if the value is true (so not "iterated": a flag may be a string); kernel
                # functions are helpers named "Plugin-function".
                _hb_values([name], info, line, inside_loop)
                opens = True
            else:
                _hb_helper_call(name, arguments, info, line, inside_loop)
            stack.append((name, line, opens))
            continue
        head, arguments = tokens[0], tokens[1:]
        if head == "else":
            continue
        if arguments or "-" in head:
            _hb_helper_call(head, arguments, info, line, inside_loop)
        else:
            _hb_values([head], info, line, inside_loop)
    if stack:
        name, line, _ = stack[-1]
        raise TemplateSyntaxProblem(f"{{{{#{name}}}}} is never closed with {{{{/{name}}}}}", HANDLEBARS_HINT, line)
    rest = template.find("{{", position)
    if rest >= 0:
        line = template.count("\n", 0, rest) + 1
        raise TemplateSyntaxProblem("'{{' is never closed with '}}'", HANDLEBARS_HINT, line)
    return info


def handlebars_dotted_calls(template: str) -> list[tuple[int, str, str]]:
    """Where a handlebars template calls ``Plugin.function`` with a dot: ``(offset of the dot, plugin, function)``.

    A dotted name is a call as the head of a tag with arguments (``{{Plugin.function x}}``) or of a
    subexpression (``(Plugin.function x)``); ``{{customer.name}}`` reads a field. Comments and blocks are not
    calls.
    """
    found: list[tuple[int, str, str]] = []
    for match in _HB_TAG.finditer(template):
        body, start = match.group(3), match.start(3)
        if body[:1] in "!#/^>":
            continue
        skip = 1 if body[:1] == "&" else 0
        tokens = list(_HB_TOKEN.finditer(body, skip))
        for index, token in enumerate(tokens):
            dotted = HB_DOTTED_CALL.fullmatch(token.group())
            if dotted is None or token.group() in TEMPLATE_HELPERS:
                continue
            subexpression = index > 0 and tokens[index - 1].group() == "("
            with_arguments = index == 0 and len(tokens) > 1 and tokens[1].group() != ")"
            if subexpression or with_arguments:
                found.append((start + token.start() + len(dotted.group(1)), dotted.group(1), dotted.group(2)))
    return found


def _hb_helper_call(name: str, arguments: list[str], info: TemplateInfo, line: int, inside_loop: bool) -> None:
    if name not in TEMPLATE_HELPERS and name not in _HANDLEBARS_BUILTIN_BLOCKS:
        dotted = HB_DOTTED_CALL.fullmatch(name)
        plugin, _, function = (dotted.group(1), "", dotted.group(2)) if dotted else name.rpartition("-")
        info.calls.append(TemplateCall(plugin or None, function, line))
    _hb_values(arguments, info, line, inside_loop)


def _hb_values(tokens: list[str], info: TemplateInfo, line: int, inside_loop: bool, iterate: bool = False) -> None:
    for index, token in enumerate(tokens):
        if index and tokens[index - 1] == "(" and ("-" in token or HB_DOTTED_CALL.fullmatch(token)):
            _hb_helper_call(token, [], info, line, inside_loop)  # a subexpression's helper: (Plugin-function x)
            continue
        if token.endswith("=") or token in "()" or token[:1] in "\"'@" or token in _HANDLEBARS_LITERALS:
            continue
        path = _HB_PATH.match(token)
        if path is None or token[0].isdigit():
            continue
        name, rest = path.group(1), path.group(2)
        at_root = token.startswith(("../", "@root."))
        if inside_loop and not at_root:
            continue  # a field of the item the loop is on, not a variable of the prompt
        info.use(name, line)
        if rest:
            info.fields.setdefault(name, set()).add(rest[1:].split(".")[0])
        if iterate:
            info.iterated.add(name)


# endregion
# region jinja2


def _analyse_jinja2(template: str) -> TemplateInfo:
    import jinja2
    from jinja2 import meta, nodes

    env = jinja2.Environment()
    try:
        ast = env.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxProblem(exc.message or "invalid jinja2", JINJA2_HINT, exc.lineno) from None
    info = TemplateInfo()
    called = {}
    for node in ast.find_all(nodes.Call):
        if isinstance(node.node, nodes.Name):
            called.setdefault(node.node.name, node.lineno)
    lines = {node.name: node.lineno for node in reversed(list(ast.find_all(nodes.Name))) if node.ctx == "load"}
    for name in sorted(set(meta.find_undeclared_variables(ast)) - set(called)):
        info.use(name, lines.get(name, 1))
    for loop in ast.find_all(nodes.For):
        if isinstance(loop.iter, nodes.Name) and loop.iter.name in info.variables:
            info.iterated.add(loop.iter.name)
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in info.variables:
            info.fields.setdefault(node.node.name, set()).add(node.attr)
    for name, line in called.items():
        if name in TEMPLATE_HELPERS:
            continue
        # semantic-kernel names kernel functions "Plugin_function" in jinja2 ("-" is not valid there); plugin
        # names may hold "_" too, so the resolver tries each split.
        info.calls.append(TemplateCall(None, name, line, joined=True))
    return info


# endregion


def _line_of_text(template: str, text: str) -> int | None:
    index = template.find(text)
    return template.count("\n", 0, index) + 1 if index >= 0 else None
