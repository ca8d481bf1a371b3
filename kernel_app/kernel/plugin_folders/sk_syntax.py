"""semantic-kernel's own template syntax, read without importing semantic-kernel (``plugins lint`` and
``plugins list`` must start fast, and that import alone takes seconds).

A port of semantic-kernel 1.45's ``TemplateTokenizer`` and ``CodeTokenizer`` (template_engine/, MIT,
Microsoft) with the blocks' validation: the same blocks, the same errors, the same messages, so lint
says what rendering would. ``tests/kernel/plugin_folders/test_plugin_lint_light.py`` checks it against semantic-kernel's
tokenizer on every template of the built-in plugins and the shared corpus and on malformed ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_VAR = re.compile(r"^[${1}](?P<name>[0-9A-Za-z_]+)$")
_VAL = re.compile(r"^(?P<quote>[\"'])(?P<value>.*)(?P=quote)$", flags=re.S)
_FUNCTION_ID = re.compile(r"^((?P<plugin>[0-9A-Za-z_]+)[.])?(?P<function>[0-9A-Za-z_]+)$")
_NAMED_ARG = re.compile(
    r"^(?P<name>[0-9A-Za-z_]+)[=]{1}(?P<value>[${1}](?P<var_name>[0-9A-Za-z_]+)|(?P<quote>[\"'])(?P<val>.[^\"^']*)(?P=quote))$"
)
_QUOTES = ('"', "'")
_ESCAPE = "\\"
_SPACES = (" ", "\n", "\r", "\t")


class BlockSyntaxError(Exception):
    """A block semantic-kernel would refuse, with semantic-kernel's message."""


@dataclass
class Text:
    content: str


@dataclass
class Var:
    content: str
    name: str


@dataclass
class Val:
    content: str


@dataclass
class FunctionId:
    content: str
    plugin_name: str | None
    function_name: str


@dataclass
class NamedArg:
    content: str
    name: str
    variable: Var | None  # name=$var; None for name='value'


@dataclass
class Code:
    content: str
    tokens: list[Var | Val | FunctionId | NamedArg] = field(default_factory=list)


Block = Text | Var | Val | Code


def _var(content: str) -> Var:
    content = content.strip()
    match = _VAR.match(content)
    if not match:
        raise BlockSyntaxError(
            "A VarBlock starts with a '$' followed by at least one letter, number or underscore, anything else "
            f"is invalid. The content provided was: {content}"
        )
    return Var(content, match.group("name"))


def _val(content: str) -> Val:
    content = content.strip()
    if not _VAL.match(content):
        raise BlockSyntaxError(
            "A ValBlock starts with a single or double quote followed by at least one letter, finishing with the "
            f"same type of quote as the first one. The content provided was: {content}"
        )
    return Val(content)


def _function_id(content: str) -> FunctionId:
    content = content.strip()
    match = _FUNCTION_ID.match(content)
    if not match:
        raise BlockSyntaxError(
            "A FunctionIdBlock is composed of either a plugin name and function name separated by a single dot, "
            "or just a function name. Both plugin and function names can only contain letters, numbers and "
            f"underscores. The content provided was: {content}"
        )
    return FunctionId(content, match.group("plugin") or None, match.group("function"))


def _named_arg(content: str) -> NamedArg:
    content = content.strip()
    match = _NAMED_ARG.match(content)
    if not match:
        raise BlockSyntaxError(
            "A NamedArgBlock starts with a name (letters, numbers or underscore) followed by a single equal sign, "
            "then the value of the argument, which can either be a VarBlock (starting with '$') or a ValBlock "
            f"(text surrounded by quotes). The content provided was: {content}"
        )
    var_name = match.group("var_name")
    return NamedArg(content, match.group("name"), Var(match.group("value"), var_name) if var_name else None)


def _id_or_named(content: list[str]) -> FunctionId | NamedArg:
    text = "".join(content)
    return _named_arg(text) if "=" in content else _function_id(text)


def tokenize_code(text: str) -> list[Var | Val | FunctionId | NamedArg]:
    """semantic-kernel's CodeTokenizer.tokenize."""
    text = text.strip() if text else ""
    if not text:
        return []
    if len(text) == 1:
        return [_function_id(text)]
    kind: str | None = None  # "var", "val", "id"
    content: list[str] = []
    delimiter: str | None = None
    space_found = False
    skip_next = False
    next_char = ""
    blocks: list[Var | Val | FunctionId | NamedArg] = []
    for index, char in enumerate(text[:-1]):
        next_char = text[index + 1]
        if skip_next:
            skip_next = False
            continue
        if index == 0:
            if char == "$":
                kind = "var"
            elif char in _QUOTES:
                kind, delimiter = "val", char
            else:
                kind = "id"
            content.append(char)
            continue
        if kind == "val":
            if char == _ESCAPE and next_char in (*_QUOTES, _ESCAPE):
                content.append(next_char)
                skip_next = True
                continue
            content.append(char)
            if char == delimiter:
                blocks.append(_val("".join(content)))
                content.clear()
                kind = None
                space_found = False
            continue
        if char in _SPACES:
            if kind == "var":
                blocks.append(_var("".join(content)))
                content.clear()
            elif kind == "id":
                blocks.append(_id_or_named(content))
                content.clear()
            space_found = True
            kind = None
            continue
        content.append(char)
        if kind is None:
            if not space_found:
                raise BlockSyntaxError("Tokens must be separated by one space least")
            if char in _QUOTES:
                kind, delimiter = "val", char
            elif char == "$":
                kind = "var"
            else:
                kind = "id"
    content.append(next_char)
    if kind == "val":
        blocks.append(_val("".join(content)))
    elif kind == "var":
        blocks.append(_var("".join(content)))
    elif kind == "id":
        blocks.append(_id_or_named(content))
    else:
        raise BlockSyntaxError("Tokens must be separated by one space least")
    return blocks


def _check_tokens(tokens: list[Var | Val | FunctionId | NamedArg]) -> list[Var | Val | FunctionId | NamedArg]:
    """CodeBlock.check_tokens (its errors are CodeBlockTokenError there; the template reports both alike)."""
    if not tokens:
        raise BlockSyntaxError("The content should contain at least one token.")
    for index, token in enumerate(tokens):
        if index == 0 and isinstance(token, NamedArg):
            raise BlockSyntaxError(
                "The first token needs to be a function_id, value or variable, got: BlockTypes.NAMED_ARG"
            )
        if index == 0 and isinstance(token, Var | Val):
            return [token]
        if index == 1 and not isinstance(token, Var | Val | NamedArg):
            raise BlockSyntaxError(
                "Unexpected type for the second token type, should be variable, value or named_arg: "
                f"{_type_name(token)}"
            )
        if index > 1 and not isinstance(token, NamedArg):
            raise BlockSyntaxError(
                f"Every argument for the function after the first has to be a named arg, instead: {_type_name(token)}"
            )
    return tokens


def _type_name(token: object) -> str:
    names = {Var: "VARIABLE", Val: "VALUE", FunctionId: "FUNCTION_ID", NamedArg: "NAMED_ARG"}
    return f"BlockTypes.{names[type(token)]}"


def tokenize(text: str) -> list[Block]:
    """semantic-kernel's TemplateTokenizer.tokenize: text, variables, values and code blocks."""
    text = text or ""
    if len(text) < 5:  # shorter than "{{$x}}" can be: all text
        return [Text(text)]
    blocks: list[Block] = []
    end_of_last = 0
    start = 0
    start_found = False
    inside_value = False
    delimiter: str | None = None
    skip_next = False
    for position, char in enumerate(text[:-1]):
        next_position = position + 1
        next_char = text[next_position]
        if skip_next:
            skip_next = False
            continue
        if not inside_value and char == "{" and next_char == "{":
            start, start_found = position, True
        if not start_found:
            continue
        if inside_value:
            if char == _ESCAPE and next_char in (*_QUOTES, _ESCAPE):
                skip_next = True
                continue
            if char == delimiter:
                inside_value = False
            continue
        if char in _QUOTES:
            inside_value, delimiter = True, char
            continue
        if char == "}" and next_char == "}":
            blocks.extend(_extract(text, start, end_of_last, next_position))
            end_of_last = next_position + 1
            start_found = False
    if end_of_last < len(text):
        blocks.append(Text(text[end_of_last:]))
    return blocks


def _extract(text: str, start: int, end_of_last: int, next_position: int) -> list[Block]:
    blocks: list[Block] = []
    if start > end_of_last:
        blocks.append(Text(text[end_of_last:start]))
    with_delimiters = text[start : next_position + 1]
    inner = with_delimiters[2:-2].strip()
    if not inner:
        blocks.append(Text(with_delimiters))
        return blocks
    try:
        tokens = tokenize_code(inner)
        if isinstance(tokens[0], Var | Val):
            blocks.append(tokens[0])
            return blocks
        blocks.append(Code(inner, _check_tokens(tokens)))
    except BlockSyntaxError as error:
        raise BlockSyntaxError(f"Failed to tokenize code block: {inner}. {error}") from None
    return blocks
