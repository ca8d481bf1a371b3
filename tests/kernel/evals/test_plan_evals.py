"""Evaluating the planner: `planner:` files, the plan-functions assertion, and the shipped goals on scripted plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from semantic_kernel.functions import KernelFunctionFromMethod, kernel_function

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.evals import ASSERTIONS, AssertionResult, EvalFile, EvalFileError, Output, load_eval_file
from kernel_app.kernel.evals.cache import OutputCache
from kernel_app.kernel.evals.planning import expected_wires
from kernel_app.kernel.evals.runner import Target, cached_runs, run_evals
from kernel_app.providers.scripted import ScriptedChatCompletion
from planners.catalogue import FunctionCatalogue

ROOT = Path(__file__).resolve().parents[3]
GOALS = ROOT / "planners" / "goals.evals.yaml"

POEM_STEPS = [
    {"function": "Writer.ShortPoem", "args": {"input": "Valentine's day"}, "output": "poem"},
    {"function": "Writer.Translate", "args": {"input": "$poem", "language": "French"}, "output": "french"},
]
PLANNER_EVAL = """description: the planner writes, then translates
planner: sequential
cases:
  - input: Write a poem about Valentine's day and translate it to French.
    assert:
      - {type: plan-functions, value: [Writer.ShortPoem, Writer.Translate], wires: chain}
"""


def plan(*steps: dict[str, Any]) -> str:
    return json.dumps({"goal": "a goal", "steps": list(steps)})


def check(text: str, **params: Any) -> AssertionResult:
    result = ASSERTIONS["plan-functions"].check(Output(text), params, None)
    assert result.type == "plan-functions" and 0.0 <= result.score <= 1.0 and "\n" not in result.reason
    return result


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plans.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def target(*answers: str) -> tuple[Target, ScriptedChatCompletion]:
    service = ScriptedChatCompletion(answers, ai_model_id="scripted")
    built = build_kernel(Settings(), chat_service=service)
    return Target("scripted", built.kernel, built.report), service


# -- the assertion ----------------------------------------------------------------------------------------------


def test_the_exact_sequence_wired_as_expected_passes() -> None:
    result = check(plan(*POEM_STEPS), value=["Writer.ShortPoem", "Writer.Translate"], wires="chain")
    assert result.passed and result.score == 1.0
    assert result.reason == "planned Writer.ShortPoem → Writer.Translate, 1 wire(s) as expected"
    assert check(plan(*POEM_STEPS), value=["Writer.ShortPoem", "Writer.Translate"], wires=[[2, 1]]).passed


def test_either_of_a_choice_counts() -> None:
    today = {"function": "Time.date", "args": {}, "output": "today"}
    assert check(plan(today), value=["Time.today|Time.date"]).passed
    assert not check(plan(today), value=["Time.today|Time.now"]).passed


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        (POEM_STEPS[:1], "planned Writer.ShortPoem, expected Writer.ShortPoem → Writer.Translate"),
        (
            [*POEM_STEPS, {"function": "Text.upper", "args": {"input": "$french"}, "output": "loud"}],
            "planned Writer.ShortPoem → Writer.Translate → Text.upper, expected Writer.ShortPoem → Writer.Translate",
        ),
        (POEM_STEPS[::-1], "planned Writer.Translate → Writer.ShortPoem, expected Writer.ShortPoem → Writer.Translate"),
    ],
)
def test_another_sequence_fails_saying_both(steps: list[dict[str, Any]], reason: str) -> None:
    result = check(plan(*steps), value=["Writer.ShortPoem", "Writer.Translate"], wires="chain")
    assert not result.passed and result.score == 0.0 and result.reason == reason


def test_a_step_that_repeats_the_goal_instead_of_the_earlier_output_is_not_wired() -> None:
    unwired = [
        POEM_STEPS[0],
        {**POEM_STEPS[1], "args": {"input": "a poem about Valentine's day", "language": "French"}},
    ]
    result = check(plan(*unwired), value=["Writer.ShortPoem", "Writer.Translate"], wires="chain")
    assert not result.passed and result.score == 0.5  # the sequence is right, the one wire is not
    assert result.reason.startswith("step 2 (Writer.Translate) does not take step 1's output $poem: Writer.Translate(")
    assert check(plan(*unwired), value=["Writer.ShortPoem", "Writer.Translate"]).passed  # no wires asked


def test_an_output_that_is_not_a_plan_fails() -> None:
    assert check("Here is a poem.", value=["Writer.ShortPoem"]).reason.startswith(
        "the output is not a valid plan: not valid JSON"
    )
    assert not check('{"steps": [{"function": "Writer.ShortPoem"}]}', value=["Writer.ShortPoem"]).passed


def test_chain_wires_every_step_to_the_one_before() -> None:
    assert expected_wires({"value": ["A.a", "B.b", "C.c"], "wires": "chain"}) == [(2, 1), (3, 2)]
    assert expected_wires({"value": ["A.a", "B.b", "C.c"], "wires": [[3, 1]]}) == [(3, 1)]
    assert expected_wires({"value": ["A.a"]}) == []


# -- loading ------------------------------------------------------------------------------------------------------


def test_a_planner_file_loads_with_goals_as_cases(tmp_path: Path) -> None:
    eval_file = load_eval_file(write(tmp_path, PLANNER_EVAL))
    assert (eval_file.planner, eval_file.function) == ("sequential", "planner:sequential")
    assert eval_file.cases[0].vars == {"input": "Write a poem about Valentine's day and translate it to French."}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("planner: sequential", "planner: sequental"),
            "plans.yaml:2: planner: unknown planner 'sequental': did you mean 'sequential'?",
        ),
        (
            ("planner: sequential", "planner: function-calling"),
            "plans.yaml:2: planner: function-calling makes no plan to evaluate: use one of sequential, action",
        ),
        (
            ("planner: sequential", "planner: sequential\nfunction: Writer.Summarize"),
            "plans.yaml:2: planner: a file evaluates a function or a planner, not both: drop `function:`",
        ),
        (
            ("  - input: Write", "  - vars: {language: French}\n    description: Write"),
            "plans.yaml:3: cases[0].input: a planner's case needs a goal: add `input: GOAL`",
        ),
        (
            ("[Writer.ShortPoem, Writer.Translate]", "[ShortPoem, Translate]"),
            "plans.yaml:6: cases[0].assert[0].value: list the expected functions in order, as Plugin.Function",
        ),
        (("wires: chain", "wires: all"), "cases[0].assert[0].wires: 'all' is not 'chain' nor a list"),
        (("wires: chain", "wires: [[1, 2]]"), "cases[0].assert[0].wires: [1, 2] is not [step, earlier step]"),
        (("wires: chain", "wires: [[3, 1]]"), "with 1 <= earlier < step <= 2 (step numbers count from 1)"),
        (("type: plan-functions, value:", "type: plan-function, value:"), "did you mean 'plan-functions'?"),
        (
            ("planner: sequential", "function: Writer.ShortPoem"),
            "plans.yaml:6: cases[0].assert: plan-functions checks a plan, and this file evaluates a function: "
            "say `planner: sequential` at the top instead of `function:`",
        ),
    ],
)
def test_bad_planner_files_are_one_line_errors(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    assert change[0] in PLANNER_EVAL
    with pytest.raises(EvalFileError) as raised:
        load_eval_file(write(tmp_path, PLANNER_EVAL.replace(*change)))
    assert message in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


# -- running ------------------------------------------------------------------------------------------------------


async def test_the_planner_runs_on_each_goal_and_its_plan_is_checked(tmp_path: Path) -> None:
    eval_file = load_eval_file(write(tmp_path, PLANNER_EVAL))
    model, service = target(plan(*POEM_STEPS))
    (result,) = await run_evals([eval_file], [model])
    assert result.passed, result.reason
    assert (result.function, result.model) == ("planner:sequential", "scripted")
    assert json.loads(result.output.text)["steps"][1]["args"] == {"input": "$poem", "language": "French"}
    assert result.output.usage.completion_tokens > 0  # the planner's tokens are the output's
    assert "Write a poem about Valentine's day" in service.requests[0].prompt  # the goal reached the planner


async def test_a_planner_that_never_makes_a_valid_plan_is_the_cases_error(tmp_path: Path) -> None:
    eval_file = load_eval_file(write(tmp_path, PLANNER_EVAL))
    bad = plan({"function": "Writer.NoSuchFunction", "args": {}, "output": "x"})
    model, service = target(*[bad] * 4)  # the first answer and three repairs
    (result,) = await run_evals([eval_file], [model])
    assert not result.passed and result.assertions == []
    assert result.reason.startswith("error: no valid plan after 4 answer(s) (3 repair(s)): ")
    assert len(service.requests) == 4


async def test_a_wrong_plan_fails_its_case_with_the_sequence(tmp_path: Path) -> None:
    eval_file = load_eval_file(write(tmp_path, PLANNER_EVAL))
    model, _ = target(plan(POEM_STEPS[0]))
    (result,) = await run_evals([eval_file], [model])
    assert result.reason == "plan-functions: planned Writer.ShortPoem, expected Writer.ShortPoem → Writer.Translate"


async def test_a_plan_is_cached_under_what_the_planner_is_shown(tmp_path: Path) -> None:
    eval_file = load_eval_file(write(tmp_path, PLANNER_EVAL))
    cache = OutputCache(tmp_path / "eval-cache.sqlite3")
    model, service = target(plan(*POEM_STEPS))
    (fresh,) = await run_evals([eval_file], [model], cache=cache)
    assert fresh.passed and not fresh.cached and len(service.requests) == 1

    again, service = target()  # no answer queued: a planner call would fail the case
    assert await cached_runs([eval_file], again, cache=cache) == {(str(eval_file.path), "case-1", 1)}
    (reused,) = await run_evals([eval_file], [again], cache=cache)
    assert reused.cached and reused.passed and service.requests == []
    assert reused.output.text == fresh.output.text

    # One more function to choose from is another question: the plan is made anew.
    more, service = target(plan(*POEM_STEPS))
    more.kernel.add_function("Extra", KernelFunctionFromMethod(method=_shout, plugin_name="Extra"))
    assert await cached_runs([eval_file], more, cache=cache) == set()
    (remade,) = await run_evals([eval_file], [more], cache=cache)
    assert not remade.cached and len(service.requests) == 1
    cache.close()


async def test_a_planner_that_gives_up_is_not_cached(tmp_path: Path) -> None:
    eval_file = load_eval_file(write(tmp_path, PLANNER_EVAL))
    cache = OutputCache(tmp_path / "eval-cache.sqlite3")
    bad = plan({"function": "Writer.NoSuchFunction", "args": {}, "output": "x"})
    model, _ = target(*[bad] * 4)
    (failed,) = await run_evals([eval_file], [model], cache=cache)
    assert failed.output.error is not None
    assert await cached_runs([eval_file], model, cache=cache) == set()  # the next run asks the planner again
    cache.close()


@kernel_function(name="shout", description="Says the input loudly.")
def _shout(input: str) -> str:
    return input.upper()


# -- the shipped goals -------------------------------------------------------------------------------------------


def scripted_plan(functions: list[str], wires: list[tuple[int, int]], catalogue: FunctionCatalogue) -> str:
    """A plan a good model would make: the expected functions (the first of each choice), each required
    argument given, and every wired step fed the earlier step's output through its first argument."""
    steps: list[dict[str, Any]] = []
    for number, choice in enumerate(functions, 1):
        name = choice.split("|")[0]
        info = catalogue.functions[name]
        feeds = {earlier for step, earlier in wires if step == number}
        args: dict[str, Any] = {}
        for parameter in info.parameters:
            if not parameter.required:
                continue
            if feeds:
                args[parameter.name] = f"$s{feeds.pop()}"
            else:
                args[parameter.name] = 2 if parameter.type in ("number", "integer") else "French"
        steps.append({"function": name, "args": args, "output": f"s{number}"})
    return plan(*steps)


def test_the_shipped_goals_are_the_benchs_22_and_name_functions_that_exist() -> None:
    eval_file = load_eval_file(GOALS)
    assert eval_file.planner == "sequential" and len(eval_file.cases) == 22
    service = ScriptedChatCompletion()
    catalogue = FunctionCatalogue.from_kernel(build_kernel(Settings(), chat_service=service).kernel)
    named = {name for case in eval_file.cases for name in case.asserts[0].params["value"]}
    unknown = {choice for name in named for choice in name.split("|") if choice not in catalogue.functions}
    assert not unknown
    multi = [case for case in eval_file.cases if len(case.asserts[0].params["value"]) > 1]
    assert len(multi) == 8 and all(case.asserts[0].params.get("wires") == "chain" for case in multi)


async def test_the_shipped_goals_pass_on_good_scripted_plans_and_fail_on_a_wrong_one() -> None:
    eval_file = load_eval_file(GOALS)
    service = ScriptedChatCompletion()
    built = build_kernel(Settings(), chat_service=service)
    catalogue = FunctionCatalogue.from_kernel(built.kernel)
    for case in eval_file.cases:
        params = case.asserts[0].params
        service.queue(scripted_plan(list(params["value"]), expected_wires(params), catalogue))
    # The plain subtraction question planned as a prompt function, as the embedded model once did.
    subtraction = next(i for i, c in enumerate(eval_file.cases) if c.vars["input"] == "Subtract 5 from 20.")
    strategies = plan({"function": "BusinessThinking.BasicStrategies", "args": {"input": "$goal"}, "output": "s1"})
    results = await run_evals([eval_file], [Target("scripted", built.kernel, built.report)])
    assert [r.reason for r in results if not r.passed] == []
    again = EvalFile(eval_file.path, eval_file.function, cases=[eval_file.cases[subtraction]], planner="sequential")
    service.queue(strategies.replace("$goal", "Subtract 5 from 20."))
    (wrong,) = await run_evals([again], [Target("scripted", built.kernel, built.report)])
    assert wrong.reason == "plan-functions: planned BusinessThinking.BasicStrategies, expected Math.subtract"
