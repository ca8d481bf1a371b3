"""Built-in native plugin: BusinessThinking.ChangeAudience, a text rewritten for its audience, tables kept.

Asked by one prompt to rewrite a SWOT's four tables, the default 1.5B model returned them nearly word for
word about half the time (ROUGE-L 0.85-0.99 against its input; docs/models.md). So where the text holds
markdown tables and the service has structured output (local, OpenAI, Azure), each table row is asked
for on its own, as JSON constrained by a schema whose keys are the table's columns, with the row's own
sentence shown and "use different words"; an answer that is still a near copy of its row is asked for
once more at a higher temperature. The tables are rendered back from the answers: headings, header rows
and layout as they were, exactly as many rows. Text outside the tables (a paragraph, a list) is rewritten
by the prompt (``_audience_prompt/``), which is also the whole function for a text without tables or a
service without structured output, as before this plugin existed.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from pathlib import Path
from typing import Annotated, Any

from semantic_kernel import Kernel
from semantic_kernel.functions import KernelArguments, KernelFunctionFromPrompt, kernel_function

from kernel_app.base.effects import uses_model
from kernel_app.base.partial_output import send_part, streaming
from plugins._native_calls import Progress, chat_service, terminal_progress
from plugins._prompt_folders import prompt_answer, prompt_folder_function
from plugins.BusinessThinking._markdown_tables import Document, Prose, Table, parse, render_segment

logger = logging.getLogger(__name__)

# The prompt of a text without tables (and of the text between tables); ``_`` keeps the plugin loader off
# it, so the planner sees one ChangeAudience, this one.
PROMPT_FOLDER = Path(__file__).with_name("_audience_prompt")

ROW_PROMPT = """Rewrite this row of a table ("{{$heading}}") in plain, everyday words:
{{$row}}

Use different words from the row: do not copy its sentence. Keep its subject and its meaning: the new
row says the same thing about the same thing. {{$shape}}
The person who will read it is {{$level}}, so replace every business word (such as leverage, inventory,
globalization, marketing channels) with simple words that they know.
Answer with JSON only: {{$keys}}
"""
# Sent after a near copy, with the copy: the same request, told what was wrong with the answer.
AGAIN = """
Your first answer, {{$copy}}, was too close to the row or too long. Write it again: in other words than
the row's, each cell about as long as the row's own."""

# Sampling of a row. At the prompt's own 0.9 / 0.5 the sampling is nearly greedy, and greedy decoding
# copies (docs/models.md); a row is short, so 200 tokens leave room for both cells of a long row.
ROW_SETTINGS: dict[str, Any] = {"max_tokens": 200, "temperature": 0.7, "top_p": 0.9}
RETRY_TEMPERATURE = 1.0
# Word-sequence similarity (difflib's ratio, close to ROUGE-L's F-measure) at which a row's rewrite counts
# as a copy of it. Rewrites of the bakery's SWOT rows by the 1.5B scored 0.1-0.6, near copies 0.75-0.9.
NEAR_COPY = 0.6
# How many times the row's words an answer may have before it is asked for again (1.5 let the SWOT grow
# to 314 of the eval's 320 words).
LONGER = 1.3
# A label (a cell of at most LABEL_WORDS words, such as a SWOT's point) answered with more than
# LABEL_GROWN words has become a sentence ("The bakery may face competition from other bakeries nearby.").
LABEL_WORDS = 5
LABEL_GROWN = 8


class ChangeAudiencePlugin:
    """A text rewritten for a given audience, its tables kept as tables."""

    def __init__(self, progress: Progress | None = None) -> None:
        self._progress = progress or terminal_progress

    @uses_model  # it asks the model and renders tables: no effect outside
    @kernel_function(
        name="ChangeAudience",
        description="Rewrite a text (such as a SWOT analysis) so that a given audience, e.g. a child or a new "
        "employee, can understand it.",
    )
    async def change_audience(
        self,
        # Injected by semantic-kernel; kept out of tool schemas (a Kernel is not JSON-serialisable).
        kernel: Annotated[Kernel, {"include_in_function_choices": False}],
        input: Annotated[str, "The text to rewrite"],
        level: Annotated[str, "The audience to write for, e.g. 'child', 'high school student' or 'investor'"],
    ) -> str:
        document = parse(input)
        service = chat_service(kernel)
        if document.tables and service is not None:
            from kernel_app.providers.execution_settings import supports_response_format

            if supports_response_format(service):
                return await self._rewrite_document(kernel, service, document, level)
        return await self._prompt_answer(kernel, input, level, stream=True)

    async def _rewrite_document(self, kernel: Kernel, service: Any, document: Document, level: str) -> str:
        """Each segment in order: a table row by row, prose by the prompt, the rest as it is; each segment is
        sent to a streaming caller as soon as it is written (the answer is those parts joined)."""
        total = sum(len(table.rows) for table in document.tables)
        done = 0
        parts: list[str] = []
        try:
            for index, segment in enumerate(document.segments):
                if isinstance(segment, Table):
                    rows = []
                    for row in segment.rows:
                        self._progress(f"ChangeAudience: row {done + 1} of {total}...")
                        rows.append(await self._rewrite_row(kernel, service, segment, row, level))
                        done += 1
                    segment = Table(segment.header_line, segment.separator_line, rows, segment.heading)
                elif isinstance(segment, Prose):
                    segment = Prose(await self._prompt_answer(kernel, segment.text, level, stream=False))
                part = render_segment(segment) + ("\n" if index + 1 < len(document.segments) else "")
                parts.append(part)
                if streaming():
                    self._progress("")  # the part goes where the progress line was
                    send_part(part)
        finally:
            self._progress("")
        return "".join(parts)

    async def _rewrite_row(self, kernel: Kernel, service: Any, table: Table, row: list[str], level: str) -> list[str]:
        """``row`` rewritten: its cells with words in them asked for as one JSON object. A near copy, a label
        grown into a sentence or a row grown long is asked for once more, hotter, and the better answer kept
        (:func:`_rank`). A row the model never answered in JSON of its shape is kept as it was (and logged):
        a table loses no row."""
        columns = _column_keys(table.columns, len(row))
        asked = {key: cell for key, cell in zip(columns, row, strict=True) if _has_words(cell)}
        if not asked:
            return row
        answer = await self._ask_row(kernel, service, table, asked, level, ROW_SETTINGS["temperature"])
        if answer is not None and _rank(answer, asked)[:2] != (False, False):
            again = await self._ask_row(kernel, service, table, asked, level, RETRY_TEMPERATURE, copy=answer)
            if again is not None and _rank(again, asked) < _rank(answer, asked):
                answer = again
        elif answer is None:
            answer = await self._ask_row(kernel, service, table, asked, level, RETRY_TEMPERATURE)
        if answer is None:
            logger.warning("ChangeAudience: the model gave no row of %s for %r; kept as written", table.heading, asked)
            return row
        return [
            _written_like(cell, answer[key]) if key in answer else cell for key, cell in zip(columns, row, strict=True)
        ]

    async def _ask_row(
        self,
        kernel: Kernel,
        service: Any,
        table: Table,
        asked: dict[str, str],
        level: str,
        temperature: float,
        copy: dict[str, str] | None = None,
    ) -> dict[str, str] | None:
        """One request for the row's rewritten cells; None when the answer is not one object holding a
        non-empty string for each cell asked (malformed JSON, a list of rows, a missing column)."""
        from kernel_app.providers.execution_settings import execution_settings

        prompt = ROW_PROMPT + (AGAIN if copy is not None else "")
        function = KernelFunctionFromPrompt(
            function_name="ChangeAudienceRow", plugin_name="BusinessThinking", prompt=prompt
        )
        options = {**ROW_SETTINGS, "temperature": temperature, "response_format": _row_format(asked)}
        arguments = KernelArguments(
            settings=execution_settings(service, options),
            level=level,
            heading=table.heading or "a table",
            row=json.dumps(asked, ensure_ascii=False),
            shape=_shape(asked),
            keys=json.dumps(dict.fromkeys(asked, "..."), ensure_ascii=False),
            copy=json.dumps(copy, ensure_ascii=False) if copy is not None else "",
        )
        result = await kernel.invoke(function, arguments)
        return parse_row(str(result) if result is not None else "", list(asked))

    async def _prompt_answer(self, kernel: Kernel, text: str, level: str, stream: bool) -> str:
        """The prompt's rewrite of ``text``; streamed to a caller that takes parts when ``stream``."""
        arguments = KernelArguments(input=text, level=level)
        answer = await prompt_answer(kernel, prompt_function(), arguments, stream=stream)
        return answer if stream and streaming() else answer.strip()


def prompt_function() -> KernelFunctionFromPrompt:
    """The prompt of ``_audience_prompt/`` (skprompt.txt and config.json, as in a function folder)."""
    return prompt_folder_function(PROMPT_FOLDER, "ChangeAudiencePrompt", "BusinessThinking")


def parse_row(answer: str, keys: list[str]) -> dict[str, str] | None:
    """The model's row: one JSON object with a string of words under each of ``keys``; None otherwise (the
    0.5B answered "..." in cells, the placeholder of the prompt's answer shape)."""
    try:
        value = json.loads(answer)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    cells = {key: value.get(key) for key in keys}
    if not all(isinstance(cell, str) and _has_words(cell) for cell in cells.values()):
        return None
    return {key: " ".join(str(cell).split()) for key, cell in cells.items()}


def _written_like(original: str, rewritten: str) -> str:
    """A cell that was a sentence stays one, and one that began with a capital letter begins with one: the
    1.5B often leaves out the full stop ("...to buy their goods"), which reads, and is checked by evals, as
    a sentence cut off, and sometimes starts in lower case ("the bakery will have a hard time growing.")."""
    ended = re.compile(r"[.!?…)\]\"'’”]$")
    if ended.search(original) and not ended.search(rewritten):
        rewritten += "."
    if original[:1].isupper() and rewritten[:1].islower():
        rewritten = rewritten[0].upper() + rewritten[1:]
    return rewritten


def _rank(answer: dict[str, str], asked: dict[str, str]) -> tuple[bool, bool, float]:
    """How bad an answer is, for comparing two (lower is better): out of shape (a label grown into a sentence,
    or the row grown past LONGER times its words: at the retry's higher temperature the 1.5B sometimes
    wrote a row twice as long), then a near copy, then how similar. ``(False, False, ...)`` is a good one."""
    grown_label = any(
        len(asked[key].split()) <= LABEL_WORDS and len(value.split()) > LABEL_GROWN for key, value in answer.items()
    )
    too_long = len(_words(" ".join(answer.values()))) > LONGER * len(_words(" ".join(asked.values())))
    copied = similarity(answer, asked)
    return (grown_label or too_long, copied >= NEAR_COPY, copied)


def similarity(answer: dict[str, str], asked: dict[str, str]) -> float:
    """How much of the row the answer copies: difflib's ratio of the two word sequences, 0 to 1."""
    ours, theirs = _words(" ".join(answer.values())), _words(" ".join(asked.values()))
    return difflib.SequenceMatcher(None, ours, theirs, autojunk=False).ratio()


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _has_words(cell: str) -> bool:
    # A number, a mark or an empty cell is kept as it is; only text is rewritten.
    return re.search(r"[^\W\d_]{2,}", cell) is not None


def _column_keys(columns: list[str], width: int) -> list[str]:
    """One distinct JSON key per cell of a row: its column's name, or "column N" where the header has
    none (or too few cells)."""
    keys: list[str] = []
    for number in range(1, width + 1):
        name = columns[number - 1] if number <= len(columns) and columns[number - 1] else f"column {number}"
        keys.append(name if name not in keys else f"{name} ({number})")
    return keys


def _shape(asked: dict[str, str]) -> str:
    """How long each cell should be, from how long it was: a label stays a label."""
    lines = []
    for key, cell in asked.items():
        words = len(cell.split())
        size = "2 to 5 plain words" if words <= 5 else f"one short sentence of at most {max(10, words)} words"
        lines.append(f'"{key}": {size}.')
    return " ".join(lines)


def _row_format(asked: dict[str, str]) -> dict[str, Any]:
    from kernel_app.providers.execution_settings import json_schema_format

    # The bound keeps a small model from looping inside one string; far above what the prompt asks for.
    properties = {
        key: {"type": "string", "minLength": 1, "maxLength": max(60, 3 * len(cell))} for key, cell in asked.items()
    }
    schema = {"type": "object", "properties": properties, "required": list(asked)}
    return json_schema_format(schema, "row")
