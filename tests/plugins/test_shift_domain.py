"""BusinessThinking.ShiftDomain: a SWOT's tables rewritten for another domain, one table at a time as JSON
where the service has structured output, with the headings and columns kept; the free-form prompt otherwise."""

from __future__ import annotations

import json

from kernel_app.base.config import Settings
from kernel_app.base.effects import Effect, effect_of
from kernel_app.base.partial_output import parts_to
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.providers.scripted import ScriptedChatCompletion
from plugins.BusinessThinking._markdown_tables import fitted_rows, parse, parts, render
from plugins.BusinessThinking._old_domain_words import old_domain_words, old_words_in, stem
from tests.support.native_plugins import StructuredScripted, load_plugin_module

shift_domain_plugin = load_plugin_module("BusinessThinking/shift_domain_plugin.py", "shift_domain_plugin_under_test")
ShiftDomainPlugin = shift_domain_plugin.ShiftDomainPlugin

PIZZA_SWOT = """### Strengths
| Point | Why it matters |
| --- | --- |
| Locally owned | Customers know the owner personally, leading to loyalty |
| Student-friendly atmosphere | College students often frequent pizza shops |
| Unique flavors | The shop offers a variety of pizzas |

### Weaknesses
| Point | Why it matters |
| --- | --- |
| Limited menu options | The shop may not offer a wide range of pizza varieties |
| High competition | Other pizza shops in the town may be offering similar products |
| Limited staffing | The shop may not have enough staff to serve all customers efficiently |

### Opportunities
| Point | Why it matters |
| --- | --- |
| Expansion into new areas | The shop can expand into nearby college towns |
| Customer referrals | Referrals from existing customers can help the shop grow |
| Online presence | The shop can offer online ordering to reach a wider audience |

### Threats
| Point | Why it matters |
| --- | --- |
| Economic downturn | The shop may face economic challenges if the college town experiences a downturn |
| Changing customer preferences | The shop may need to adapt to changing customer preferences |
| Competitive pressure | The shop may face intense competition from other pizza shops in the town |"""
CATEGORIES = ("Strengths", "Weaknesses", "Opportunities", "Threats")


def rows_answer(category: str, count: int = 3, why: str = "Clients notice it.") -> str:
    return json.dumps(
        {"rows": [{"Point": f"{category} cleaning point {n}", "Why it matters": why} for n in range(1, count + 1)]}
    )


FOUR_TABLES = [rows_answer(category) for category in CATEGORIES]


async def shift(service: ScriptedChatCompletion, swot: str = PIZZA_SWOT, domain: str = "cleaning services") -> str:
    built = build_kernel(Settings(), chat_service=service)
    function = resolve_function(built.kernel, "BusinessThinking.ShiftDomain")
    run = await run_chain(built.kernel, [function], input=swot, variables={"domain": domain})
    return run.result


# region the markdown around and in the tables


def test_a_document_renders_back_as_it_was_read() -> None:
    document = parse(PIZZA_SWOT)
    assert [t.line_above for t in document.tables] == [f"### {c}" for c in CATEGORIES]
    assert all(t.columns == ["Point", "Why it matters"] and len(t.rows) == 3 for t in document.tables)
    assert render(document) == PIZZA_SWOT
    assert "".join(parts(document)) == PIZZA_SWOT


# region the old business's words


def test_the_old_business_words_are_its_recurring_uncommon_words() -> None:
    rows = [" ".join(row) for table in parse(PIZZA_SWOT).tables for row in table.rows]
    words = old_domain_words(rows, "cleaning services")
    assert words[:2] == ["shop", "pizza"] and "college" in words
    assert not {"customer", "competition", "limited", "online"} & set(words)
    limited = ["Limited menu", "Limited staffing", "Limited hours", "a bakery", "the bakery"]
    assert old_domain_words(limited, "x") == ["bakery"]  # shared by any SWOT's weaknesses
    assert "shop" not in old_domain_words(rows, "flower shop")  # a word of the new domain is no old word
    assert old_domain_words(["a bakery", "the bakery"], "x") == ["bakery"]
    assert old_domain_words(["one row only"], "x") == []


def test_old_words_are_found_in_any_case_and_number() -> None:
    assert (stem("Pizzas"), stem("bakeries"), stem("business"), stem("boxes")) == ("pizza", "bakery", "business", "box")
    assert old_words_in("Two PIZZAS and a Bakery's oven", ["pizza", "bakery", "shop"]) == ["pizza"]
    assert old_words_in("Bakeries nearby", ["pizza", "bakery"]) == ["bakery"]


# region the native path (structured output)


async def test_each_table_is_asked_for_as_json_and_rendered_with_its_headings_and_columns() -> None:
    service = StructuredScripted(list(FOUR_TABLES))
    result = await shift(service)
    assert len(service.requests) == 4
    first = service.requests[0]
    assert '"Strengths" table' in first.prompt and "| Locally owned |" in first.prompt
    assert 'Every new row must belong under "Strengths"' in first.prompt
    assert "for a\ncleaning services business" in first.prompt and "Weaknesses" not in first.prompt
    assert "do not use the words shop, pizza" in first.prompt.lower()
    schema = first.settings["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["rows"]["minItems"] == schema["properties"]["rows"]["maxItems"] == 3
    assert schema["properties"]["rows"]["items"]["required"] == ["Point", "Why it matters"]
    document = parse(result)
    assert [t.line_above for t in document.tables] == [f"### {c}" for c in CATEGORIES]
    assert all(t.columns == ["Point", "Why it matters"] for t in document.tables)
    assert fitted_rows(document.tables[3])[2] == ("Threats cleaning point 3", "Clients notice it.")
    assert "pizza" not in result.lower()


async def test_a_cell_cut_at_its_length_bound_ends_at_a_boundary() -> None:
    bound = shift_domain_plugin.cell_bounds(parse(PIZZA_SWOT).tables[0])[1]
    cut = ("Clients come back every week. " * 10)[:bound]  # closed by the grammar mid-sentence
    service = StructuredScripted([rows_answer("Strengths", why=cut), *FOUR_TABLES[1:]])
    result = await shift(service)
    cell = parse(result).tables[0].rows[0][1]
    assert cell.endswith("every week.") and cut.startswith(cell) and len(cell) > bound - 30


async def test_a_table_with_too_few_rows_is_asked_for_again_and_extra_rows_are_dropped() -> None:
    short, long = rows_answer("Strengths", count=2), rows_answer("Strengths", count=4)
    service = StructuredScripted([short, long, *FOUR_TABLES[1:]])
    result = await shift(service)
    assert len(service.requests) == 5
    assert "Your last answer was not that JSON" in service.requests[1].prompt
    strengths = parse(result).tables[0]
    assert [row[0] for row in strengths.rows] == [f"Strengths cleaning point {n}" for n in (1, 2, 3)]


async def test_malformed_json_is_asked_for_again() -> None:
    fenced = "```json\n" + FOUR_TABLES[0] + "\n```"  # as a service without a grammar may write it
    braced = rows_answer("Weaknesses", why="Clients notice it.}")  # a brace written inside the string
    service = StructuredScripted(['{"rows": [{"Point": "Clean', fenced, braced, *FOUR_TABLES[2:]])
    result = await shift(service)
    assert len(service.requests) == 5
    assert fitted_rows(parse(result).tables[0])[0] == ("Strengths cleaning point 1", "Clients notice it.")
    assert fitted_rows(parse(result).tables[1])[0] == ("Weaknesses cleaning point 1", "Clients notice it.")


async def test_a_row_still_about_the_old_business_is_asked_for_once_more() -> None:
    stale = json.dumps(
        {
            "rows": [
                {"Point": "Owner-run", "Why it matters": "Clients trust a name."},
                {"Point": "Student-friendly", "Why it matters": "College students often frequent pizza shops"},
                {"Point": "Many services", "Why it matters": "Homes and offices alike."},
            ]
        }
    )
    again = json.dumps(
        {
            "rows": [
                {"Point": "A retry of row 1", "Why it matters": "Not taken: row 1 was fine."},
                {"Point": "Student housing", "Why it matters": "Dorms need cleaning between terms."},
                {"Point": "A retry of row 3", "Why it matters": "Not taken either."},
            ]
        }
    )
    service = StructuredScripted([stale, again, *FOUR_TABLES[1:]])
    result = await shift(service)
    retry = service.requests[1].prompt
    assert "still wrote about the other business (college, pizza, shop) in row 2" in retry
    rows = fitted_rows(parse(result).tables[0])
    assert rows == [
        ("Owner-run", "Clients trust a name."),
        ("Student housing", "Dorms need cleaning between terms."),
        ("Many services", "Homes and offices alike."),
    ]


async def test_a_row_that_copies_its_old_row_is_asked_for_once_more() -> None:
    copied = json.dumps(
        {
            "rows": [
                {"Point": "Locally owned", "Why it matters": "Customers know the owner personally, leading to loyalty"},
                {"Point": "Trained crews", "Why it matters": "Offices get the same careful team each week."},
                {"Point": "Eco products", "Why it matters": "Families with children ask for them."},
            ]
        }
    )
    service = StructuredScripted([copied, rows_answer("Strengths"), *FOUR_TABLES[1:]])
    result = await shift(service)
    assert "Your last answer copied the other business's row 1, changing only its name" in service.requests[1].prompt
    assert "still wrote about" not in service.requests[1].prompt
    rows = fitted_rows(parse(result).tables[0])
    assert rows[0] == ("Strengths cleaning point 1", "Clients notice it.") and rows[1][0] == "Trained crews"


async def test_a_row_the_retry_did_not_mend_keeps_the_first_answer() -> None:
    stale = rows_answer("Strengths", why="Like a pizza oven.")
    service = StructuredScripted([stale, "not json", *FOUR_TABLES[1:]])
    result = await shift(service)
    assert len(service.requests) == 5
    assert fitted_rows(parse(result).tables[0])[0] == ("Strengths cleaning point 1", "Like a pizza oven.")


async def test_a_first_table_that_stays_unusable_falls_back_to_the_prompt() -> None:
    service = StructuredScripted(["no json here", '{"rows": []}', "The whole SWOT, rewritten as prose."])
    result = await shift(service)
    assert len(service.requests) == 3
    fallback = service.requests[2].prompt
    assert "Rewrite it for a business in another domain." in fallback and "New domain: cleaning services" in fallback
    assert "| Locally owned |" in fallback and "in the town |" in fallback
    assert "response_format" not in service.requests[2].settings
    assert result == "The whole SWOT, rewritten as prose."


async def test_streamed_tables_are_shown_one_by_one_and_a_later_failure_rewrites_only_the_rest() -> None:
    service = StructuredScripted([*FOUR_TABLES[:2], "bad", "bad again", "### Opportunities\n- rewritten rest"])
    built = build_kernel(Settings(), chat_service=service)
    progress: list[str] = []
    built.kernel.add_plugin(ShiftDomainPlugin(progress=progress.append), "ShiftUnderTest")
    shown: list[str] = []
    run = await run_chain(
        built.kernel,
        [built.kernel.get_function("ShiftUnderTest", "ShiftDomain")],
        input=PIZZA_SWOT,
        variables={"domain": "cleaning services"},
        on_chunk=shown.append,
    )
    assert len(shown) == 3 and shown[0].startswith("### Strengths\n") and shown[1].startswith("\n\n### Weaknesses\n")
    assert shown[2] == "\n\n### Opportunities\n- rewritten rest"
    assert run.result == "".join(shown)
    rest_prompt = service.requests[4].prompt
    assert "### Opportunities" in rest_prompt and "Locally owned" not in rest_prompt
    assert progress[0] == "ShiftDomain: table 1 of 4..." and progress[-1] == ""


async def test_streamed_tables_join_into_the_answer() -> None:
    service = StructuredScripted(list(FOUR_TABLES))
    built = build_kernel(Settings(), chat_service=service)
    shown: list[str] = []
    with parts_to(shown.append):
        function = built.kernel.get_function("BusinessThinking", "ShiftDomain")
        result = str(await built.kernel.invoke(function, input=PIZZA_SWOT + "\n\nThe end.", domain="cleaning"))
    assert len(shown) == 5 and shown[-1] == "\n\nThe end."
    assert "".join(shown) == result and parse(result).tables[3].line_above == "### Threats"


# region the prompt: no tables, or no structured output


async def test_a_service_without_structured_output_gets_the_prompt() -> None:
    service = ScriptedChatCompletion(["shifted"])
    assert await shift(service) == "shifted"
    (request,) = service.requests
    assert "New domain: cleaning services" in request.prompt and "| Locally owned |" in request.prompt


async def test_a_swot_without_tables_gets_the_prompt() -> None:
    service = StructuredScripted(["- rewritten point"])
    assert await shift(service, swot="Strengths:\n- Locally owned\n- Fresh dough") == "- rewritten point"
    assert "- Fresh dough" in service.requests[0].prompt


# region what the planner and the surfaces see


def test_the_function_is_described_as_the_prompt_it_replaces() -> None:
    built = build_kernel(Settings(), with_service=False)
    function = resolve_function(built.kernel, "BusinessThinking.ShiftDomain")
    metadata = function.metadata
    assert metadata.description == (
        "Re-express a finished SWOT analysis for another business domain (e.g. construction management), "
        "keeping its structure and format."
    )
    parameters = {p.name: p for p in metadata.parameters if p.include_in_function_choices}
    assert list(parameters) == ["input", "domain"]
    assert parameters["input"].description == "A finished SWOT analysis (markdown tables or lists)"
    assert parameters["domain"].description == (
        "The business domain to rewrite it for, e.g. 'construction management' or 'cleaning services'"
    )
    assert all(p.is_required for p in parameters.values())
    assert effect_of(function) is Effect.MODEL  # as the prompt was: runs without asking first
