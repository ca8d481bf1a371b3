"""One validation for every plan: from a planner, from a saved file, or edited at approval time.

Rules (each failure a typed :class:`PlanValidationError` that names the step and function):

- the plan has at least one step and at most ``max_steps``;
- each function is in the catalogue (an excluded one is reported as excluded, an unknown one with the
  closest names);
- each argument is a parameter of the function; each required parameter is given (explicitly: there is
  no implicit chaining of the previous output into ``input``);
- each ``$name`` is the output of an EARLIER step or an input variable given at execution;
- output names are identifiers of at most 64 characters, unique, and distinct from the input variables;
- each argument value is one a plan may hold (``planners.values``: bounded depth, finite numbers,
  valid text), and ``null`` for a required parameter counts as missing (the executor applies the same
  rule right before invoking).

Model text in the messages (names, keys) is quoted escaped and shortened (``planners.quoting``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from planners.catalogue import FunctionCatalogue, FunctionInfo
from planners.errors import (
    BareReferenceError,
    DuplicateOutputError,
    EmptyPlanError,
    ExcludedFunctionError,
    InvalidArgumentValueError,
    InvalidOutputNameError,
    MissingArgumentError,
    PlanValidationError,
    TooManyStepsError,
    UndefinedReferenceError,
    UnknownArgumentError,
    UnknownFunctionError,
)
from planners.plan import OUTPUT_NAME, Plan
from planners.quoting import quoted, shortened
from planners.values import value_problem

DEFAULT_MAX_STEPS = 10
MAX_OUTPUT_NAME = 64  # a name to refer to, not a place for text


def validate_plan(
    plan: Plan,
    catalogue: FunctionCatalogue,
    *,
    inputs: Iterable[str] = (),
    max_steps: int = DEFAULT_MAX_STEPS,
) -> None:
    """Raise the first problem (with every problem in ``.problems``), or return None for a valid plan."""
    problems = find_problems(plan, catalogue, inputs=inputs, max_steps=max_steps)
    if problems:
        first = problems[0]
        first.problems = problems
        raise first


def find_problems(
    plan: Plan,
    catalogue: FunctionCatalogue,
    *,
    inputs: Iterable[str] = (),
    max_steps: int = DEFAULT_MAX_STEPS,
) -> list[PlanValidationError]:
    inputs = list(dict.fromkeys(inputs))
    if not plan.steps:
        return [EmptyPlanError("the plan has no steps: give at least one step")]
    problems: list[PlanValidationError] = []
    if len(plan.steps) > max_steps:
        # Checking each step of a runaway list would only bury this one useful message.
        return [TooManyStepsError(f"the plan has {len(plan.steps)} steps; at most {max_steps} are allowed")]
    producers = {step.output: number for number, step in enumerate(plan.steps, 1)}
    defined: dict[str, int] = {}
    for number, step in enumerate(plan.steps, 1):
        name = step.function
        problems += _function_problems(number, name, step.args, catalogue)
        for reference in step.references():
            if reference in defined or reference in inputs:
                continue
            problems.append(_undefined(number, name, reference, producers, defined, inputs))
        output = step.output
        if not OUTPUT_NAME.match(output) or len(output) > MAX_OUTPUT_NAME:
            problems.append(
                InvalidOutputNameError(
                    f"output name {quoted(output)} is not a name: use up to {MAX_OUTPUT_NAME} letters, digits and _ "
                    "(e.g. 'poem')",
                    step=number,
                    function=name,
                )
            )
        elif output in defined:
            problems.append(
                DuplicateOutputError(
                    f"output {quoted(output)} is already the output of step {defined[output]}: "
                    "give each step its own name",
                    step=number,
                    function=name,
                )
            )
        elif output in inputs:
            problems.append(
                DuplicateOutputError(
                    f"output {quoted(output)} is the name of an input variable: choose another name",
                    step=number,
                    function=name,
                )
            )
        defined.setdefault(output, number)
    return problems


def _function_problems(
    number: int, name: str, args: dict[str, object], catalogue: FunctionCatalogue
) -> list[PlanValidationError]:
    info = catalogue.get(name)
    if info is None:
        if name in catalogue.excluded:
            return [ExcludedFunctionError(f"{name} is excluded from this plan: use another function", step=number)]
        close = catalogue.close_matches(name)
        hint = f"did you mean {' or '.join(close)}?" if close else "use only the functions listed"
        return [UnknownFunctionError(f"unknown function {quoted(name)}: {hint}", step=number)]
    problems: list[PlanValidationError] = []
    parameters = info.parameter_names
    listed = ", ".join(parameters) if parameters else "none"
    for argument, value in args.items():
        if argument not in parameters:
            problems.append(
                UnknownArgumentError(
                    f"unknown argument {quoted(argument)}; parameters are {listed}", step=number, function=name
                )
            )
            continue
        problem = value_problem(value)
        if problem is not None:
            problems.append(InvalidArgumentValueError(f"argument '{argument}': {problem}", step=number, function=name))
    for parameter in info.parameters:
        if not parameter.required:
            continue
        about = f" ({parameter.description})" if parameter.description else ""
        if parameter.name not in args:
            problems.append(
                MissingArgumentError(f"missing required argument '{parameter.name}'{about}", step=number, function=name)
            )
        elif args[parameter.name] is None:
            problems.append(
                MissingArgumentError(
                    f"required argument '{parameter.name}'{about} is null: give it a value", step=number, function=name
                )
            )
    return problems


def null_required(info: FunctionInfo, args: Mapping[str, object]) -> str | None:
    """The first required parameter of ``info`` given as null (None), else None: the rule at invocation."""
    return next((p.name for p in info.parameters if p.required and p.name in args and args[p.name] is None), None)


def _undefined(
    number: int,
    function: str,
    reference: str,
    producers: dict[str, int],
    defined: dict[str, int],
    inputs: list[str],
) -> UndefinedReferenceError:
    later = producers.get(reference)
    if later is not None and later >= number:
        when = "this step" if later == number else f"step {later}, which runs later"
        return UndefinedReferenceError(
            f"{quoted('$' + reference)} is the output of {when}: a step can only use earlier outputs",
            step=number,
            function=function,
        )
    known = [shortened(f"${n}", 40) for n in [*defined, *inputs]][:10]
    available = f"available are {', '.join(known)}" if known else "no earlier outputs or input variables exist"
    return UndefinedReferenceError(
        f"{quoted('$' + reference)} is not defined: {available} (a literal text is written without $)",
        step=number,
        function=function,
    )


def bare_references(plan: Plan) -> list[PlanValidationError]:
    """Arguments whose value is exactly the name of an EARLIER step's output, without ``$``.

    Not a rule of the plan format (a saved plan may pass the word "poem" as text): the planners apply it
    to model answers, where ``"input": "poem"`` after a step whose output is ``poem`` is a forgotten
    ``$`` (seen on Qwen2.5-Coder-1.5B; docs/models.md). Running it would translate the word "poem"; a repair turn asks.
    """
    problems: list[PlanValidationError] = []
    earlier: dict[str, int] = {}
    for number, step in enumerate(plan.steps, 1):
        for argument, value in step.args.items():
            if isinstance(value, str) and value.strip() in earlier:
                name = value.strip()
                problems.append(
                    BareReferenceError(
                        f"argument '{argument}' is the text {quoted(name)}, the name of step {earlier[name]}'s "
                        f'output: write "${name}" to use that output',
                        step=number,
                        function=step.function,
                    )
                )
        earlier.setdefault(step.output, number)
    return problems
