"""Functions are ranked by what a goal asks for, not by the text it hands over to be worked on.

"Summarize this text: the shop sells pizza and pasta every day of the week..." ranked Time.dayOfWeek
first, and Qwen2.5-Coder-1.5B planned Time.dayOfWeek → Text.lower → Writer.Summarize (docs/planner.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from planners import SequentialPlanner
from planners.catalogue import FunctionCatalogue, FunctionInfo
from planners.relevance import MATERIAL_WEIGHT, most_relevant, request_text
from planners.schema import function_names_in

SUMMARY = "Summarize this text: the shop sells pizza and pasta every day of the week, and delivers at night."
ITALIAN = (
    "Summarize this text in a few words, then translate the summary into Italian: our bakery opens at six, "
    "bakes sourdough bread every morning and closes on Mondays."
)
COMMENTS = (
    "Customer comments: 'The pizza was cold. Great staff! We waited 40 minutes.' Analyse the sentiment of "
    "these comments, then turn the analysis into problem definitions."
)


@pytest.mark.parametrize(
    ("goal", "request_part"),
    [
        (SUMMARY, "Summarize this text:"),
        (ITALIAN, "Summarize this text in a few words, then translate the summary into Italian:"),
        # a quotation after the colon is the material, the next sentence is the request again
        (
            COMMENTS,
            "Customer comments: Analyse the sentiment of these comments, then turn the analysis into problem "
            "definitions.",
        ),
        ("Translate 'good morning, my friend' into Spanish.", "Translate into Spanish."),
        ('Count the letters of "semantic kernel", please', "Count the letters of , please"),
        ("Summarize: a b c. Translate it into French.", "Summarize: Translate it into French."),
        # apostrophes inside words open no quotation; a goal without material is left alone
        ("Tomorrow is Valentine's day. Write Bob's poem.", "Tomorrow is Valentine's day. Write Bob's poem."),
        ("What is 1234 times 5678?", "What is 1234 times 5678?"),
        ("Time:10", "Time:10"),  # no space after the colon: not an introduction
    ],
)
def test_the_request_is_the_goal_without_its_material(goal: str, request_part: str) -> None:
    assert request_text(goal) == request_part


@pytest.fixture(scope="module")
def catalogue() -> FunctionCatalogue:
    kernel = build_kernel(Settings(), chat_service=ScriptedChatCompletion()).kernel
    return SequentialPlanner(kernel).catalogue


@pytest.mark.parametrize(
    ("goal", "first", "behind"),
    [
        (SUMMARY, "Writer.Summarize", "Time.dayOfWeek"),
        (ITALIAN, "Writer.Summarize", "Time.dayOfWeek"),
        ("Translate 'what day of the week is it' into Spanish.", "Writer.Translate", "Time.dayOfWeek"),
    ],
)
async def test_the_text_to_work_on_does_not_choose_the_functions(
    catalogue: FunctionCatalogue, goal: str, first: str, behind: str
) -> None:
    ranked = await most_relevant(goal, catalogue, 8)
    assert ranked[0] == first
    assert behind not in ranked or ranked.index(behind) > ranked.index(first)


async def test_both_texts_go_to_the_relevance_hook_and_the_whole_goal_weighs_less() -> None:
    infos = [FunctionInfo("P", name) for name in ("A", "B", "C")]
    catalogue = FunctionCatalogue.from_functions(infos)
    asked: list[str] = []

    def relevance(text: str, functions: Sequence[FunctionInfo]) -> list[float]:
        asked.append(text)
        # the request favours C; the whole goal (its material) favours A, by more but at half the weight
        return [0.0, 0.1, 0.4] if text == "Do C:" else [0.6, 0.1, 0.0]

    assert await most_relevant("Do C: stuff about A.", catalogue, 2, relevance) == ["P.C", "P.A"]
    assert asked == ["Do C: stuff about A.", "Do C:"]
    assert MATERIAL_WEIGHT == 0.5  # C 0.4, A 0.3, B 0.15
    asked.clear()
    await most_relevant("Do A and B", catalogue, 2, relevance)
    assert asked == ["Do A and B"]  # nothing to take out: one ranking


async def test_where_the_material_was_the_request_the_whole_goals_order_stays() -> None:
    infos = [FunctionInfo("P", name) for name in ("A", "B", "C")]

    def relevance(text: str, functions: Sequence[FunctionInfo]) -> list[float]:
        return [0.0, 0.0, 0.0] if text == "Two tasks:" else [0.1, 0.3, 0.2]

    ranked = await most_relevant("Two tasks: do B then C.", FunctionCatalogue.from_functions(infos), 2, relevance)
    assert ranked == ["P.B", "P.C"]


async def test_a_number_question_is_offered_the_functions_that_compute(catalogue: FunctionCatalogue) -> None:
    # Padded in name order, "Subtract 5 from 20." was offered Math.subtract beside BusinessThinking prompt
    # functions (its "5" matched DesignThinking's "5 ideas" too), and the 1.5B planned BasicStrategies.
    offered = await most_relevant("Subtract 5 from 20.", catalogue, 8, unrelated=False)
    assert offered[0] == "Math.subtract"
    assert set(offered) == {"Math.add", "Math.subtract", "Math.multiply", "Math.divide"}
    # the chat engine still gets a full list, Math's other functions first
    padded = await most_relevant("Subtract 5 from 20.", catalogue, 8)
    assert len(padded) == 8 and set(padded[:4]) == set(offered)


@pytest.mark.parametrize(
    "goal",
    [
        "Write a SWOT analysis of a family-run bakery in a small town.",
        "Write a SWOT analysis of a coffee shop and rewrite it so that a child can understand it.",
    ],
)
async def test_a_swot_goal_is_offered_the_swot_before_its_draft(catalogue: FunctionCatalogue, goal: str) -> None:
    # SWOTDraft is the SWOT's own first step. Offered beside the SWOT, the 1.5B planned SWOTDraft ->
    # ChangeAudience for the coffee shop (planners/goals.evals.yaml, case 18); a description of it that
    # repeats "SWOT analysis" would rank it first.
    offered = await most_relevant(goal, catalogue, 8, unrelated=False)
    assert offered.index("BusinessThinking.SWOT") < offered.index("BusinessThinking.SWOTDraft")


async def test_a_number_in_the_goal_chooses_no_function() -> None:
    infos = [
        FunctionInfo("Math", "subtract", "Subtract b from a"),
        FunctionInfo("Ideas", "Test", "Give 5 ideas"),
        FunctionInfo("Ideas", "List", "Give 20 ideas"),
    ]
    catalogue = FunctionCatalogue.from_functions(infos)
    assert (await most_relevant("Subtract 5 from 20.", catalogue, 2))[0] == "Math.subtract"
    assert await most_relevant("Subtract 5 from 20.", catalogue, 2, unrelated=False) == ["Math.subtract"]


async def test_ties_go_to_the_plugin_of_the_best_match_and_nothing_matching_keeps_every_function() -> None:
    infos = [
        FunctionInfo("A", "Alpha", "writes text"),
        FunctionInfo("A", "Beta", "writes text"),
        FunctionInfo("Z", "Add", "adds two numbers"),
        FunctionInfo("Z", "Divide", "divides one number by another"),
    ]
    catalogue = FunctionCatalogue.from_functions(infos)
    assert await most_relevant("add 2 and 3", catalogue, 3) == ["Z.Add", "Z.Divide", "A.Alpha"]
    assert await most_relevant("add 2 and 3", catalogue, 3, unrelated=False) == ["Z.Add", "Z.Divide"]
    # a goal that shares no word with any function is offered the first ones in name order, as before
    assert await most_relevant("hello there", catalogue, 2, unrelated=False) == ["A.Alpha", "A.Beta"]


async def test_the_planners_offer_no_unrelated_function(kernel, scripted: ScriptedChatCompletion) -> None:
    # A cut-off answer first (a repair turn), then the plan: neither turn is offered a prompt function,
    # in the prompt or in the schema that constrains the embedded model's answer.
    scripted.queue(
        '{"steps": [{"function": "Math.subtract", "args": {"a": 20,',
        '{"steps": [{"function": "Math.subtract", "args": {"a": 20, "b": 5}, "output": "difference"}]}',
    )
    planner = SequentialPlanner(kernel, max_functions=8)
    plan = await planner.create_plan("Subtract 5 from 20.")
    assert plan.functions == ["Math.subtract"] and len(scripted.requests) == 2
    assert planner.last_offered[0] == "Math.subtract" and len(planner.last_offered) == 4
    for request in scripted.requests:
        assert "Math.subtract(a, b)" in request.prompt and "BusinessThinking" not in request.prompt
        schema = request.settings["response_format"]["json_schema"]["schema"]
        assert sorted(function_names_in(schema)) == ["Math.add", "Math.divide", "Math.multiply", "Math.subtract"]
