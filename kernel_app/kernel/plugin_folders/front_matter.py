"""Markdown with YAML front matter (``.prompty`` files, ``SKILL.md``): the split, and where each key is.

Both formats put YAML between two ``---`` lines at the top of the file and the prompt (or the skill's
instructions) below. Findings about a field name the file's line of that field, so :class:`FrontMatter`
keeps a map from a key path (``model.parameters.temperature``, ``inputs.0.name``) to its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_FENCE = re.compile(r"^---[ \t]*$")


@dataclass
class FrontMatter:
    """The parsed front matter (``{}`` when there is none), the body, and the lines of both."""

    data: Any
    body: str
    body_line: int  # the file's line number of the body's first line
    lines: dict[str, int] = field(default_factory=dict)  # "a.b.0.c" -> line in the file

    def line_of(self, *path: str | int) -> int | None:
        """The file line of the deepest key of ``path`` that exists (``None`` without front matter)."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(".".join(str(p) for p in path[:end]))
            if line is not None:
                return line
        return None


class FrontMatterError(Exception):
    """The front matter is not valid YAML: ``line`` is the file's line."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def split_front_matter(text: str) -> FrontMatter:
    """The YAML between the first two ``---`` lines, and the rest; no fence: all of it is the body."""
    import yaml

    lines = text.splitlines(keepends=True)
    if not lines or not _FENCE.match(lines[0].rstrip("\r\n")):
        return FrontMatter({}, text, 1)
    end = next((i for i in range(1, len(lines)) if _FENCE.match(lines[i].rstrip("\r\n"))), None)
    if end is None:
        raise FrontMatterError("the front matter opened on line 1 is never closed with '---'", 1)
    yaml_text = "".join(lines[1:end])
    try:
        data = yaml.safe_load(yaml_text) if yaml_text.strip() else {}
        node = yaml.compose(yaml_text) if yaml_text.strip() else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FrontMatterError(f"invalid YAML: {problem}", mark.line + 2 if mark else None) from None
    key_lines: dict[str, int] = {}
    if node is not None:
        _collect_lines(node, "", key_lines)
    return FrontMatter(data if data is not None else {}, "".join(lines[end + 1 :]), end + 2, key_lines)


def _collect_lines(node: Any, prefix: str, out: dict[str, int]) -> None:
    import yaml

    # +2: the YAML starts on the file's line 2 and marks count from 0.
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}{key.value}"
            out.setdefault(path, key.start_mark.line + 2)
            _collect_lines(value, path + ".", out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}{index}"
            out.setdefault(path, item.start_mark.line + 2)
            _collect_lines(item, path + ".", out)
