"""BusinessThinking.ChangeAudience: a text's tables rewritten row by row as JSON where the service has
structured output, rendered back in their layout; everything else by the prompt, as before."""

from __future__ import annotations

import json
import logging

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.effects import Effect, effect_of
from kernel_app.base.partial_output import parts_to
from kernel_app.base.paths import builtin_plugins_dir
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.providers.scripted import ScriptedChatCompletion, ScriptedRequest
from tests.support.native_plugins import StructuredScripted, load_plugin_module

PLUGIN = builtin_plugins_dir() / "BusinessThinking"


audience = load_plugin_module("BusinessThinking/audience_plugin.py", "audience_plugin_under_test")


SWOT = """### Strengths
| Point | Why it matters |
| --- | --- |
| Local expertise | The bakery can leverage its local expertise to win loyal customers. |
| Cost-effective | The bakery can offer competitive pricing to a wide range of customers. |

### Threats
| Point | Why it matters |
| :--- | ---: |
| Competition | The bakery may face competition from larger bakeries in the area. |"""

ROWS = {
    "Local expertise": {"Point": "Knows the town", "Why it matters": "People here like a shop that knows them."},
    "Cost-effective": {"Point": "Fair prices", "Why it matters": "Many people can pay what we ask."},
    "Competition": {"Point": "Big shops nearby", "Why it matters": "Bigger shops may take our buyers."},
}


def asked_row(request: ScriptedRequest) -> dict[str, str]:
    """The row a request asks to rewrite (the JSON line after the request's first line)."""
    return json.loads(request.prompt.splitlines()[1])


def rewrite(request: ScriptedRequest) -> str:
    return json.dumps(ROWS[asked_row(request)["Point"]])


async def run_change_audience(service: ScriptedChatCompletion, text: str, level: str = "a new employee") -> str:
    built = build_kernel(Settings(), chat_service=service)
    function = resolve_function(built.kernel, "BusinessThinking.ChangeAudience")
    return (await run_chain(built.kernel, [function], input=text, variables={"level": level})).result


# region the structured path


async def test_each_row_is_asked_for_as_json_and_the_tables_keep_their_layout() -> None:
    service = StructuredScripted(default=rewrite)
    result = await run_change_audience(service, SWOT)
    assert len(service.requests) == 3  # one per row, none retried
    first = service.requests[0]
    assert asked_row(first) == {
        "Point": "Local expertise",
        "Why it matters": "The bakery can leverage its local expertise to win loyal customers.",
    }
    assert "a new employee" in first.prompt and '("Strengths")' in first.prompt
    schema = first.settings["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["Point", "Why it matters"] and schema["properties"]["Point"]["maxLength"] >= 60
    assert first.settings["temperature"] == audience.ROW_SETTINGS["temperature"]
    lines = result.splitlines()
    assert lines[:3] == ["### Strengths", "| Point | Why it matters |", "| --- | --- |"]
    assert lines[3] == "| Knows the town | People here like a shop that knows them. |"
    assert "| :--- | ---: |" in lines  # the separator as written
    assert result.count("\n| ") == 2 + 2 + 1 + 2  # headers, separators and the three rows
    assert "leverage" not in result and "Competition" not in result


async def test_cells_without_words_are_kept_and_not_asked_for() -> None:
    table = "| # | Idea |\n| --- | --- |\n| 1 | Leverage synergies |\n| 2 | - |"
    service = StructuredScripted(default=json.dumps({"Idea": "Work together"}))
    result = await run_change_audience(service, table)
    assert len(service.requests) == 1 and asked_row(service.requests[0]) == {"Idea": "Leverage synergies"}
    assert result.splitlines()[2:] == ["| 1 | Work together |", "| 2 | - |"]


async def test_a_near_copy_is_asked_for_again_hotter_and_the_less_similar_answer_kept() -> None:
    copy = json.dumps(
        {"Point": "Competition", "Why it matters": "The bakery may face competition from bigger bakeries in the area."}
    )
    text = SWOT.split("\n\n")[1].replace("| :--- | ---: |", "| --- | --- |").split("\n", 1)[1]
    service = StructuredScripted([copy, json.dumps(ROWS["Competition"])])
    result = await run_change_audience(service, text)
    first, second = service.requests
    assert second.settings["temperature"] == audience.RETRY_TEMPERATURE > first.settings["temperature"]
    assert "was too close to the row or too long" in second.prompt and "bigger bakeries" in second.prompt
    assert result.endswith("| Big shops nearby | Bigger shops may take our buyers. |")
    # A second answer no better than the first, or less of a copy but far longer than the row: the first stays.
    service = StructuredScripted([copy, copy.replace("bigger", "big")])
    assert "bigger bakeries" in await run_change_audience(service, text)
    rambling = {"Point": "Rivals", "Why it matters": "Other shops sell bread too, " * 5 + "so we must be good."}
    service = StructuredScripted([copy, json.dumps(rambling)])
    assert "bigger bakeries" in await run_change_audience(service, text)


async def test_malformed_json_from_the_model_is_asked_for_once_more() -> None:
    service = StructuredScripted(['{"Point": "Big shops nearby", "Why it', json.dumps(ROWS["Competition"])])
    result = await run_change_audience(service, SWOT.split("\n\n")[1])
    assert len(service.requests) == 2
    assert service.requests[1].settings["temperature"] == audience.RETRY_TEMPERATURE
    assert result.endswith("| Big shops nearby | Bigger shops may take our buyers. |")


async def test_a_row_the_model_never_answers_in_shape_is_kept_and_the_table_keeps_its_rows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two rows for one (a list), then an object missing a column: the row is kept as written, logged.
    two_rows = json.dumps([ROWS["Local expertise"], ROWS["Cost-effective"]])
    missing = json.dumps({"Point": "Knows the town"})
    service = StructuredScripted([two_rows, missing], default=rewrite)
    with caplog.at_level(logging.WARNING):
        result = await run_change_audience(service, SWOT)
    assert len(service.requests) == 4
    assert "| Local expertise | The bakery can leverage its local expertise to win loyal customers. |" in result
    assert "| Fair prices | Many people can pay what we ask. |" in result
    assert sum(1 for line in result.splitlines() if line.startswith("| ") and "---" not in line) == 2 + 3
    assert "kept as written" in caplog.text


async def test_a_label_grown_into_a_sentence_is_asked_for_again() -> None:
    grown = {"Point": "The bakery may face competition from other bakeries nearby.", "Why it matters": "Rivals."}
    text = SWOT.split("\n\n")[1]
    service = StructuredScripted([json.dumps(grown), json.dumps(ROWS["Competition"])])
    result = await run_change_audience(service, text)
    assert len(service.requests) == 2 and result.endswith("| Big shops nearby | Bigger shops may take our buyers. |")
    # Asked again and grown again (or copied): the less flawed answer stays, a near copy over a sentence label.
    copy = {"Point": "Competition", "Why it matters": "The bakery may face competition from big bakeries in the area."}
    service = StructuredScripted([json.dumps(grown), json.dumps(copy)])
    assert "| Competition | The bakery may face competition from big bakeries in the area. |" in (
        await run_change_audience(service, text)
    )


def test_a_cell_that_was_a_sentence_keeps_its_full_stop() -> None:
    assert audience._written_like("It may face competition.", "Big shops may take our buyers") == (
        "Big shops may take our buyers."
    )
    assert audience._written_like("Competition", "Big shops nearby") == "Big shops nearby"  # a label stays one
    assert audience._written_like("Is it?", "Who knows!") == "Who knows!"
    assert audience._written_like("Limited marketing", "not known") == "Not known"  # and its capital letter
    assert audience._written_like("iPhone sales", "iPad sales") == "iPad sales"


def test_parse_row_takes_one_object_with_a_string_for_each_cell() -> None:
    keys = ["Point", "Why it matters"]
    assert audience.parse_row('{"Point": " Big\\n shops ", "Why it matters": "Ok.", "extra": 1}', keys) == {
        "Point": "Big shops",
        "Why it matters": "Ok.",
    }
    wordless = '{"Point": "...", "Why it matters": "..."}'  # the 0.5B copied the answer shape's placeholders
    for answer in (
        "not json",
        "[]",
        '{"Point": "ab", "Why it matters": ""}',
        '{"Point": 1, "Why it matters": "x"}',
        wordless,
    ):
        assert audience.parse_row(answer, keys) is None, answer


async def test_text_between_tables_is_rewritten_by_the_prompt_and_headings_kept() -> None:
    def answer(request: ScriptedRequest) -> str:
        if "response_format" in request.settings:
            return rewrite(request)
        return "We are a small bakery."

    text = "# Our bakery\n\nWe leverage artisanal synergies.\n\n" + SWOT.split("\n\n")[1]
    service = StructuredScripted(default=answer)
    result = await run_change_audience(service, text)
    assert result.splitlines()[:3] == ["# Our bakery", "", "We are a small bakery."]
    prose = next(r for r in service.requests if "response_format" not in r.settings)
    assert "We leverage artisanal synergies." in prose.prompt and "Audience: a new employee" in prose.prompt


async def test_the_tables_stream_as_each_is_written() -> None:
    service = StructuredScripted(default=rewrite)
    built = build_kernel(Settings(), chat_service=service)
    progress: list[str] = []
    built.kernel.add_plugin(audience.ChangeAudiencePlugin(progress=progress.append), "AudienceUnderTest")
    function = built.kernel.get_function("AudienceUnderTest", "ChangeAudience")
    parts: list[str] = []
    with parts_to(parts.append):
        result = (await run_chain(built.kernel, [function], input=SWOT, variables={"level": "a child"})).result
    assert "".join(parts) == result and len(parts) == 5  # two tables, their heading lines and the blank between
    assert parts[1].startswith("| Point |") and parts[1].endswith("|\n")
    assert "ChangeAudience: row 3 of 3..." in progress and progress[-1] == ""


# endregion

# region the prompt


async def test_a_text_without_tables_runs_the_prompt_as_before() -> None:
    service = StructuredScripted(["Let's work together to sell more."])
    result = await run_change_audience(service, "We will leverage synergies.", level="a 10-year-old child")
    (request,) = service.requests
    assert result == "Let's work together to sell more."
    assert "response_format" not in request.settings
    assert "Audience: a 10-year-old child" in request.prompt and "We will leverage synergies." in request.prompt
    config = json.loads((PLUGIN / "_audience_prompt" / "config.json").read_text(encoding="utf-8"))
    for name, value in config["execution_settings"]["default"].items():
        assert request.settings[name] == value


async def test_the_prompt_streams_its_tokens_to_a_caller_that_takes_parts() -> None:
    service = StructuredScripted(["Let's work together to sell more."])
    built = build_kernel(Settings(), chat_service=service)
    function = resolve_function(built.kernel, "BusinessThinking.ChangeAudience")
    parts: list[str] = []
    with parts_to(parts.append):
        run = await run_chain(built.kernel, [function], input="We leverage synergies.", variables={"level": "a child"})
    assert service.requests[0].streaming and len(parts) > 1
    assert "".join(parts) == run.result == "Let's work together to sell more."
    assert run.usage.completion_tokens > 0  # the streamed call is counted


async def test_a_service_without_structured_output_gets_the_prompt_for_tables_too() -> None:
    service = ScriptedChatCompletion(["### Strengths\n| Point | Why it matters |\n| --- | --- |\n| Fair prices | ok |"])
    result = await run_change_audience(service, SWOT)
    (request,) = service.requests
    assert "response_format" not in request.settings and "Local expertise" in request.prompt
    assert result.startswith("### Strengths")


def test_the_planner_sees_the_function_as_the_prompt_described_it() -> None:
    # planners/goals.evals.yaml plans ChangeAudience by this name, description and these parameters.
    built = build_kernel(Settings(), with_service=False)
    function = resolve_function(built.kernel, "BusinessThinking.ChangeAudience")
    config = json.loads((PLUGIN / "_audience_prompt" / "config.json").read_text(encoding="utf-8"))
    assert function.metadata.description == config["description"]
    offered = [p for p in function.metadata.parameters if p.include_in_function_choices]
    assert [(p.name, p.description, p.is_required) for p in offered] == [
        (v["name"], v["description"], True) for v in config["input_variables"]
    ]
    assert effect_of(function) is Effect.MODEL  # costs tokens, changes nothing: no approval as a write


# endregion
