"""The sequential and action planners over the scripted chat service: the adversarial corpus and the course goals.

Every answer of the corpus either yields a valid plan within the repair budget or ends in a typed
PlanningError; nothing else escapes, and no function outside the catalogue is ever executed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from planners import (
    ActionPlanner,
    ExcludedFunctionError,
    FunctionCatalogue,
    MissingArgumentError,
    NoFunctionFits,
    Plan,
    PlanExecutor,
    PlannerServiceError,
    PlanningError,
    PlanParseError,
    SequentialPlanner,
    TooManyStepsError,
    UndefinedReferenceError,
    UnknownArgumentError,
    UnknownFunctionError,
    validate_plan,
)
from planners.errors import EmptyPlanError, InvalidOutputNameError, PlanFormatError
from planners.schema import function_names_in
from tests.support.spies import count_invocations

VALENTINE_GOAL = "Tomorrow is Valentine's day. I need to come up with a poem. Translate the poem to French."
SUM_GOAL = "What is the sum of 110 and 990?"
EXCLUDED = ["Time", "Writer.Summarize"]

STEPS = [
    {"function": "Writer.ShortPoem", "args": {"input": "Valentine's day"}, "output": "poem"},
    {"function": "Writer.Translate", "args": {"input": "$poem", "language": "French"}, "output": "french"},
]
VALID = json.dumps({"steps": STEPS})


def steps_with(**changes: Any) -> str:
    """VALID with the second step changed."""
    second = {**STEPS[1], **changes}
    return json.dumps({"steps": [STEPS[0], second]})


# (id, answer, expected error type or None when the answer is tolerated as it is)
CORPUS: list[tuple[str, str, type[Exception] | None]] = [
    # tolerated: a valid plan at the first answer
    ("fenced-json", f"```json\n{VALID}\n```", None),
    ("prose-around-json", f"Sure! Here is your plan:\n\n{VALID}\n\nEnjoy your poem.", None),
    ("trailing-commas", VALID.replace('"French"}', '"French",}').replace("}]}", "},]}"), None),
    ("bare-list", json.dumps(STEPS), None),
    ("hyphen-names", VALID.replace("Writer.", "Writer-"), None),
    ("template-refs", VALID.replace('"$poem"', '"{{$poem}}"'), None),
    # repaired: a repair turn is needed
    ("prose-only", "First I will write a lovely poem, then I will translate it into French for you.", PlanParseError),
    ("plain-refusal", "I'm sorry, but I can't help with that request.", PlanParseError),
    ("empty-answer", "", PlanParseError),
    ("whitespace-answer", "   \n  ", PlanParseError),
    ("truncated-json", VALID[:-25], PlanParseError),
    ("truncated-in-fence", f"```json\n{VALID[:40]}", PlanParseError),
    (
        "sk-xml-plan",
        '<plan>\n  <function.Writer.ShortPoem input="Valentine\'s day" setContextVariable="POEM"/>\n'
        '  <function.Writer.Translate input="$POEM" language="French"/>\n</plan>',
        PlanParseError,
    ),
    ("python-dict", str({"steps": STEPS}), PlanParseError),
    ("json-without-steps", '{"poem": "Roses are red", "translation": "Les roses sont rouges"}', PlanFormatError),
    ("steps-not-a-list", '{"steps": "write a poem, then translate it"}', PlanFormatError),
    ("step-not-an-object", '{"steps": ["Writer.ShortPoem", "Writer.Translate"]}', PlanFormatError),
    ("args-not-an-object", steps_with(args="the poem, in French"), PlanFormatError),
    ("unknown-function", steps_with(function="Writer.TranslatePoem"), UnknownFunctionError),
    ("made-up-plugin", steps_with(function="Email.Send"), UnknownFunctionError),
    ("excluded-plugin", steps_with(function="Time.today", args={}), ExcludedFunctionError),
    ("excluded-function", steps_with(function="Writer.Summarize", args={"input": "$poem"}), ExcludedFunctionError),
    ("wrong-argument-name", steps_with(args={"input": "$poem", "to": "French"}), UnknownArgumentError),
    ("missing-required-argument", steps_with(args={"input": "$poem"}), MissingArgumentError),
    ("implicit-chaining", steps_with(args={"language": "French"}), MissingArgumentError),
    ("undefined-reference", steps_with(args={"input": "$draft", "language": "French"}), UndefinedReferenceError),
    ("forward-reference", json.dumps({"steps": [STEPS[1], STEPS[0]]}), UndefinedReferenceError),
    ("invalid-output-name", steps_with(output="the french poem"), InvalidOutputNameError),
    ("empty-plan", '{"steps": []}', EmptyPlanError),
    (
        "runaway-steps",
        json.dumps(
            {"steps": [{"function": "Text.upper", "args": {"input": "x"}, "output": f"s{i}"} for i in range(60)]}
        ),
        TooManyStepsError,
    ),
    ("huge-garbage", "lorem ipsum " * 20_000, PlanParseError),
    ("mismatched-brackets", VALID.replace("}]}", "]]}"), PlanParseError),
]


def test_the_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 25
    assert sum(1 for *_, error in CORPUS if error is not None) >= 25


@pytest.mark.parametrize(("name", "answer", "error"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_corpus_answer_is_repaired_within_budget(
    name: str, answer: str, error: type[Exception] | None, kernel, scripted: ScriptedChatCompletion
) -> None:
    invoked = count_invocations(kernel)
    scripted.queue(answer, VALID)
    planner = SequentialPlanner(kernel, excluded=EXCLUDED, max_repairs=3)
    plan = await planner.create_plan(VALENTINE_GOAL)
    assert plan == Plan(goal=VALENTINE_GOAL, steps=Plan.from_dict({"steps": STEPS}).steps)
    validate_plan(plan, planner.catalogue)
    if error is None:
        assert len(scripted.requests) == 1 and len(planner.last_attempts) == 1
    else:
        assert len(scripted.requests) == 2, "exactly one repair turn"
        first_error = planner.last_attempts[0].error
        assert isinstance(first_error, error), f"{name}: {first_error!r}"
        repair = scripted.requests[1]
        assert str(getattr(first_error, "message", first_error)) in repair.prompt  # the error is quoted
        assert answer.strip()[:200] in repair.prompt  # and so is the previous answer (bounded)
        assert repair.messages[-2]["role"] == "assistant"
    # Run it: only catalogue functions execute.
    result = await PlanExecutor(kernel, catalogue=planner.catalogue).execute(plan)
    assert result.result == "scripted function output"
    assert invoked == ["Writer.ShortPoem", "Writer.Translate"]


@pytest.mark.parametrize(
    ("name", "answer", "error"), [c for c in CORPUS if c[2] is not None], ids=[c[0] for c in CORPUS if c[2]]
)
async def test_corpus_answer_repeated_ends_in_planning_error(
    name: str, answer: str, error: type[Exception], kernel, scripted: ScriptedChatCompletion
) -> None:
    invoked = count_invocations(kernel)
    scripted.queue(*[answer] * 4)
    planner = SequentialPlanner(kernel, excluded=EXCLUDED, max_repairs=3)
    with pytest.raises(PlanningError) as caught:
        await planner.create_plan(VALENTINE_GOAL)
    failure = caught.value
    assert type(failure) is PlanningError and failure.exit_code == 3
    assert len(failure.attempts) == 4 and len(scripted.requests) == 4
    assert all(a.answer == answer and isinstance(a.error, error) for a in failure.attempts)
    assert "\n" not in str(failure) and "after 4 answer(s) (3 repair(s))" in str(failure)
    assert answer[:50] in failure.debug_report()
    assert invoked == []


async def test_budget_is_max_repairs(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue("nope", "still nope", VALID)
    with pytest.raises(PlanningError) as caught:
        await SequentialPlanner(kernel, max_repairs=1).create_plan(VALENTINE_GOAL)
    assert [a.answer for a in caught.value.attempts] == ["nope", "still nope"]
    assert scripted.remaining == 1  # the valid answer was never asked for
    await SequentialPlanner(kernel, max_repairs=0).create_plan(VALENTINE_GOAL)
    scripted.queue("no plan at all")
    with pytest.raises(PlanningError):
        await SequentialPlanner(kernel, max_repairs=0).create_plan(VALENTINE_GOAL)


async def test_repair_turn_replays_only_the_last_answer(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue("first bad answer", "second bad answer", VALID)
    await SequentialPlanner(kernel).create_plan(VALENTINE_GOAL)
    third = scripted.requests[2]
    assert "second bad answer" in third.prompt and "first bad answer" not in third.prompt
    assert len(third.messages) == 4  # system, goal, previous answer, what was wrong
    assert scripted.requests[0].settings["temperature"] == 0.0 and third.settings["temperature"] == 0.5


async def test_valentine_goal_gives_a_multi_step_plan_ending_in_translate(
    kernel, scripted: ScriptedChatCompletion
) -> None:
    answer = (
        "To reach the goal I will write a poem and translate it.\n```json\n"
        + json.dumps(
            {
                "steps": [
                    {"function": "Writer.ShortPoem", "args": {"input": "Valentine's day, tomorrow"}, "output": "poem"},
                    {"function": "Writer.Translate", "args": {"input": "$poem", "language": "French"}, "output": "fr"},
                ]
            },
            indent=2,
        )
        + "\n```"
    )
    scripted.queue(answer, "Roses are red, my love", "Les roses sont rouges, mon amour")
    planner = SequentialPlanner(kernel, excluded=["Time"])
    plan = await planner.create_plan(VALENTINE_GOAL)
    assert len(plan.steps) >= 2 and plan.steps[-1].function == "Writer.Translate"
    assert plan.steps[-1].args["language"] == "French" and plan.steps[-1].args["input"] == "$poem"
    request = scripted.requests[0]
    assert VALENTINE_GOAL in request.prompt and "Writer.Translate" in request.prompt
    assert "Time.today" not in request.prompt  # excluded functions are not offered
    # Structured output was requested, with the catalogue as the enum of functions.
    response_format = request.settings["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["strict"] is False
    assert function_names_in(response_format["json_schema"]["schema"]) == planner.catalogue.names
    result = await PlanExecutor(kernel).execute(plan)
    assert result.result == "Les roses sont rouges, mon amour"
    assert "Roses are red, my love" in scripted.requests[2].prompt and "French" in scripted.requests[2].prompt


async def test_sum_goal_picks_math_add_and_gives_1100(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue('{"steps": [{"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}]}')
    planner = ActionPlanner(kernel)
    plan = await planner.create_plan(SUM_GOAL)
    assert [s.function for s in plan.steps] == ["Math.add"]
    assert (
        scripted.requests[0].settings["response_format"]["json_schema"]["schema"]["properties"]["steps"]["maxItems"]
        == 1
    )
    assert "ONE function" in scripted.requests[0].prompt
    result = await PlanExecutor(kernel).execute(plan)
    assert result.result == "1100"


async def test_today_goal_picks_time_today(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue('{"steps": [{"function": "Time.today", "args": {}, "output": "today"}]}')
    plan = await ActionPlanner(kernel).create_plan("What is today?")
    assert plan.functions == ["Time.today"]
    result = await PlanExecutor(kernel).execute(plan)
    assert len(result.result) == 10 and result.result[4] == "-"


async def test_action_planner_repairs_a_multi_step_answer(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue(VALID, '{"steps": [{"function": "Math.add", "args": {"a": 1, "b": 2}, "output": "sum"}]}')
    plan = await ActionPlanner(kernel).create_plan("add 1 and 2")
    assert plan.functions == ["Math.add"]
    assert "at most 1" in scripted.requests[1].prompt


async def test_no_function_fits_is_typed(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue('{"steps": [], "reason": "no function can write files"}')
    with pytest.raises(NoFunctionFits) as caught:
        await ActionPlanner(kernel).create_plan("How do I write the word 'text' to a file?")
    assert caught.value.reason == "no function can write files" and caught.value.exit_code == 3
    assert str(caught.value) == "no function fits the goal: no function can write files"
    assert len(caught.value.attempts) == 1 and isinstance(caught.value, PlanningError)
    scripted.queue('```json\n{"steps": [], "reason": "nothing sends e-mail"}\n```')
    with pytest.raises(NoFunctionFits):
        await SequentialPlanner(kernel).create_plan("e-mail my accountant")


async def test_service_failure_is_a_planning_error_not_a_crash(kernel, scripted: ScriptedChatCompletion) -> None:
    def explode(request) -> str:
        raise ConnectionError("connection refused by 127.0.0.1:1")

    scripted.queue(explode)
    with pytest.raises(PlannerServiceError, match="connection refused") as caught:
        await SequentialPlanner(kernel).create_plan(VALENTINE_GOAL)
    assert "\n" not in str(caught.value)


async def test_without_service_or_functions_or_goal(scripted: ScriptedChatCompletion) -> None:
    bare = build_kernel(Settings(), with_service=False).kernel
    with pytest.raises(PlannerServiceError, match="chat service"):
        await SequentialPlanner(bare).create_plan(VALENTINE_GOAL)
    kernel = build_kernel(Settings(), chat_service=scripted).kernel
    with pytest.raises(PlanningError, match="goal is empty"):
        await SequentialPlanner(kernel).create_plan("  ")
    with pytest.raises(PlanningError, match="no functions"):
        await SequentialPlanner(kernel, included=[]).create_plan(VALENTINE_GOAL)
    assert scripted.requests == []


async def test_input_variables_are_offered_and_validated(kernel, scripted: ScriptedChatCompletion) -> None:
    answer = '{"steps": [{"function": "Writer.Summarize", "args": {"input": "$input"}, "output": "summary"}]}'
    scripted.queue(answer)
    plan = await SequentialPlanner(kernel, inputs=["input"]).create_plan("Summarize the text I give you")
    assert "$input" in scripted.requests[0].prompt
    scripted.queue(answer, answer, answer, answer)
    with pytest.raises(PlanningError, match="not defined"):
        await SequentialPlanner(kernel).create_plan("Summarize the text I give you")
    result = await PlanExecutor(kernel).execute(plan, {"input": "a long text"})
    assert result.result == "scripted function output"
    assert "a long text" in scripted.requests[-1].prompt


async def test_large_catalogue_offers_only_the_most_relevant(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue(VALID)
    planner = SequentialPlanner(kernel, max_functions=5)
    await planner.create_plan(VALENTINE_GOAL)
    offered = planner.last_offered
    assert len(offered) == 5 and {"Writer.ShortPoem", "Writer.Translate"} <= set(offered)
    schema = scripted.requests[0].settings["response_format"]["json_schema"]["schema"]
    assert function_names_in(schema) == offered
    assert "DesignThinking.Ideate" not in scripted.requests[0].prompt


async def test_a_service_can_ask_for_a_smaller_catalogue(kernel) -> None:
    from typing import ClassVar

    class SmallModel(ScriptedChatCompletion):
        planner_max_functions: ClassVar[int] = 3  # as the embedded model declares 5

    small = SmallModel([VALID, VALID], service_id="small")
    kernel.remove_all_services()
    kernel.add_service(small)
    planner = SequentialPlanner(kernel)
    await planner.create_plan(VALENTINE_GOAL)
    assert len(planner.last_offered) == 3 and planner.last_offered[0].startswith("Writer.")
    explicit = SequentialPlanner(kernel, max_functions=7)
    await explicit.create_plan(VALENTINE_GOAL)
    assert len(explicit.last_offered) == 7  # an explicit limit (--max-functions) wins


async def test_structured_output_can_be_turned_off(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue(VALID)
    planner = SequentialPlanner(kernel, structured_output=False)
    await planner.create_plan(VALENTINE_GOAL)
    assert "response_format" not in scripted.requests[0].settings
    assert planner.uses_structured_output is False
    assert SequentialPlanner(kernel).uses_structured_output is False  # the scripted service has no such field


async def test_usage_of_planning_is_counted(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue("no", VALID)
    planner = SequentialPlanner(kernel)
    await planner.create_plan(VALENTINE_GOAL)
    assert planner.last_usage.calls == 2 and planner.last_usage.prompt_tokens > 100


def test_catalogue_is_shared_with_the_planner(kernel) -> None:
    catalogue = FunctionCatalogue.from_kernel(kernel, included=["Math"])
    assert SequentialPlanner(kernel, catalogue=catalogue).catalogue is catalogue


@pytest.mark.e2e
async def test_a_plan_can_recall_from_memory_and_use_it(tmp_path, scripted: ScriptedChatCompletion) -> None:
    """The planner uses memory through the memory plugin: recall feeds a prompt function."""
    kernel = build_kernel(Settings(memory_dir=tmp_path / "store"), chat_service=scripted).kernel
    await kernel.invoke(
        kernel.get_function("memory", "save"),
        input="Late-night delivery could bring in more money",
        collection="SWOT",
        id="opportunity-0",
    )
    goal = "Summarize what my saved SWOT notes say about making more money"
    scripted.queue(
        json.dumps(
            {
                "steps": [
                    {
                        "function": "memory.recall",
                        "args": {"input": "making more money", "collection": "SWOT", "min_relevance": 0.1},
                        "output": "notes",
                    },
                    {"function": "Writer.Summarize", "args": {"input": "$notes"}, "output": "summary"},
                ]
            }
        )
    )
    planner = SequentialPlanner(kernel)
    plan = await planner.create_plan(goal)
    assert "memory.recall" in planner.last_offered  # the memory plugin is in the catalogue
    invoked = count_invocations(kernel)
    result = await PlanExecutor(kernel, catalogue=planner.catalogue).execute(plan)
    assert invoked == ["memory.recall", "Writer.Summarize"]
    assert result.outputs["notes"] == "[opportunity-0] Late-night delivery could bring in more money"
    assert "[opportunity-0] Late-night delivery" in scripted.requests[-1].prompt
    assert result.result == "scripted function output"
