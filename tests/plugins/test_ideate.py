"""DesignThinking.Ideate: one table of 20 different ideas, asked for as JSON one problem at a time where the
service has structured output (repeats dropped, more asked for, a bounded number of times), else the prompt."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.effects import Effect, effect_of
from kernel_app.base.errors import ModelError
from kernel_app.base.partial_output import parts_to
from kernel_app.base.paths import builtin_plugins_dir
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.evals import load_eval_file
from kernel_app.kernel.evals.runner import Target, run_evals
from kernel_app.kernel.plugin_folders.loader import PluginDirectory, load_plugin_directories
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.providers.scripted import ScriptedChatCompletion, ScriptedRequest
from planners.catalogue import FunctionInfo
from plugins.DesignThinking._ideas import (
    DESCRIPTION_MAX,
    HIGHER,
    KEYS,
    LOWER,
    TARGET,
    Idea,
    IdeaTable,
    Problem,
    problems_in,
    quotas,
    read_answer,
)
from tests.support.native_plugins import StructuredScripted, load_plugin_module

FOLDER = builtin_plugins_dir() / "DesignThinking"
EVAL_FILE = FOLDER / "Ideate.evals.yaml"
PIZZA = load_eval_file(EVAL_FILE).cases[0].vars["input"]


ideate_plugin = load_plugin_module("DesignThinking/ideate_plugin.py", "ideate_plugin_under_test")


WORDS = [
    "drivers",
    "bikes",
    "scooters",
    "maps",
    "texts",
    "timers",
    "boxes",
    "bags",
    "ovens",
    "menus",
    "cards",
    "tills",
    "apps",
    "vans",
    "signs",
    "lamps",
    "trays",
    "mugs",
    "hats",
    "bells",
    "clocks",
    "carts",
    "kiosks",
    "coupons",
    "stamps",
    "badges",
    "crates",
    "shelves",
    "tablets",
    "radios",
    "flyers",
    "posters",
    "stickers",
    "sirens",
    "screens",
    "buttons",
    "chairs",
    "tables",
    "fridges",
    "freezers",
    "heaters",
    "fans",
    "gloves",
    "aprons",
    "forms",
]


def _asked(request: ScriptedRequest) -> dict[str, int]:
    """How many ideas of each fruit a request's schema asks for."""
    properties = request.settings["response_format"]["json_schema"]["schema"]["properties"]
    return {fruit: properties[key]["minItems"] for fruit, key in KEYS.items() if key in properties}


def _distinct_model() -> Callable[[ScriptedRequest], str]:
    """A model that answers every request with as many new ideas as asked, each about a thing of its own."""
    things = iter(WORDS)

    def answer(request: ScriptedRequest) -> str:
        reply: dict[str, object] = {"problem": "Slow deliveries"}
        for fruit, count in _asked(request).items():
            ideas = []
            for _ in range(count):
                thing = next(things)
                ideas.append({"idea": f"Add more {thing}", "description": f"More {thing} shorten the wait today."})
            reply[KEYS[fruit]] = ideas
        return json.dumps(reply)

    return answer


def _ideate_kernel(service: ScriptedChatCompletion, progress: list[str] | None = None):
    built = build_kernel(Settings(), chat_service=service)
    if progress is not None:
        built.kernel.add_plugin(ideate_plugin.IdeatePlugin(progress=progress.append), "IdeateUnderTest")
    return built


async def _ideate(service: ScriptedChatCompletion, progress: list[str] | None = None, input: str = PIZZA) -> str:
    built = _ideate_kernel(service, progress)
    function = (
        built.kernel.get_function("IdeateUnderTest", "Ideate")
        if progress is not None
        else resolve_function(built.kernel, "DesignThinking.Ideate")
    )
    return (await run_chain(built.kernel, [function], input=input)).result


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:] if line]


# region the parts without a model


def test_the_problems_are_the_rows_of_the_define_table() -> None:
    problems = problems_in(PIZZA)
    assert len(problems) == 3
    assert problems[0] == Problem(
        "Deliveries take up to an hour - Customers need their pizza to arrive hot and on time - "
        "Too few drivers at peak hours",
        "Deliveries take up to an hour",  # named in the table as the Analysis column names it
    )


def test_the_problems_of_a_list_or_of_plain_text() -> None:
    # Not named by the input: the model names them.
    assert problems_in("Our problems:\n- Long queues\n2. Cash only\n") == [Problem("Long queues"), Problem("Cash only")]
    assert problems_in("  Customers wait too long\nfor bread. ") == [Problem("Customers wait too long for bread.")]
    table = "| Problem |\n| --- |\n" + "".join(f"| P{n} |\n" for n in range(14))
    assert len(problems_in(table)) == 10  # more problems than ideas of one fruit: the first ten


@pytest.mark.parametrize("problems", [1, 2, 3, 7, 10])
def test_each_problem_gets_both_fruits_ten_of_each_in_all(problems: int) -> None:
    shares = quotas(problems)
    assert sum(share[LOWER] for share in shares) == 10 and sum(share[HIGHER] for share in shares) == 10
    assert all(share[LOWER] >= 1 and share[HIGHER] >= 1 for share in shares)
    totals = [share[LOWER] + share[HIGHER] for share in shares]
    assert max(totals) - min(totals) <= 1
    assert quotas(3) == [{LOWER: 4, HIGHER: 3}, {LOWER: 3, HIGHER: 3}, {LOWER: 3, HIGHER: 4}]


def test_an_answer_cut_off_or_malformed_keeps_its_complete_ideas_under_their_fruit() -> None:
    text = (
        '{"problem": "Slow \\"deliveries\\"", "lower_hanging_fruit": [{"idea": "Hire | drivers", "description":'
        ' "More drivers at peak hours."}, {"idea": 7, "description": "not text"}, {"idea": "...", "description":'
        ' "..."}], "higher_hanging_fruit": [{"description": "Orders reach homes in minutes", "idea": "Drones"},'
        ' {"idea": "Own deliv'
    )
    answer = read_answer(text)
    assert answer.label == 'Slow "deliveries"'
    assert answer.ideas == [
        (LOWER, "Hire / drivers", "More drivers at peak hours."),  # a pipe would split the table's row
        (HIGHER, "Drones", "Orders reach homes in minutes."),  # keys in any order; a sentence ends
    ]
    assert read_answer("Sure! Here are some ideas: hire drivers.").ideas == []


def test_an_idea_cut_at_its_length_bound_is_left_out() -> None:
    looped = "Customers get pizza hot " * 12
    cut = json.dumps({"lower_hanging_fruit": [{"idea": "Heat bags", "description": looped[: DESCRIPTION_MAX - 1]}]})
    assert read_answer(cut).ideas == []
    long = "Introduce a price comparison feature on the website."  # 52 characters, whole: kept
    whole = json.dumps({"lower_hanging_fruit": [{"idea": long, "description": "Customers see the price is fair."}]})
    assert read_answer(whole).ideas == [(LOWER, long[:-1], "Customers see the price is fair.")]  # no full stop


def test_a_repeat_by_the_evals_rule_is_not_kept() -> None:
    table = IdeaTable([Problem("Slow deliveries"), Problem("Payment errors")])
    first = "Improve the delivery drivers to cut delivery time for customers"
    assert table.add(Idea(first, LOWER, 0, "Drivers earn more per order."))
    # The eval's own example: one word changed (8 of 10 words shared).
    assert not table.add(Idea(first.replace("drivers", "bikes"), LOWER, 0, "Bikes are quicker in town."))
    assert not table.add(Idea("Fix the payment page", LOWER, 1, "drivers earn MORE per order!"))  # same description
    assert table.add(Idea("Fix the payment page", LOWER, 1, "Customers pay without errors."))
    assert [idea.idea for idea in table.ideas] == [first, "Fix the payment page"]


def test_a_problem_takes_no_more_ideas_of_a_fruit_than_its_share() -> None:
    table = IdeaTable([Problem("Only problem")])
    for n in range(10):
        assert table.add(Idea(f"Idea {WORDS[n]}", HIGHER, 0, f"About {WORDS[n]} only."))
    assert not table.add(Idea("One more", HIGHER, 0, "Over the share."))
    assert table.missing(0, HIGHER) == 0 and table.missing(0, LOWER) == 10


# endregion

# region the function on a service with structured output


async def test_ideas_come_one_problem_at_a_time_and_the_table_passes_the_shipped_eval() -> None:
    service = StructuredScripted(default=_distinct_model())
    built = build_kernel(Settings(), chat_service=service)
    results = await run_evals([load_eval_file(EVAL_FILE)], [Target("structured", built.kernel, built.report)])
    assert [r.passed for r in results] == [True, True], [r.reason for r in results]
    # One request per problem, each for its share of both fruits, streamed, as JSON of a schema.
    assert len(service.requests) == 6
    assert [_asked(r) for r in service.requests[:3]] == [
        {LOWER: 4, HIGHER: 3},
        {LOWER: 3, HIGHER: 3},
        {LOWER: 3, HIGHER: 4},
    ]
    first, second = service.requests[:2]
    assert first.streaming and "Deliveries take up to an hour - Customers need" in first.prompt
    assert "The website crashes at payment" in second.prompt.split("one of these problems only:")[1]
    # Nothing of the first answer is shown (the 1.5B copied such a list), and the input named the problems.
    assert "Add more drivers" not in second.prompt and "This time" not in second.prompt
    assert "problem" not in second.settings["response_format"]["json_schema"]["schema"]["properties"]
    rows = _rows(results[0].output.text)
    assert len(rows) == TARGET and [row[0] for row in rows] == [str(n) for n in range(1, 21)]
    assert sum(row[2] == LOWER for row in rows) == 10 and sum(row[2] == HIGHER for row in rows) == 10


async def test_repeats_are_dropped_and_more_are_asked_for() -> None:
    fresh = _distinct_model()
    answers = iter(range(100))

    def answer(request: ScriptedRequest) -> str:
        if next(answers) != 1:
            return fresh(request)
        # The second problem's answer: every idea a reworded copy of the first problem's.
        asked = _asked(request)
        copy = {"idea": "Add more of the drivers", "description": "More drivers shorten the wait today!"}
        return json.dumps({"problem": "Payment errors", **{KEYS[fruit]: [copy] * n for fruit, n in asked.items()}})

    service = StructuredScripted(default=answer)
    table = await _ideate(service)
    rows = _rows(table)
    assert len(rows) == TARGET
    assert sum("drivers" in row[1] for row in rows) == 1
    # The second problem's six ideas were asked for again (and one more, room for another repeat).
    assert len(service.requests) == 4
    assert _asked(service.requests[3]) == {LOWER: 4, HIGHER: 4}
    assert "one of these problems only: The website crashes" in service.requests[3].prompt
    assert "This time, give ideas about technology." in service.requests[3].prompt  # another angle
    assert sum(row[3] == "The website crashes at payment" for row in rows) == 6


async def test_problems_the_input_does_not_name_are_named_by_the_model() -> None:
    service = StructuredScripted(default=_distinct_model())
    rows = _rows(await _ideate(service, input="- Bread sells out by noon\n- Only cash accepted"))
    assert len(service.requests) == 2
    schema = service.requests[0].settings["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["problem", KEYS[LOWER], KEYS[HIGHER]]
    assert {row[3] for row in rows} == {"Slow deliveries"}  # what the scripted model called them


async def test_malformed_json_keeps_what_it_can_and_asks_again() -> None:
    fresh = _distinct_model()
    answers = iter(["Sure! Here are ideas: | Hire drivers | ... |", '{"problem": "Slow deliveries", "lower_'])

    def answer(request: ScriptedRequest) -> str:
        return next(answers, None) or fresh(request)

    service = StructuredScripted(default=answer)
    rows = _rows(await _ideate(service))
    assert len(rows) == TARGET
    assert len(service.requests) == 5  # the two broken answers, two other problems, then the first again
    assert _asked(service.requests[3]) == {LOWER: 5, HIGHER: 4}


async def test_a_model_that_never_gives_twenty_different_ideas_ends_with_a_note() -> None:
    same = '{"problem": "Slow", "lower_hanging_fruit": [{"idea": "Hire drivers", "description": "More drivers."}]}'
    service = StructuredScripted(default=same)
    progress: list[str] = []
    table = await _ideate(service, progress)
    assert len(service.requests) == 3 + ideate_plugin.EXTRA_REQUESTS  # bounded: no loop
    assert len(_rows(table.split("\n\n")[0])) == 1
    assert table.endswith(
        f"Only 1 of 20 ideas: in {3 + ideate_plugin.EXTRA_REQUESTS} requests the model gave no other idea "
        "that did not repeat one above.\n"
    )
    assert "Ideate: problem 1 of 3, 1 of 20 ideas..." in progress and progress[-1] == ""


async def test_a_model_that_gives_no_idea_at_all_is_an_error() -> None:
    service = StructuredScripted(default="I cannot help with that.")
    with pytest.raises(ModelError, match="no usable idea in 7 requests"):
        await _ideate(service)


async def test_rows_stream_as_they_are_kept_and_the_answer_is_what_was_sent() -> None:
    service = StructuredScripted(default=_distinct_model())
    built = _ideate_kernel(service)
    sent: list[str] = []
    with parts_to(sent.append):
        result = await built.kernel.invoke(resolve_function(built.kernel, "DesignThinking.Ideate"), input=PIZZA)
    assert len(sent) == TARGET and sent[0].startswith("| # | Idea | Type | Problem it solves | Description |")
    assert "".join(sent) == str(result)


async def test_the_json_answers_sample_as_the_prompts_config_json_says() -> None:
    service = StructuredScripted(default=_distinct_model())
    await _ideate(service)
    config = json.loads((FOLDER / "_ideate_prompt" / "config.json").read_text(encoding="utf-8"))
    for name in ("temperature", "top_p"):
        assert service.requests[0].settings[name] == config["execution_settings"]["default"][name]
    assert service.requests[0].settings["max_tokens"] == 40 + 60 * 7  # the label and seven ideas


# endregion

# region the prompt, for a service without structured output, and what the planner sees


async def test_a_service_without_structured_output_runs_the_prompt() -> None:
    table = (
        "| # | Idea | Type | Problem it solves | Description |\n| --- | --- | --- | --- | --- |\n| 1 | a | b | c | d |"
    )
    service = ScriptedChatCompletion([table])
    assert await _ideate(service) == table
    (request,) = service.requests
    assert "Brainstorm exactly 20 ideas that solve these problems" in request.prompt
    assert "Deliveries take up to an hour" in request.prompt
    assert "response_format" not in request.settings and request.settings["max_tokens"] == 1000


async def test_the_prompt_streams_to_a_caller_that_streams() -> None:
    service = ScriptedChatCompletion(["| 1 | an idea |"])
    built = _ideate_kernel(service)
    sent: list[str] = []
    with parts_to(sent.append):
        result = await built.kernel.invoke(resolve_function(built.kernel, "DesignThinking.Ideate"), input=PIZZA)
    assert "".join(sent) == str(result) == "| 1 | an idea |" and service.requests[0].streaming


def test_the_planner_sees_the_function_the_prompt_was(tmp_path: Path) -> None:
    # The prompt is still a valid prompt function (copied into a plugin folder, it loads cleanly), and the
    # native function shows the planner the same name, description and parameters it did.
    shutil.copytree(FOLDER / "_ideate_prompt", tmp_path / "DesignThinking" / "Ideate")
    report = load_plugin_directories([PluginDirectory(tmp_path)])
    assert report.problems == []
    (prompt,) = report.plugins["DesignThinking"]
    built = build_kernel(Settings(), with_service=False)
    native = built.kernel.get_function("DesignThinking", "Ideate")
    assert not native.is_prompt
    as_prompt, as_native = FunctionInfo.from_metadata(prompt.metadata), FunctionInfo.from_metadata(native.metadata)
    assert as_native.to_dict() == as_prompt.to_dict()
    assert effect_of(native) is Effect.MODEL  # a model call, not a write: runs without approval as the prompt did


# endregion
