"""The plan: a goal and ordered steps of ``Plugin.Function`` calls, in one format everywhere.

The same JSON is what the model is asked to answer, what ``--save`` writes and what ``--json`` prints::

    {"goal": "...", "steps": [{"function": "Writer.ShortPoem", "args": {"input": "Valentine's day"}, "output": "poem"},
                              {"function": "Writer.Translate", "args": {"input": "$poem", "language": "French"},
                               "output": "french"}]}

An argument is a literal (string, number, boolean...) or a reference ``$name`` to an earlier step's
``output`` or to an input variable given at execution (e.g. ``$input``). A reference is the whole
value: ``"$poem"`` is a reference, ``"about $poem"`` is the literal text. ``"$$..."`` is a literal that
starts with ``$`` (the first ``$`` is dropped). There is no implicit chaining: a step that wants the
previous output passes it explicitly (``"input": "$poem"``). The last step's output is the result.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planners.errors import PlanFormatError, PlanParseError
from planners.quoting import escaped

REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def reference_name(value: Any) -> str | None:
    """``"$poem"`` → ``"poem"``; anything else (including ``"$$x"`` and ``"$5"``) → None."""
    if isinstance(value, str):
        match = REFERENCE.match(value)
        if match:
            return match.group(1)
    return None


def literal_value(value: Any) -> Any:
    """A literal as the function receives it: ``"$$x"`` is the escape for the text ``"$x"``."""
    if isinstance(value, str) and value.startswith("$$"):
        return value[1:]
    return value


class PlanStep(BaseModel):
    """One call: ``function`` is ``Plugin.Function``; ``output`` names its result for later steps."""

    model_config = ConfigDict(extra="forbid")

    function: str = Field(description="The function to call, as Plugin.Function")
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="Arguments by parameter name: literal values, or $name for an earlier output or an input variable",
    )
    output: str = Field(description="The name of this step's result; later steps refer to it as $name")
    # What the planner read differently from the model's answer (a near-miss argument name mapped, see
    # planners.arguments): shown under the step and saved with it, so a person sees what was read.
    notes: list[str] = Field(default_factory=list, description="How the planner read the model's answer")

    def references(self) -> list[str]:
        """The names this step reads, in argument order, without duplicates."""
        names: list[str] = []
        for value in self.args.values():
            name = reference_name(value)
            if name is not None and name not in names:
                names.append(name)
        return names

    def call_text(self) -> str:
        args = ", ".join(f"{key}={_show(value)}" for key, value in self.args.items())
        return f"{self.function}({args})"


class Plan(BaseModel):
    """A goal and its steps; ``result_name`` (the last step's output) is the result."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(default="", description="The goal the plan was made for")
    steps: list[PlanStep] = Field(default_factory=list, description="The calls, in order")

    @property
    def result_name(self) -> str | None:
        return self.steps[-1].output if self.steps else None

    @property
    def functions(self) -> list[str]:
        return [step.function for step in self.steps]

    # region serialisation

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for step in data["steps"]:
            if not step["notes"]:  # a plan without notes keeps the plain format
                del step["notes"]
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """Strict: a saved plan must have exactly the plan's keys (a typo such as ``arg`` is reported)."""
        if not isinstance(data, dict):
            raise PlanFormatError(f"a plan is a JSON object with 'goal' and 'steps', not {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            failure = PlanFormatError(_explain(error))
            failure.more_problems = tuple(_explain_one(e) for e in error.errors()[1:])
            raise failure from None

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise PlanParseError(f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
        return cls.from_dict(data)

    @classmethod
    def from_yaml(cls, text: str) -> Plan:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise PlanParseError(f"not valid YAML: {' '.join(str(error).split())}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """A saved plan: YAML for ``.yaml``/``.yml``, JSON otherwise. Errors name the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise PlanParseError(f"{path}: cannot read the plan: {error.strerror or error}") from None
        try:
            return cls.from_yaml(text) if path.suffix.lower() in (".yaml", ".yml") else cls.from_json(text)
        except PlanParseError as error:
            located = type(error)(f"{path}: {error}")
            located.more_problems = error.more_problems
            raise located from None

    def save(self, path: str | Path) -> None:
        """Write the plan as YAML for ``.yaml``/``.yml``, JSON otherwise."""
        path = Path(path)
        text = self.to_yaml() if path.suffix.lower() in (".yaml", ".yml") else self.to_json() + "\n"
        path.write_text(text, encoding="utf-8")

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON schema of the plan file (any function name; see ``schema.response_schema`` for the model's)."""
        return cls.model_json_schema()

    # endregion

    def __str__(self) -> str:
        lines = [f"Goal: {self.goal}"] if self.goal else []
        width = len(str(len(self.steps)))
        for number, step in enumerate(self.steps, 1):
            lines.append(f"{number:>{width}}. {step.output} = {step.call_text()}")
            lines += [f"{' ' * (width + 2)}(note: {note})" for note in step.notes]
        if self.result_name:
            lines.append(f"Result: ${self.result_name}")
        return "\n".join(lines) if lines else "(empty plan)"


def _show(value: Any) -> str:
    if reference_name(value) is not None:
        return str(value)
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + '..."'


def _explain(error: ValidationError) -> str:
    """Pydantic's first error as one line, counting the others (listed by ``details()``)."""
    count = error.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return f"not a valid plan: {_explain_one(error.errors()[0])}{more}"


def _explain_one(first: Any) -> str:
    """One pydantic error as one line: where (``step 2: args``) and what."""
    loc = [part if isinstance(part, int) else escaped(str(part), 40) for part in first["loc"]]  # keys: file text
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        where = f"step {loc[1] + 1}" + "".join(f": {part}" for part in loc[2:])
    else:
        where = ": ".join(str(part) for part in loc) or "plan"
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = "goal, steps" if len(loc) == 1 else "function, args, output, notes"
        what = f"unknown key (allowed: {allowed})"
    elif kind == "missing":
        what = "missing"
    else:
        what = " ".join(str(first["msg"]).split())
    return f"{where}: {what}"
