"""Near-miss argument names (``topic`` → ``input``): mapped only when unambiguous, noted on the step, shown.

Over the scripted chat service and the real built-in plugins: a mapped name needs no repair turn and
the plan says what was read; an ambiguous or unknown name is never guessed (a repair turn asks again);
a saved plan is never mapped.
"""

from __future__ import annotations

import json

import pytest

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from planners import (
    BareReferenceError,
    FunctionCatalogue,
    Plan,
    PlanExecutor,
    SequentialPlanner,
    UndefinedReferenceError,
    UnknownArgumentError,
    parse_plan_answer,
    validate_plan,
)
from planners.arguments import map_near_misses, names_not_words, same_output
from planners.prompts import system_prompt
from planners.schema import function_names_in

VALID = json.dumps(
    {
        "steps": [
            {"function": "Writer.ShortPoem", "args": {"input": "the sea"}, "output": "poem"},
            {"function": "Writer.Translate", "args": {"input": "$poem", "language": "French"}, "output": "french"},
        ]
    }
)


@pytest.fixture(scope="module")
def catalogue() -> FunctionCatalogue:
    return FunctionCatalogue.from_kernel(build_kernel(Settings(), with_service=False).kernel)


def answer(*steps: tuple[str, dict, str]) -> str:
    return json.dumps({"steps": [{"function": f, "args": a, "output": o} for f, a, o in steps]})


@pytest.mark.parametrize(
    ("function", "args", "expected", "read"),
    [
        # the word is in the parameter's description: "The topic or situation the poem is about"
        ("Writer.ShortPoem", {"topic": "the sea"}, {"input": "the sea"}, {"topic": "input"}),
        # "The text to translate"; one name the prefix or suffix of the other
        ("Writer.Translate", {"text": "hi", "lang": "French"}, {"input": "hi", "language": "French"}, None),
        ("Writer.Translate", {"input": "hi", "target_language": "French"}, {"input": "hi", "language": "French"}, None),
        # the same name spelled differently
        ("Time.date_matching_last_day_name", {"dayName": "Monday"}, {"day_name": "Monday"}, None),
        ("BusinessThinking.ShiftDomain", {"input": "$s", "new-domain": "x"}, {"input": "$s", "domain": "x"}, None),
        # "The first number" is a's description alone
        ("Math.add", {"first_number": 1, "b": 2}, {"a": 1, "b": 2}, {"first_number": "a"}),
    ],
)
def test_an_unambiguous_near_miss_is_mapped_and_noted(
    catalogue: FunctionCatalogue, function: str, args: dict, expected: dict, read: dict | None
) -> None:
    mapped, notes = map_near_misses(catalogue.get(function), args)
    assert mapped == expected
    moved = {key: target for key, target in zip(args, expected, strict=True) if key != target}
    assert notes == [f"argument '{key}' read as '{target}'" for key, target in moved.items()]
    if read is not None:
        assert moved == read


@pytest.mark.parametrize(
    ("function", "args"),
    [
        # "number" fits a ("The first number") and b ("The second number") alike
        ("Math.add", {"number": 110, "other_number": 990}),
        # every parameter of BasicStrategies speaks of "the business"
        ("BusinessThinking.BasicStrategies", {"business": "a pizza shop"}),
        # two names claim input: neither is guessed
        ("Writer.Translate", {"text": "hi", "input_text": "hi", "language": "French"}),
        # input is given already: 'text' is an extra argument, not a second input
        ("Writer.Translate", {"input": "$poem", "text": "hi", "language": "French"}),
        # no evidence at all
        ("Writer.Translate", {"input": "hi", "to": "French"}),
        ("Math.add", {"x": 1, "y": 2}),
        ("Writer.ShortPoem", {"subject": "the sea"}),
        # junk is shown to the model, not read: a key with a newline, one with a trailing newline
        ("Writer.Translate", {"input": "hi", "lang\nuage": "French"}),
        ("Math.add", {"a": 1, "b\n": 2}),
    ],
)
def test_an_ambiguous_or_unknown_name_is_not_mapped(catalogue: FunctionCatalogue, function: str, args: dict) -> None:
    mapped, notes = map_near_misses(catalogue.get(function), args)
    assert (mapped, notes) == (args, [])


async def test_a_mapped_plan_needs_no_repair_and_says_what_was_read(kernel, scripted) -> None:
    scripted.queue(
        answer(
            ("Writer.ShortPoem", {"topic": "the sea"}, "poem"),
            ("Writer.Translate", {"text": "$poem", "lang": "French"}, "french"),
        )
    )
    planner = SequentialPlanner(kernel)
    plan = await planner.create_plan("Write a poem about the sea and translate it to French.")
    assert len(scripted.requests) == 1 and len(planner.last_attempts) == 1  # no repair turn
    assert plan.steps[0].args == {"input": "the sea"}
    assert plan.steps[0].notes == ["argument 'topic' read as 'input'"]
    assert plan.steps[1].args == {"input": "$poem", "language": "French"}
    assert plan.steps[1].notes == ["argument 'text' read as 'input'", "argument 'lang' read as 'language'"]
    # What the CLI prints (str) and saves (JSON, YAML) carries the notes.
    shown = str(plan).splitlines()
    assert shown[1] == '1. poem = Writer.ShortPoem(input="the sea")'
    assert shown[2] == "   (note: argument 'topic' read as 'input')"
    saved = json.loads(plan.to_json())
    assert saved["steps"][0]["notes"] == ["argument 'topic' read as 'input'"]
    assert Plan.from_json(plan.to_json()) == plan and Plan.from_yaml(plan.to_yaml()) == plan
    # It runs with the value under the real parameter name.
    result = await PlanExecutor(kernel, catalogue=planner.catalogue).execute(plan)
    assert result.result == "scripted function output"
    assert "the sea" in scripted.requests[1].prompt


@pytest.mark.parametrize(
    "args",
    [
        {"number": 110, "other_number": 990},  # ambiguous
        {"x": 110, "y": 990},  # unknown
    ],
)
async def test_an_unmapped_name_is_a_repair_turn(kernel, scripted, args: dict) -> None:
    scripted.queue(
        answer(("Math.add", args, "sum")),
        answer(("Math.add", {"a": 110, "b": 990}, "sum")),
    )
    planner = SequentialPlanner(kernel)
    plan = await planner.create_plan("What is the sum of 110 and 990?")
    assert len(scripted.requests) == 2
    first = planner.last_attempts[0].error
    assert isinstance(first, UnknownArgumentError)
    assert f"unknown argument '{next(iter(args))}'; parameters are a, b" in scripted.requests[1].prompt
    assert plan.steps[0].args == {"a": 110, "b": 990} and plan.steps[0].notes == []


def test_a_saved_plan_is_never_mapped(catalogue: FunctionCatalogue) -> None:
    saved = Plan.from_dict({"steps": [{"function": "Writer.ShortPoem", "args": {"topic": "x"}, "output": "poem"}]})
    with pytest.raises(UnknownArgumentError, match="unknown argument 'topic'"):
        validate_plan(saved, catalogue)


def test_a_plan_without_notes_keeps_the_plain_format() -> None:
    plan = Plan.from_json(VALID)
    assert all("notes" not in step for step in json.loads(plan.to_json())["steps"])
    assert "note" not in str(plan)


async def test_the_schema_sent_enumerates_the_functions_offered_for_this_goal(kernel, scripted) -> None:
    scripted.queue(VALID)
    planner = SequentialPlanner(kernel, max_functions=6)
    await planner.create_plan("Write a poem about the sea and translate it to French.")
    request = scripted.requests[0]
    schema = request.settings["response_format"]["json_schema"]["schema"]
    offered = planner.last_offered
    assert len(offered) == 6 and set(offered[:2]) == {"Writer.ShortPoem", "Writer.Translate"}
    assert function_names_in(schema) == offered  # the enum: exactly these names, best first
    branches = schema["properties"]["steps"]["items"]["anyOf"]
    enums = [branch["properties"]["function"]["enum"] for branch in branches]
    assert enums == [[name] for name in offered]
    # The prompt states each offered function's parameter names plainly, as a signature.
    assert "- Writer.Translate(input, language): " in request.prompt
    assert "DesignThinking.Ideate" not in request.prompt


def test_the_prompt_shows_signatures_and_rules_before_the_functions(catalogue: FunctionCatalogue) -> None:
    names = ["Writer.Translate", "Time.today", "Math.add"]
    prompt = system_prompt(catalogue, names)
    assert "- Time.today(): " in prompt and "- Math.add(a, b): " in prompt
    assert "    a (required, number): The first number" in prompt
    # The fixed text comes first, so llama.cpp can reuse its evaluated prefix from one goal to the next.
    other = system_prompt(catalogue, ["Math.add"])
    shared = next(i for i, (a, b) in enumerate(zip(prompt, other, strict=False)) if a != b)
    assert prompt.index("Functions:") < shared
    # ...and the one rule the 1.5B model forgot when it was far above is said again at the end.
    assert prompt.endswith('write "$" and its output name, e.g. "input": "$poem".')


async def test_a_bare_output_name_as_a_value_is_a_repair_not_a_plan(kernel, scripted) -> None:
    # Qwen2.5-Coder-1.5B wrote "input": "poem" for "$poem" (bench_planner_quality, goal 12): that plan
    # would translate the word "poem". A repair turn names the fix.
    scripted.queue(
        answer(
            ("Writer.ShortPoem", {"input": "autumn leaves"}, "poem"),
            ("Writer.Translate", {"input": "poem", "language": "German"}, "german"),
        ),
        answer(
            ("Writer.ShortPoem", {"input": "autumn leaves"}, "poem"),
            ("Writer.Translate", {"input": "$poem", "language": "German"}, "german"),
        ),
    )
    planner = SequentialPlanner(kernel)
    plan = await planner.create_plan("Write a poem about autumn leaves and translate it into German.")
    first = planner.last_attempts[0].error
    assert isinstance(first, BareReferenceError)
    assert str(first) == (
        "step 2 (Writer.Translate): argument 'input' is the text 'poem', the name of step 1's output: "
        'write "$poem" to use that output'
    )
    assert str(first) in scripted.requests[1].prompt
    assert plan.steps[1].args["input"] == "$poem"
    # A saved plan may pass the word as text: that is no rule of the format.
    validate_plan(Plan.from_json(planner.last_attempts[0].answer), planner.catalogue)


async def test_a_bare_output_name_for_a_number_is_read_as_the_reference(kernel, scripted) -> None:
    # Qwen2.5-Coder-1.5B wrote "a": "sum" four times for "Add 12 and 30, then multiply the result by 2.":
    # text in a number parameter has one reading, the output named so.
    scripted.queue(
        answer(("Math.add", {"a": 12, "b": 30}, "sum"), ("Math.multiply", {"a": "sum", "b": 2}, "product")),
    )
    planner = SequentialPlanner(kernel)
    plan = await planner.create_plan("Add 12 and 30, then multiply the result by 2.")
    assert len(scripted.requests) == 1
    assert plan.steps[1].args == {"a": "$sum", "b": 2}
    assert plan.steps[1].notes == ["argument 'a': 'sum' read as $sum, the output of step 1"]
    result = await PlanExecutor(kernel, catalogue=planner.catalogue).execute(plan)
    assert float(result.result) == 84.0
    # The name of a LATER output is not read: left as written, with no note.
    later = answer(("Math.multiply", {"a": "sum", "b": 2}, "product"), ("Math.add", {"a": 12, "b": 30}, "sum"))
    parsed = parse_plan_answer(later, catalogue=planner.catalogue).plan
    assert parsed.steps[0].args == {"a": "sum", "b": 2} and parsed.steps[0].notes == []


@pytest.mark.parametrize(
    ("value", "is_name"),
    [
        ("swot_bakery", True),
        ("step1", True),
        ("poemFrench", True),
        ("Ourbakeryopensatsixbakesourdough", True),  # Qwen2.5-Coder-0.5B's output name, 32 letters
        ("poem", False),
        ("Summary", False),
        ("the poem", False),
        ("$poem", False),
    ],
)
def test_which_output_names_no_text_would_be(value: str, is_name: bool) -> None:
    assert names_not_words(value) is is_name


async def test_a_bare_output_name_no_text_would_be_is_read_as_the_reference(kernel, scripted) -> None:
    # Qwen2.5-Coder-0.5B wrote "input": "Ourbakeryopensatsixbakesourdough" four times in a row, each
    # repair turn in vain; as literal text that name would be translated as a word. One answer suffices.
    scripted.queue(
        answer(
            ("Writer.ShortPoem", {"input": "autumn leaves"}, "autumn_poem"),
            ("Writer.Translate", {"input": "autumn_poem", "language": "German"}, "german"),
        ),
    )
    planner = SequentialPlanner(kernel)
    plan = await planner.create_plan("Write a poem about autumn leaves and translate it into German.")
    assert len(scripted.requests) == 1
    assert plan.steps[1].args == {"input": "$autumn_poem", "language": "German"}
    assert plan.steps[1].notes == ["argument 'input': 'autumn_poem' read as $autumn_poem, the output of step 1"]
    assert "note: argument 'input': 'autumn_poem' read as $autumn_poem" in str(plan)
    # Not the name of an EARLIER output: left as written (here a later one), no note.
    later = answer(
        ("Writer.Translate", {"input": "autumn_poem", "language": "German"}, "german"),
        ("Writer.ShortPoem", {"input": "autumn leaves"}, "autumn_poem"),
    )
    parsed = parse_plan_answer(later, catalogue=planner.catalogue).plan
    assert parsed.steps[0].args["input"] == "autumn_poem" and parsed.steps[0].notes == []


ITALIAN = (
    "Summarize this text in a few words, then translate the summary into Italian: our bakery opens at six, "
    "bakes sourdough bread every morning and closes on Mondays."
)


@pytest.mark.parametrize(
    ("reference", "output", "same"),
    [
        ("summary", "summarized_text", True),  # one stem of 5+ letters at the start of both
        ("summary", "summary_text", True),  # the start of the other
        ("poem", "short_poem", True),  # its end
        ("summaryText", "summary_text", True),  # the same letters
        ("language", "summary", False),
        ("text", "texture", True),  # a prefix of 3+ letters still counts...
        ("texts", "textile", False),  # ...but a shared stem under 5 letters does not
        ("sum", "product", False),
    ],
)
def test_which_references_are_near_misses_of_an_output(reference: str, output: str, same: bool) -> None:
    assert same_output(reference, output) is same


async def test_an_undefined_reference_near_one_earlier_output_is_read_as_it(kernel, scripted) -> None:
    # Qwen2.5-Coder-1.5B (planners/goals.evals.yaml, the summary-then-Italian goal) named the summary's
    # output one way and passed "$summary" to Translate, through every repair turn.
    scripted.queue(
        answer(
            ("Writer.Summarize", {"input": "our bakery opens at six"}, "summarized_text"),
            ("Writer.Translate", {"input": "$summary", "language": "Italian"}, "italian"),
        )
    )
    planner = SequentialPlanner(kernel)
    plan = await planner.create_plan(ITALIAN)
    assert len(scripted.requests) == 1
    assert plan.steps[1].args == {"input": "$summarized_text", "language": "Italian"}
    assert plan.steps[1].notes == ["argument 'input': '$summary' read as $summarized_text, the output of step 1"]


@pytest.mark.parametrize(
    "steps",
    [
        # fits no earlier output: "$language" is a placeholder, not a result
        [
            ("Writer.Summarize", {"input": "text"}, "summary"),
            ("Writer.Translate", {"input": "$summary", "language": "$language"}, "italian"),
        ],
        # fits two: which one is meant is not for the parser to guess
        [
            ("Writer.Summarize", {"input": "a"}, "summary_a"),
            ("Writer.Summarize", {"input": "b"}, "summary_b"),
            ("Writer.Translate", {"input": "$summary", "language": "Italian"}, "italian"),
        ],
        # a LATER step's output: an order problem, not a spelling one
        [
            ("Writer.Translate", {"input": "$summary", "language": "Italian"}, "italian"),
            ("Writer.Summarize", {"input": "text"}, "summary"),
        ],
    ],
)
async def test_an_undefined_reference_without_one_reading_is_a_repair(kernel, scripted, steps: list) -> None:
    fixed = answer(
        ("Writer.Summarize", {"input": "text"}, "summary"),
        ("Writer.Translate", {"input": "$summary", "language": "Italian"}, "italian"),
    )
    scripted.queue(answer(*steps), fixed)
    planner = SequentialPlanner(kernel)
    await planner.create_plan(ITALIAN)
    assert len(scripted.requests) == 2
    assert isinstance(planner.last_attempts[0].error, UndefinedReferenceError)


def test_a_saved_plan_is_never_read_by_near_miss_references(catalogue: FunctionCatalogue) -> None:
    saved = answer(
        ("Writer.Summarize", {"input": "text"}, "summarized_text"),
        ("Writer.Translate", {"input": "$summary", "language": "Italian"}, "italian"),
    )
    with pytest.raises(UndefinedReferenceError):
        validate_plan(Plan.from_json(saved), catalogue)
