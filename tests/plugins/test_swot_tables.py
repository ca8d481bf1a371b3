"""BusinessThinking.SWOT renders four tables: from JSON where the service has structured output, else from
whatever layout the model drafted."""

from __future__ import annotations

import json

from kernel_app.base.config import Settings
from kernel_app.base.paths import builtin_plugins_dir
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.providers.scripted import ScriptedChatCompletion
from plugins.BusinessThinking._swot_tables import (
    POINT_MAX,
    SWOT_SCHEMA,
    WHY_MAX,
    SwotDraft,
    count_json_points,
    deduplicated,
    parse_swot,
    parse_swot_json,
    render_swot,
    to_swot_tables,
)
from tests.support.native_plugins import StructuredScripted, load_plugin_module

swot_plugin = load_plugin_module("BusinessThinking/swot_plugin.py", "swot_plugin_under_test")
SWOTPlugin = swot_plugin.SWOTPlugin

BULLETS = """Here is the analysis.

### Strengths

* The shop has loyal customers. Many students come back every week.
* Fresh dough made daily.

**Weaknesses:**
1. **Small kitchen**: only a few orders at once.

### Opportunities
- Late-night delivery. Students order after 10 pm.
- Late-night delivery. Students order after 10 pm.

### Threats
| Point | Why it matters |
| --- | --- |
| Chain competitors | They undercut prices |
"""


def test_bullets_numbered_and_table_rows_all_become_rows() -> None:
    draft = parse_swot(BULLETS)
    assert draft.items["Strengths"] == [
        ("The shop has loyal customers.", "Many students come back every week."),
        ("Fresh dough made daily.", ""),
    ]
    assert draft.items["Weaknesses"] == [("Small kitchen", "only a few orders at once.")]
    assert draft.items["Opportunities"] == [("Late-night delivery.", "Students order after 10 pm.")]  # deduplicated
    assert draft.items["Threats"] == [("Chain competitors", "They undercut prices")]


def test_rendered_tables_and_empty_category() -> None:
    tables = to_swot_tables("### Strengths\n- Good pizza\n### Threats\n- Rent | rising")
    assert tables.splitlines()[:4] == [
        "### Strengths",
        "| Point | Why it matters |",
        "| --- | --- |",
        "| Good pizza |  |",
    ]
    assert "### Weaknesses\n| Point | Why it matters |\n| --- | --- |\n| (none given) |" in tables
    assert "| Rent / rising |  |" in tables  # a pipe inside a cell cannot break the table


def test_text_without_swot_headings_is_left_alone() -> None:
    assert to_swot_tables("  I cannot help with that.  ") == "I cannot help with that."


async def test_swot_function_drafts_then_renders() -> None:
    service = ScriptedChatCompletion([BULLETS])
    built = build_kernel(Settings(), chat_service=service)
    result = await run_chain(
        built.kernel,
        [resolve_function(built.kernel, "BusinessThinking.SWOT")],
        input="a pizza shop",
        variables={"answers": "We bake at 5 am."},
    )
    prompt = service.requests[0].prompt
    assert "a pizza shop" in prompt and "We bake at 5 am." in prompt
    assert result.result.count("| Point | Why it matters |") == 4
    assert "| Small kitchen | only a few orders at once. |" in result.result
    assert result.usage.calls == 1 and result.usage.completion_tokens > 0  # the nested prompt call is counted


# region structured output (services with response_format)

JSON_ANSWER = json.dumps(
    {
        "strengths": [
            {"point": "Fresh dough daily", "why": "Students taste the difference"},
            {"point": "fresh dough, daily!", "why": "a repeat in other words"},
            {"point": "Late opening hours", "why": "Open when students study"},
            {"point": "Family recipes", "why": "A story chains cannot copy"},
        ],
        "weaknesses": [
            {"point": "Small kitchen", "why": "Few orders at once"},
            {"point": "No delivery app", "why": "Students order on their phones"},
            {"point": "Cash only", "why": "Cards are what students carry"},
        ],
        "opportunities": [
            {"point": "Campus events", "why": "Bulk orders for clubs"},
            {"point": "Late opening hours", "why": "misplaced repeat of a strength"},
            {"point": "Student discounts", "why": "Loyalty in a price-sensitive market"},
            {"point": "Catering for dorms", "why": "Large regular orders"},
        ],
        "threats": [
            {"point": "Chain competitors", "why": "They undercut prices"},
            {"point": "Summer break", "why": "Half the customers leave"},
            {"point": "Rising cheese prices", "why": "Margins shrink"},
        ],
    }
)


def test_json_points_are_read_and_repeats_dropped() -> None:
    draft = parse_swot_json(JSON_ANSWER)
    points = {category: [point for point, _ in rows] for category, rows in draft.items.items()}
    assert points["Strengths"] == ["Fresh dough daily", "Late opening hours", "Family recipes"]
    # The strength repeated under opportunities goes: opportunities still has three points.
    assert points["Opportunities"] == ["Campus events", "Student discounts", "Catering for dorms"]
    assert draft.items["Threats"][0] == ("Chain competitors", "They undercut prices.")  # a sentence: its full stop


def test_a_repeat_across_tables_stays_when_dropping_it_would_leave_two_rows() -> None:
    draft = SwotDraft()
    draft.items["Strengths"] = [("Good pizza", ""), ("Cheap", ""), ("Central", "")]
    draft.items["Threats"] = [("Cheap", "competitors are cheaper"), ("Rent", ""), ("Chains", "")]
    assert [p for p, _ in deduplicated(draft).items["Threats"]] == ["Cheap", "Rent", "Chains"]


def test_a_json_answer_cut_off_mid_point_keeps_the_complete_points() -> None:
    cut = JSON_ANSWER[: JSON_ANSWER.index("Summer break")]
    draft = parse_swot_json(cut)
    assert [point for point, _ in draft.items["Threats"]] == ["Chain competitors"]
    assert count_json_points(cut) == {"Strengths": 3, "Weaknesses": 3, "Opportunities": 3, "Threats": 1}
    assert count_json_points('{"strengths": [{"point": "A') == {"Strengths": 0}


def test_escaped_quotes_in_json_points_are_decoded() -> None:
    text = json.dumps({"strengths": [{"point": 'The "best" crust', "why": "a|b"}]})
    assert parse_swot_json(text).items["Strengths"] == [('The "best" crust', "a|b.")]


def _cut(text: str, bound: int = WHY_MAX) -> str:
    """``text`` as a local model's grammar leaves it at the length bound: ``bound`` characters, closed."""
    assert len(text) > bound
    return text[:bound]


def _one_reason(why: str, point: str = "Volunteer demand") -> tuple[str, str]:
    answer = json.dumps({"opportunities": [{"point": point, "why": why}]}, ensure_ascii=False)
    return parse_swot_json(answer).items["Opportunities"][0]


def test_a_reason_cut_at_the_bound_ends_at_its_last_sentence_or_clause() -> None:
    # The 1.5B's reasons that reached the old bound of 120 were cut mid-sentence ("…more difficult for the").
    filler = "More people look for local causes every year, and apps make that search easy. "
    two_sentences = _cut(filler + "Groups that post their events early get the most helpers, " + "x" * WHY_MAX)
    assert _one_reason(two_sentences)[1] == filler.strip()
    clause = _cut("There are already several apps that help people find volunteering work near them, " + "y " * 99)
    assert _one_reason(clause)[1] == "There are already several apps that help people find volunteering work near them."
    # A reason the model ended itself is kept whole; a sentence without its full stop gets one.
    whole = "Customers know the owner, leading to loyalty"
    assert _one_reason(whole)[1] == whole + "."
    assert _one_reason("Open when students study!")[1] == "Open when students study!"


def test_a_reason_closed_a_token_short_of_the_bound_is_ended_too() -> None:
    # The 0.5B's grammar closed these a few characters before the bound (the next token did not fit); they
    # were shown as "…It can also lead to a lack." and "…It.", cut sentences given a full stop.
    lack = (
        "The business does not have a strong focus on innovation, which can lead to a lack of competitive "
        "advantage. It can also lead to a lack of customer satisfaction and loyalty. It can also lead to a lack"
    )
    assert len(lack) == WHY_MAX - 1
    assert _one_reason(lack)[1].endswith("customer satisfaction and loyalty.")
    whole = "Students order late at night, when the other kitchens have closed. " * 2
    whole += "A shop open until two in the morning gets nearly all of them."  # complete, near the bound
    assert len(whole) >= WHY_MAX - 8 and _one_reason(whole)[1] == whole


def test_a_cut_reason_with_no_boundary_left_keeps_its_whole_words_and_shows_the_cut() -> None:
    # Ending it at a comma in its first few words would drop most of it: it says it was shortened instead.
    words = "growing steadily among students " * 20
    after_a_word = _cut("Demand, " + words)  # "... among students ": the last word is whole
    assert _one_reason(after_a_word)[1] == after_a_word.strip() + "…"
    mid_word = _cut("Demand is, " + words)  # "... among studen": the cut word goes
    assert _one_reason(mid_word)[1] == mid_word.removesuffix(" studen") + "…"


def test_a_point_cut_at_its_bound_ends_on_a_whole_word() -> None:
    point = _one_reason("It matters.", point=_cut("Partnerships with schools and clubs " * 5, POINT_MAX))[0]
    assert len(point) < POINT_MAX and point.endswith("…") and point[:-1] in "Partnerships with schools and clubs " * 5


def test_cells_are_written_without_zero_width_characters() -> None:
    # The 1.5B once ended a cut cell with a U+200C: invisible in the table, but not in its text.
    draft = SwotDraft()
    draft.items["Strengths"] = [("Local\u200bbrand", "Known in town.\u200c\ufeff")]
    assert "| Localbrand | Known in town. |" in render_swot(draft)


async def test_swot_asks_a_structured_service_for_json_and_renders_tables_from_it() -> None:
    service = StructuredScripted([JSON_ANSWER])
    built = build_kernel(Settings(), chat_service=service)
    progress: list[str] = []
    plugin = SWOTPlugin(progress=progress.append)
    built.kernel.add_plugin(plugin, "SwotUnderTest")
    result = await run_chain(built.kernel, [built.kernel.get_function("SwotUnderTest", "SWOT")], input="a pizza shop")
    request = service.requests[0]
    assert request.streaming and "a pizza shop" in request.prompt
    assert request.settings["response_format"]["json_schema"]["schema"] == SWOT_SCHEMA
    tables = result.result
    assert tables.count("| Point | Why it matters |") == 4
    assert "| Fresh dough daily | Students taste the difference. |" in tables
    assert "fresh dough, daily!" not in tables and "misplaced repeat" not in tables
    assert "(none given)" not in tables
    # Progress named each quadrant as it arrived, then was cleared.
    assert any(line.startswith("SWOT: Strengths") for line in progress)
    assert any("Threats 3" in line for line in progress)
    assert progress[-1] == ""
    assert result.usage.calls == 1 and result.usage.completion_tokens > 0  # the streamed call is counted


async def test_an_answer_that_ignored_the_schema_is_read_as_a_draft_in_one_call() -> None:
    service = StructuredScripted([BULLETS])
    built = build_kernel(Settings(), chat_service=service)
    result = await run_chain(built.kernel, [resolve_function(built.kernel, "BusinessThinking.SWOT")], input="a shop")
    assert len(service.requests) == 1
    assert "| Small kitchen | only a few orders at once. |" in result.result


async def test_the_json_answer_samples_as_swot_drafts_config_json_says() -> None:
    service = StructuredScripted([JSON_ANSWER])
    built = build_kernel(Settings(), chat_service=service)
    await run_chain(built.kernel, [resolve_function(built.kernel, "BusinessThinking.SWOT")], input="a shop")
    config = json.loads((builtin_plugins_dir() / "BusinessThinking" / "SWOTDraft" / "config.json").read_text())
    for name, value in config["execution_settings"]["default"].items():
        assert service.requests[0].settings[name] == value


def test_without_a_prompt_swotdraft_the_json_answer_samples_at_the_fallback() -> None:
    from semantic_kernel import Kernel
    from semantic_kernel.functions import kernel_function

    class NativeDraft:
        @kernel_function(name="SWOTDraft")
        def draft(self, input: str) -> str:
            return input

    assert swot_plugin._draft_sampling(Kernel()) == swot_plugin.FALLBACK_SETTINGS  # no SWOTDraft at all
    kernel = Kernel()
    kernel.add_plugin(NativeDraft(), "BusinessThinking")  # a native SWOTDraft has no sampling options
    assert swot_plugin._draft_sampling(kernel) == swot_plugin.FALLBACK_SETTINGS


# endregion
