"""The planners' prompts. Plain chat messages (no template engine), so a goal containing ``{{`` is just text."""

from __future__ import annotations

from collections.abc import Sequence

from planners.catalogue import FunctionCatalogue
from planners.quoting import clean_text, shortened

MAX_ECHOED_ANSWER = 4000  # characters of a bad answer quoted back in a repair turn
# A repair turn lists at most this many problems, each cut at MAX_PROBLEM_CHARS: every quoted piece is
# bounded, so a 100 KB function name cannot make every repair request 100 KB.
MAX_PROBLEMS = 20
MAX_PROBLEM_CHARS = 400

_STEP_FORM = (
    '{"task": "what the step does", "function": "Plugin.Function", "args": {"parameter": "value"}, "output": "name"}'
)
_FORMAT = (
    "Answer with one JSON object and nothing else, in this form:\n"
    + f'{{"steps": [{_STEP_FORM}]}}'
    + """

Rules:
- "task" says in a few words what the step does, as the goal asks it (e.g. "Translate the poem into
  French"); "function" is then the listed function that does exactly that.
- "function" is exactly one of the function names listed below; never invent one.
- "args" uses exactly the parameter names shown in parentheses after the function's name, e.g. "input";
  give every required one, optional ones only when the goal needs them. A function shown with () takes
  no arguments: "args": {}.
- An argument value is either literal text (or a number), or "$name" to use the output of an EARLIER
  step or an input variable. Nothing is passed on by itself: to feed one step's result into the next,
  write it explicitly, e.g. "input": "$poem".
- "output" is a short, unique name for the step's result (letters, digits, _).
- The last step's output is the final result."""
)

# "one more step for each thing the goal asks to do with a result": with "one step when one function does
# the whole job" alone, Qwen2.5-Coder-1.5B planned "Write a SWOT analysis of a coffee shop and rewrite it so
# that a child can understand it" as BusinessThinking.SWOT only, ChangeAudience offered first.
# The fixed text (role, format, rules) comes BEFORE the functions offered for this goal: llama.cpp
# reuses the prompt prefix it has already evaluated, so on the embedded model only the function list
# and the goal are read anew for each plan.
SEQUENTIAL_SYSTEM = """\
You are a planner. You turn a user's goal into a short plan: a sequence of calls to the functions
listed below, where later calls may use the results of earlier ones. Use as few steps as the goal
needs, at most {max_steps}: one step when one function does the whole job, and one more step for each
thing the goal asks to do with a result, such as translating it or rewriting it for a reader.

{format}
- If none of the functions can help with the goal, answer {{"steps": [], "reason": "why"}}.

{inputs}Functions:
{functions}

{reminder}"""

# Said again after the function list, right before the goal: with the rules above the list,
# Qwen2.5-Coder-1.5B wrote "input": "poem" (the word) for "$poem" (the output; docs/models.md).
REMINDER = 'To use an earlier step\'s result, write "$" and its output name, e.g. "input": "$poem".'

ACTION_SYSTEM = """\
You pick the ONE function, from the list below, that best achieves the user's goal, and its arguments.

{format}
- The plan has exactly one step.
- If no function fits the goal, answer {{"steps": [], "reason": "why"}}.

{inputs}Functions:
{functions}"""

REPAIR = """\
Your previous answer could not be used:
{errors}

Answer again with the corrected JSON plan only, following the rules and using only the listed functions."""


def _inputs_text(inputs: Sequence[str]) -> str:
    if not inputs:
        return "There are no input variables: put the values the goal gives you into the arguments as text.\n\n"
    names = ", ".join(f"${name}" for name in inputs)
    return f"Input variables available at execution: {names}.\n\n"


def system_prompt(
    catalogue: FunctionCatalogue,
    names: Sequence[str],
    *,
    inputs: Sequence[str] = (),
    max_steps: int = 10,
    single_step: bool = False,
) -> str:
    template = ACTION_SYSTEM if single_step else SEQUENTIAL_SYSTEM
    return template.format(
        functions=describe_functions(catalogue, names),
        inputs=_inputs_text(inputs),
        format=_FORMAT,
        max_steps=max_steps,
        reminder="" if single_step else REMINDER,
    )


def describe_functions(catalogue: FunctionCatalogue, names: Sequence[str]) -> str:
    """The offered functions as the prompt lists them, each with its parameter names stated plainly in a
    signature (``Writer.Translate(input, language)``), as a coder model reads them.

    Each required parameter gets a line saying what it is; optional ones are named on one line, without
    their descriptions: on the embedded model reading the prompt is most of a plan's time (about 10
    tokens/s on a busy 2-core machine), and a goal rarely needs them.
    """
    blocks: list[str] = []
    for name in names:
        info = catalogue.functions[name]
        signature = f"{info.name}({', '.join(info.parameter_names)})"
        lines = [f"- {signature}: {info.description or '(no description)'}"]
        for p in info.parameters:
            if p.required:
                kind = "" if p.type == "string" else f", {p.type}"
                about = f": {p.description}" if p.description else ""
                lines.append(f"    {p.name} (required{kind}){about}")
        optional = [p.name for p in info.parameters if not p.required]
        if optional:
            lines.append(f"    optional: {', '.join(optional)}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def user_prompt(goal: str) -> str:
    return f"Goal: {clean_text(goal)}"


def repair_prompt(errors: Sequence[str]) -> str:
    lines = [
        f"- {shortened(clean_text(' '.join(error.split())), MAX_PROBLEM_CHARS)}" for error in errors[:MAX_PROBLEMS]
    ]
    if len(errors) > MAX_PROBLEMS:
        lines.append(f"- (and {len(errors) - MAX_PROBLEMS} more problems)")
    return REPAIR.format(errors="\n".join(lines))


def echoed_answer(answer: str) -> str:
    """The previous answer as it is replayed to the model (bounded: a runaway answer is not resent whole)."""
    # clean_text: a lone surrogate in the answer would make the repair request itself fail to encode.
    if len(answer) <= MAX_ECHOED_ANSWER:
        return clean_text(answer)
    return clean_text(answer[:MAX_ECHOED_ANSWER]) + "\n[... answer cut here ...]"
