"""Template checks: syntax errors (with a line where we can tell) and variables nobody declared.

semantic-kernel renders a missing ``{{$var}}`` as an empty string with only a logged warning, so a
typo in a variable name silently empties part of the prompt. We warn about template variables that
are neither declared in the config nor given a default.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from kernel_app.errors import Problem

_HANDLEBARS_VAR = re.compile(r"{{{?\s*([A-Za-z_]\w*)\s*}?}}")
_HANDLEBARS_KEYWORDS = {"this", "else", "true", "false", "null", "undefined"}


def template_problems(template: str, template_format: str, variables: list[dict[str, Any]], path: str) -> list[Problem]:
    declared = {v["name"].lower() for v in variables}
    try:
        used = _used_variables(template, template_format)
    except _SyntaxProblem as exc:
        return [Problem(path, f"template syntax error: {exc.message}", exc.hint, line=exc.line)]
    return [
        Problem(
            path,
            f"template variable '{name}' is not declared",
            'declare it in input_variables (with a "default" if it is optional); until then it renders as empty '
            "unless given",
            "warning",
            line=_line_of(template, name),
        )
        for name in sorted(used)
        if name.lower() not in declared
    ]


class _SyntaxProblem(Exception):
    def __init__(self, message: str, hint: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message, self.hint, self.line = message, hint, line


def _used_variables(template: str, template_format: str) -> set[str]:
    if template_format == "jinja2":
        return _jinja2_variables(template)
    if template_format == "handlebars":
        return {m.group(1) for m in _HANDLEBARS_VAR.finditer(template)} - _HANDLEBARS_KEYWORDS
    return _sk_variables(template)


def _sk_variables(template: str) -> set[str]:
    from semantic_kernel.exceptions import BlockSyntaxError
    from semantic_kernel.template_engine.blocks.code_block import CodeBlock
    from semantic_kernel.template_engine.blocks.named_arg_block import NamedArgBlock
    from semantic_kernel.template_engine.blocks.var_block import VarBlock
    from semantic_kernel.template_engine.template_tokenizer import TemplateTokenizer

    tokenizer_logger = logging.getLogger("semantic_kernel.template_engine")
    level = tokenizer_logger.level
    tokenizer_logger.setLevel(logging.CRITICAL)  # it logs each error before raising it: we report it once
    try:
        blocks = TemplateTokenizer.tokenize(template)
    except BlockSyntaxError as exc:
        message = str(exc).strip().splitlines()[0]
        snippet = re.search(r"code block: (.+?)\. ", message)
        line = _line_of_text(template, snippet.group(1)) if snippet else None
        raise _SyntaxProblem(
            message, "semantic-kernel syntax is {{$variable}} or {{Plugin.function $arg}}", line
        ) from None
    finally:
        tokenizer_logger.setLevel(level)
    names: set[str] = set()
    for block in blocks:
        if isinstance(block, VarBlock):
            names.add(block.name)
        elif isinstance(block, CodeBlock):
            for token in block.tokens:
                if isinstance(token, VarBlock):
                    names.add(token.name)
                elif isinstance(token, NamedArgBlock) and token.variable:
                    names.add(token.variable.name)
    return {n for n in names if n}


def _jinja2_variables(template: str) -> set[str]:
    import jinja2
    from jinja2 import meta, nodes

    env = jinja2.Environment()
    try:
        ast = env.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise _SyntaxProblem(
            exc.message or "invalid jinja2", "fix the jinja2 syntax ({{ var }}, {% if %}...{% endif %})", exc.lineno
        ) from None
    called = {node.node.name for node in ast.find_all(nodes.Call) if isinstance(node.node, nodes.Name)}
    return set(meta.find_undeclared_variables(ast)) - called


def _line_of(template: str, name: str) -> int | None:
    match = re.search(rf"\b{re.escape(name)}\b", template)
    return template.count("\n", 0, match.start()) + 1 if match else None


def _line_of_text(template: str, text: str) -> int | None:
    index = template.find(text)
    return template.count("\n", 0, index) + 1 if index >= 0 else None
