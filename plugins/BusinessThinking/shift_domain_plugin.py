"""Built-in native plugin: BusinessThinking.ShiftDomain, a SWOT (or any markdown tables) rewritten for
another business domain, keeping its structure.

Where the input holds markdown tables and the service has structured output (local, OpenAI, Azure), each
table is asked for on its own: the model sees the old rows, one by one, and writes "the matching point for a
<domain> business" as JSON constrained by a schema (exactly as many rows, the same columns); the text
around the tables (headings) and the column names are kept as they were. The old business's own words
("pizza", "shop") are named as words to avoid, and a row that still uses them is asked for once more.
Asked for the whole SWOT at once, the 1.5B returned a pizza shop's tables nearly unchanged for a cleaning
service (docs/models.md). Anything else (no tables, a service without structured output, an answer that
stays unusable) gets the free-form prompt, as the SWOT falls back to SWOTDraft.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from semantic_kernel import Kernel
from semantic_kernel.functions import KernelArguments, KernelFunctionFromPrompt, kernel_function

from kernel_app.base.effects import uses_model
from kernel_app.base.partial_output import send_part, streaming
from plugins._native_calls import Progress, chat_service, terminal_progress
from plugins.BusinessThinking._markdown_tables import (
    Document,
    Table,
    fitted_rows,
    parse,
    parts,
    render_plain,
    rest_from_table,
    with_rows,
)
from plugins.BusinessThinking._old_domain_words import old_domain_words, old_words_in, words_of
from plugins.BusinessThinking._swot_tables import CUT_MARGIN, _ended

# The prompt the function was before it had tables rewritten one by one (its config.json's sampling too):
# the answer for a text without tables, or from a service without structured output.
PROMPT = """You are a business consultant. Below is a finished SWOT analysis of one business.
Rewrite it for a business in another domain.

New domain: {{$domain}}

SWOT analysis:
---
{{$input}}
---

Keep the four categories (Strengths, Weaknesses, Opportunities, Threats), the same number of
points and the same markdown format. Change every point so it fits the new domain, using that
domain's customers, work, words and risks.

Answer with only the rewritten SWOT analysis.
"""
PROMPT_SETTINGS: dict[str, Any] = {"max_tokens": 1000, "temperature": 0.9, "top_p": 0.5}

# "Every new row must belong under ...": without it, 5 of the 1.5B's 6 Threats tables (3 runs of each shipped
# case) had a row that is no threat ("Business growth opportunities"); with it, 3 of 3 tables tried were.
TABLE_PROMPT = """You are a business consultant. This is the "{{$heading}}" table of a SWOT analysis of another
business:

{{$old_rows}}

A {{$domain}} business wants the same table about itself. For each row, write the matching point for a
{{$domain}} business and why it matters to that business, each cell about as short as the one it replaces.
Every new row must belong under "{{$heading}}", as the row it replaces does.
{{$avoid}}{{$note}}Answer with JSON only, {{$count}} rows in the same order: {"rows": [{{$example}}]}
"""
# 3 or 4 rows of two short cells; room for a longer table's rows.
TABLE_SETTINGS: dict[str, Any] = {"max_tokens": 600, "temperature": 0.4, "top_p": 0.9}
# A cell's bound: three times the longest cell of its column, within these. It keeps a small model from
# looping inside one string (see _swot_tables.POINT_MAX); a cell that reaches it is ended at a boundary. At
# twice, the 1.5B's reasons for a cleaning service (~130 characters for old ones of ~60) were cut.
CELL_MIN, CELL_MAX = 120, 300


class ShiftDomainPlugin:
    """A SWOT analysis rewritten for another business domain."""

    def __init__(self, progress: Progress | None = None) -> None:
        self._progress = progress or terminal_progress

    # The name, parameters and description are those of the prompt function it replaces: the planner's
    # goals (planners/goals.evals.yaml) were measured with them.
    @uses_model  # it asks the model and renders tables: no effect outside
    @kernel_function(
        name="ShiftDomain",
        description="Re-express a finished SWOT analysis for another business domain (e.g. construction "
        "management), keeping its structure and format.",
    )
    async def shift_domain(
        self,
        # Injected by semantic-kernel; kept out of tool schemas (a Kernel is not JSON-serialisable).
        kernel: Annotated[Kernel, {"include_in_function_choices": False}],
        input: Annotated[str, "A finished SWOT analysis (markdown tables or lists)"],
        domain: Annotated[
            str, "The business domain to rewrite it for, e.g. 'construction management' or 'cleaning services'"
        ],
    ) -> str:
        # Leading and trailing blank lines are no part of the SWOT: the answer starts at its first line.
        document = parse(input.strip())
        service = chat_service(kernel)
        if not document.tables or service is None or not _structured(service):
            return await _prompt_answer(kernel, input, domain)
        return await self._shift_tables(kernel, service, document, domain)

    async def _shift_tables(self, kernel: Kernel, service: Any, document: Document, domain: str) -> str:
        tables = document.tables
        old_rows = [fitted_rows(table) for table in tables]
        old_words = old_domain_words((" ".join(row) for rows in old_rows for row in rows), domain)
        new_rows: list[list[tuple[str, ...]]] = [list(rows) for rows in old_rows]
        sent: list[str] = []
        try:
            for index, table in enumerate(tables):
                self._progress(f"ShiftDomain: table {index + 1} of {len(tables)}...")
                rows = await _shifted_rows(kernel, service, table, domain, old_words)
                if rows is None:  # no usable answer, twice: the prompt rewrites what is left
                    self._progress("")
                    rest = await _prompt_answer(kernel, rest_from_table(document, index), domain)
                    if not sent:
                        return rest
                    return self._send("".join(sent), "\n\n" + rest)
                new_rows[index] = rows
                if streaming():  # this table, with the text above it, will not change: show it now
                    sent.append(parts(with_rows(document, new_rows))[index])
                    self._progress("")
                    send_part(sent[-1])
        finally:
            self._progress("")
        pieces = parts(with_rows(document, new_rows))
        if not streaming():
            return "".join(pieces)
        return self._send("".join(sent), "".join(pieces[len(sent) :]))

    @staticmethod
    def _send(shown: str, rest: str) -> str:
        send_part(rest)
        return shown + rest


async def _shifted_rows(
    kernel: Kernel, service: Any, table: Table, domain: str, old_words: list[str]
) -> list[tuple[str, ...]] | None:
    """The table's rows for ``domain``, or None when the model gave no usable rows, asked twice. Rows still
    about the old business (its words, or its row copied) are asked for once more; each row keeps the
    first answer of the two that is not."""
    rows = await _ask_rows(kernel, service, table, domain, old_words, "")
    if rows is None:
        rows = await _ask_rows(kernel, service, table, domain, old_words, "Your last answer was not that JSON.\n")
        if rows is None:
            return None
    stale = [_staleness(new, old, old_words) for new, old in zip(rows, fitted_rows(table), strict=True)]
    if not any(stale):
        return rows
    again = await _ask_rows(kernel, service, table, domain, old_words, _stale_note(stale))
    if again is None:
        return rows
    return [
        fresh if reason and not _staleness(fresh, old, old_words) else row
        for row, fresh, old, reason in zip(rows, again, fitted_rows(table), stale, strict=True)
    ]


# A new row that has this share of its old row's words is the old row with a word or two swapped: the 1.5B
# wrote "Construction management can partner with local events to promote its products and services." for
# "The bakery can partner with local events to promote its products and services." (12 of 13 words).
COPIED_SHARE = 0.8


def _staleness(new: tuple[str, ...], old: tuple[str, ...], old_words: list[str]) -> str:
    """Why a new row is still about the old business ("" when it is not): the old words it uses, or "copied"."""
    used = old_words_in(" ".join(new), old_words)
    if used:
        return ", ".join(used)
    before = words_of(" ".join(old))
    return "copied" if before and len(before & words_of(" ".join(new))) >= COPIED_SHARE * len(before) else ""


def _stale_note(stale: list[str]) -> str:
    """What the retry's prompt says was wrong with the last answer, row by row."""
    used = sorted({word for reason in stale if reason and reason != "copied" for word in reason.split(", ")})
    notes = []
    if used:
        rows = [number for number, reason in enumerate(stale, 1) if reason and reason != "copied"]
        notes.append(
            f"Your last answer still wrote about the other business ({', '.join(used)}) in row {_numbers(rows)}."
        )
    copied = [number for number, reason in enumerate(stale, 1) if reason == "copied"]
    if copied:
        notes.append(
            f"Your last answer copied the other business's row {_numbers(copied)}, changing only its name: "
            "write what such a point means for this business, in new words."
        )
    return "\n".join(notes) + "\n"


async def _ask_rows(
    kernel: Kernel, service: Any, table: Table, domain: str, old_words: list[str], note: str
) -> list[tuple[str, ...]] | None:
    from kernel_app.providers.execution_settings import execution_settings, json_schema_format

    keys = column_keys(table)
    bounds = cell_bounds(table)
    schema = rows_schema(keys, bounds, len(table.rows))
    options = {**TABLE_SETTINGS, "response_format": json_schema_format(schema, "table_rows")}
    function = KernelFunctionFromPrompt(
        function_name="ShiftDomainTable", plugin_name="BusinessThinking", prompt=TABLE_PROMPT
    )
    avoid = ", ".join(old_words)
    arguments = KernelArguments(
        settings=execution_settings(service, options),
        domain=domain,
        heading=table.line_above.strip("#* ") or "table",
        old_rows=old_rows_text(table, keys),
        avoid=f"Do not use the words {avoid}: they belong to the other business.\n" if avoid else "",
        note=note,
        count=str(len(table.rows)),
        example=json.dumps({key: "..." for key in keys}),
    )
    answer = await kernel.invoke(function, arguments)
    return read_rows(str(answer) if answer is not None else "", keys, bounds, len(table.rows))


def column_keys(table: Table) -> list[str]:
    """The JSON key of each column: its name, or "column N" for an empty or repeated one."""
    keys: list[str] = []
    for number, name in enumerate(table.columns, 1):
        keys.append(name if name and name not in keys else f"column {number}")
    return keys


def cell_bounds(table: Table) -> list[int]:
    """Each column's longest answer: three times its longest cell, within CELL_MIN and CELL_MAX characters."""
    return [
        min(CELL_MAX, max(CELL_MIN, 3 * max((len(row[column]) for row in fitted_rows(table)), default=0)))
        for column in range(len(table.columns))
    ]


def rows_schema(keys: list[str], bounds: list[int], count: int) -> dict[str, Any]:
    """JSON Schema of ``{"rows": [...]}``: exactly ``count`` rows, each with every column as text."""
    row = {
        "type": "object",
        "properties": {
            key: {"type": "string", "minLength": 2, "maxLength": bound} for key, bound in zip(keys, bounds, strict=True)
        },
        "required": keys,
    }
    return {
        "type": "object",
        "properties": {"rows": {"type": "array", "items": row, "minItems": count, "maxItems": count}},
        "required": ["rows"],
    }


def old_rows_text(table: Table, keys: list[str]) -> str:
    """The old rows as the prompt shows them: the table as it was."""
    return render_plain(table)


def read_rows(answer: str, keys: list[str], bounds: list[int], count: int) -> list[tuple[str, ...]] | None:
    """The rows of a JSON answer, each cell ended if the length bound cut it; None unless there are at
    least ``count`` rows with every column filled (rows past ``count`` are dropped)."""
    try:
        data = json.loads(_json_text(answer))
    except ValueError:
        return None
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        return None
    result: list[tuple[str, ...]] = []
    for item in rows[:count]:
        if not isinstance(item, dict):
            return None
        cells = [item.get(key) for key in keys]
        if not all(isinstance(cell, str) and cell.strip() for cell in cells):
            return None
        result.append(tuple(_whole(str(cell), bound) for cell, bound in zip(cells, bounds, strict=True)))
    return result if len(result) == count else None


def _json_text(answer: str) -> str:
    """The JSON in an answer, without a markdown code fence a service without a grammar may put around it."""
    text = answer.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


def _whole(cell: str, bound: int) -> str:
    """A cell as a whole sentence or phrase: one the grammar closed at its bound is ended at a boundary."""
    # A brace the model wrote inside the string, as if closing the JSON ("...customer service.}"), is dropped.
    cell = cell.strip().rstrip("{}[]").rstrip()
    return _ended(cell) if len(cell) >= bound - CUT_MARGIN else cell


def _numbers(numbers: list[int]) -> str:
    text = [str(n) for n in numbers]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]


async def _prompt_answer(kernel: Kernel, input: str, domain: str) -> str:
    """The free-form rewrite (the prompt this function had before it rewrote tables one by one)."""
    from kernel_app.providers.execution_settings import execution_settings

    function = KernelFunctionFromPrompt(function_name="ShiftDomainText", plugin_name="BusinessThinking", prompt=PROMPT)
    service = chat_service(kernel)
    settings = execution_settings(service, PROMPT_SETTINGS) if service is not None else None
    arguments = KernelArguments(settings=settings, input=input, domain=domain)
    answer = await kernel.invoke(function, arguments)
    return str(answer).strip() if answer is not None else ""


def _structured(service: Any) -> bool:
    from kernel_app.providers.execution_settings import supports_response_format

    return supports_response_format(service)
