"""BusinessThinking.SWOT renders four tables from whatever layout the model drafted."""

from __future__ import annotations

from kernel_app.config import Settings
from kernel_app.kernel_builder import build_kernel
from kernel_app.runner import resolve_function, run_chain
from kernel_app.services.scripted import ScriptedChatCompletion
from kernel_app.swot_tables import parse_swot, to_swot_tables

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
