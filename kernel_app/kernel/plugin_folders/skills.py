"""Agent Skills (a folder with ``SKILL.md``) as functions: the instructions as a prompt, the folder read-only.

A skill is a folder holding ``SKILL.md`` (YAML front matter with ``name`` and ``description``, optionally
``license``, ``compatibility``, ``allowed-tools``, ``metadata``; the body is the instructions) and the
files the instructions point at (``references/``, ``examples/``, assets) and may run (``scripts/``).
Each skill becomes, in its plugin:

- ``<skill>``: a prompt function whose system message is the instructions (with the list of the
  skill's files) and whose user message is ``input``. It may call the two functions below (function
  calling, where the model supports it).
- ``<skill>_read_file``: reads one file of the skill folder, and nothing outside it (no ``..``, no
  absolute path, no symlink that leaves the folder), text only, at most :data:`RESOURCE_LIMIT` bytes.
- ``<skill>_run_script``: runs a Python script of ``scripts/`` with arguments, only when the plugin
  directory is trusted (``--trust``), as native Python plugins load only there; otherwise lint says so.

The instructions are sent as written: they are XML-escaped (semantic-kernel parses the rendered prompt as
XML) and braces are written as character references, so ``{{...}}`` in a skill is text, not a template.
"""

from __future__ import annotations

import html
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from kernel_app.base.errors import Problem, UsageError
from kernel_app.kernel.plugin_folders.front_matter import FrontMatterError, split_front_matter
from kernel_app.kernel.plugin_folders.specs import FunctionSpec, ParameterSpec

if TYPE_CHECKING:
    from semantic_kernel.functions import KernelFunction

SKILL_FILE = "SKILL.md"
RESOURCE_LIMIT = 64 * 1024  # bytes of one file a skill's function reads
OUTPUT_LIMIT = 16 * 1024  # characters of a script's output kept
SCRIPT_TIMEOUT = 60.0  # seconds a script may run
LISTED_FILES = 100  # files named in the prompt
SCRIPT_SUFFIXES = (".py",)
# The front matter the Agent Skills specification defines.
SPEC_KEYS = {"name", "description", "license", "compatibility", "allowed-tools", "metadata"}
_SPEC_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_SKIPPED_PARTS = {"__pycache__", "node_modules"}


@dataclass
class Skill:
    folder: Path
    function: str  # the prompt function's name; the other two add _read_file / _run_script
    description: str
    instructions: str
    files: list[str] = field(default_factory=list)  # every file of the folder but SKILL.md, relative, posix
    scripts: list[str] = field(default_factory=list)  # the files that may run (scripts/*.py)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def read_function(self) -> str:
        return f"{self.function}_read_file"

    @property
    def script_function(self) -> str:
        return f"{self.function}_run_script"


def is_skill_folder(folder: Path) -> bool:
    return (folder / SKILL_FILE).is_file()


def skill_function_name(folder: Path) -> str:
    """``unit-converter`` -> ``unit_converter`` (function names are identifiers)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", folder.name)


def read_skill(folder: Path, text: str) -> Skill:
    """Read ``folder/SKILL.md`` (its text given); ``problems`` says what is wrong, with lines."""
    path = folder / SKILL_FILE
    where = str(path)
    problems: list[Problem] = []
    function = skill_function_name(folder)
    try:
        front = split_front_matter(text)
    except FrontMatterError as exc:
        problems.append(Problem(where, exc.message, "fix the front matter between the '---' lines", line=exc.line))
        return Skill(folder, function, "", "", problems=problems)
    data = front.data if isinstance(front.data, dict) else {}
    if not data:
        problems.append(
            Problem(where, "no front matter", "start SKILL.md with ---, name: and description:, then ---", line=1)
        )
    for key in data:
        if key not in SPEC_KEYS:
            problems.append(
                Problem(
                    where,
                    f"unknown key {key!r} (ignored)",
                    f"the Agent Skills keys are {', '.join(sorted(SPEC_KEYS))}",
                    "warning",
                    line=front.line_of(key),
                )
            )
    name = data.get("name")
    if data and not isinstance(name, str):
        problems.append(Problem(where, "no name", f"add `name: {folder.name}`", line=2))
    elif isinstance(name, str) and name != folder.name:
        problems.append(
            Problem(
                where,
                f"name {name!r} does not match the folder {folder.name!r} (the folder names the function)",
                "rename one so they match",
                "warning",
                line=front.line_of("name"),
            )
        )
    elif isinstance(name, str) and not _SPEC_NAME.match(name):
        problems.append(
            Problem(
                where,
                f"name {name!r} is not lower-case letters, digits and single hyphens",
                "rename it (and the folder) as the Agent Skills specification asks",
                "warning",
                line=front.line_of("name"),
            )
        )
    description = data.get("description")
    if data and (not isinstance(description, str) or not description.strip()):
        problems.append(
            Problem(
                where,
                "no description",
                "add `description:` saying what the skill does and when to use it",
                line=front.line_of("description") or 2,
            )
        )
        description = ""
    instructions = front.body.strip()
    if not instructions:
        problems.append(
            Problem(where, "no instructions", "write the instructions below the front matter", line=front.body_line)
        )
    files = list_files(folder)
    scripts = [f for f in files if f.startswith("scripts/") and f.endswith(SCRIPT_SUFFIXES)]
    return Skill(folder, function, " ".join(str(description or "").split()), instructions, files, scripts, problems)


def list_files(folder: Path) -> list[str]:
    """The skill's files, relative: not SKILL.md, nothing hidden, nothing a symlink takes out of the folder."""
    root = folder.resolve()
    found: list[str] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if relative.as_posix() == SKILL_FILE or any(p.startswith(".") or p in _SKIPPED_PARTS for p in relative.parts):
            continue
        if path.is_file() and path.resolve().is_relative_to(root):
            found.append(relative.as_posix())
    return found


# region the prompt


def prompt_config(plugin: str, skill: Skill, trusted: bool) -> tuple[dict[str, Any], str]:
    """The skill's prompt function: config (current schema) and template."""
    functions = [f"{plugin}.{skill.read_function}"] if skill.files else []
    if trusted and skill.scripts:
        functions.append(f"{plugin}.{skill.script_function}")
    config: dict[str, Any] = {
        "description": skill.description,
        "template_format": "semantic-kernel",
        "input_variables": [{"name": "input", "description": "What the user asks of the skill", "is_required": True}],
    }
    if functions:
        # semantic-kernel's dict form leaves maximum_auto_invoke_attempts at 0 (no call is run): say 5, its default.
        behavior = {"type": "auto", "functions": functions, "maximum_auto_invoke_attempts": 5}
        config["execution_settings"] = {"default": {"function_choice_behavior": behavior}}
    return config, _template(plugin, skill, trusted)


def _template(plugin: str, skill: Skill, trusted: bool) -> str:
    parts = [skill.instructions]
    if skill.files:
        listed = skill.files[:LISTED_FILES]
        more = len(skill.files) - len(listed)
        lines = [f"- {name}" for name in listed] + ([f"- ... and {more} more"] if more > 0 else [])
        parts.append(
            f"The files of this skill (read one with the function {plugin}-{skill.read_function}, "
            "giving its path as listed):\n" + "\n".join(lines)
        )
    if trusted and skill.scripts:
        parts.append(
            f"Run a script with the function {plugin}-{skill.script_function}, giving its path "
            "(e.g. scripts/name.py) and its command-line arguments."
        )
    elif skill.scripts:
        parts.append("The scripts of this skill cannot be run here: do the steps yourself.")
    system = _literal("\n\n".join(parts))
    return f'<message role="system">{system}</message>\n<message role="user">{{{{$input}}}}</message>'


def _literal(text: str) -> str:
    """Text that semantic-kernel sends as written: XML-escaped, braces as character references."""
    return html.escape(text, quote=False).replace("{", "&#123;").replace("}", "&#125;")


# endregion
# region the folder, read-only


def resolve_inside(folder: Path, relative: str) -> Path:
    """``relative`` inside ``folder`` or a one-line error: no absolute path, no ``..``, no symlink out."""
    text = relative.strip().replace("\\", "/")
    if not text:
        raise UsageError("give the path of a file of the skill, e.g. references/guide.md")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise UsageError(f"{relative!r} is an absolute path: give a path inside the skill folder")
    if ".." in Path(text).parts:
        raise UsageError(f"{relative!r} leaves the skill folder ('..'): give a path inside it")
    root = folder.resolve()
    target = (folder / text).resolve()
    if not target.is_relative_to(root):
        raise UsageError(f"{relative!r} leads outside the skill folder (a link): only the skill's own files are read")
    if not target.is_file():
        raise UsageError(f"{relative!r} is not a file of the skill: see the list in the instructions")
    return target


def read_file(folder: Path, relative: str, limit: int = RESOURCE_LIMIT) -> str:
    """The text of one file of the skill folder (UTF-8, at most ``limit`` bytes)."""
    target = resolve_inside(folder, relative)
    size = target.stat().st_size
    if size > limit:
        raise UsageError(f"{relative!r} is {size} bytes, over the {limit}-byte limit of a skill file")
    data = target.read_bytes()
    if b"\0" in data:
        raise UsageError(f"{relative!r} is not text (a binary file): it cannot be read")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{relative!r} is not UTF-8 text: it cannot be read") from None


def run_script(folder: Path, relative: str, arguments: str = "", timeout: float = SCRIPT_TIMEOUT) -> str:
    """Run ``scripts/NAME.py`` of the skill with ``arguments`` (split as a shell would, no shell run)."""
    target = resolve_inside(folder, relative)
    relative_posix = target.relative_to(folder.resolve()).as_posix()
    if not (relative_posix.startswith("scripts/") and relative_posix.endswith(SCRIPT_SUFFIXES)):
        raise UsageError(f"{relative!r} is not a script of the skill: only scripts/*.py run")
    try:
        args = shlex.split(arguments)
    except ValueError as exc:
        raise UsageError(f"arguments {arguments!r}: {exc}") from None
    try:
        done = subprocess.run(
            [sys.executable, str(target), *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise UsageError(f"{relative_posix} ran longer than {timeout:g} s and was stopped") from None
    output = done.stdout[-OUTPUT_LIMIT:]
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise UsageError(f"{relative_posix} failed (exit status {done.returncode}): {last}")
    return output


def native_functions(plugin: str, skill: Skill, trusted: bool) -> list[KernelFunction]:
    """The read (and, trusted, run) functions of one skill, bound to its folder."""
    # Annotated is imported at module level: semantic-kernel evaluates these (string) annotations there.
    from semantic_kernel.functions import KernelFunctionFromMethod, kernel_function

    folder = skill.folder

    @kernel_function(name=skill.read_function, description=_read_description(skill))
    def read(path: Annotated[str, "The file's path inside the skill folder, e.g. references/guide.md"]) -> str:
        return read_file(folder, path)

    functions: list[KernelFunction] = []
    if skill.files:
        functions.append(KernelFunctionFromMethod(method=read, plugin_name=plugin))
    if trusted and skill.scripts:

        @kernel_function(name=skill.script_function, description=_script_description(skill))
        def run(
            script: Annotated[str, "The script's path, e.g. scripts/convert.py"],
            # Not "arguments": semantic-kernel gives a parameter of that name its KernelArguments.
            command_line: Annotated[str, "Its command-line arguments, e.g. --value 3 --factor 2"] = "",
        ) -> str:
            return run_script(folder, script, command_line)

        functions.append(KernelFunctionFromMethod(method=run, plugin_name=plugin))
    return functions


def native_specs(plugin: str, skill: Skill, trusted: bool) -> list[FunctionSpec]:
    """What ``plugins list`` shows of :func:`native_functions`, without semantic-kernel."""
    specs: list[FunctionSpec] = []
    if skill.files:
        path = ParameterSpec(
            "path", "The file's path inside the skill folder, e.g. references/guide.md", None, True, "str"
        )
        specs.append(FunctionSpec(plugin, skill.read_function, _read_description(skill), [path]))
    if trusted and skill.scripts:
        script = ParameterSpec("script", "The script's path, e.g. scripts/convert.py", None, True, "str")
        command_line = ParameterSpec(
            "command_line", "Its command-line arguments, e.g. --value 3 --factor 2", "", False, "str"
        )
        specs.append(FunctionSpec(plugin, skill.script_function, _script_description(skill), [script, command_line]))
    return specs


def _read_description(skill: Skill) -> str:
    return f"Read a file of the {skill.folder.name} skill (its references, examples and assets)."


def _script_description(skill: Skill) -> str:
    return f"Run a script of the {skill.folder.name} skill (scripts/*.py) with command-line arguments."


# endregion
