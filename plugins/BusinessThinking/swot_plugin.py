"""Built-in native plugin: BusinessThinking.SWOT, four markdown tables on any model.

Where the service has structured output (local, OpenAI, Azure) the model is asked for the four
quadrants as JSON, constrained by a schema, and the tables are rendered from it; the answer streams,
so a person at a terminal sees each quadrant arrive on stderr instead of nothing for many seconds.
Other services get the BusinessThinking.SWOTDraft prompt, whose free-form draft is parsed instead
(see plugins.BusinessThinking._swot_tables).
"""

from __future__ import annotations

from typing import Annotated, Any

from semantic_kernel import Kernel
from semantic_kernel.functions import KernelArguments, KernelFunctionFromPrompt, kernel_function

from kernel_app.base.effects import uses_model
from kernel_app.base.partial_output import send_part, streaming
from kernel_app.conversation.calls import result_is_answer
from plugins._native_calls import Progress, chat_service, terminal_progress
from plugins.BusinessThinking._swot_tables import (
    CATEGORIES,
    SECTION_SEPARATOR,
    SWOT_SCHEMA,
    count_json_points,
    finished_quadrants,
    parse_swot_json,
    render_quadrant,
    render_swot,
    to_swot_tables,
)

STRUCTURED_PROMPT = """You are a business consultant. Write a SWOT analysis of this business:
---
{{$input}}
---

Owner's interview answers (may be empty):
---
{{$answers}}
---

Base the analysis on the answers when there are any; otherwise use what is typical for this kind of business.
Give 3 points in each of strengths, weaknesses, opportunities and threats. Each point is a short phrase
of 2 to 5 words about this business (not the business's name or description), different from every other
point, with a reason why it matters: one short sentence of at most 15 words, ending with a full stop.
Strengths and weaknesses are inside the business; opportunities and threats come from outside it
(customers, competitors, the market, the town).
Answer with JSON only:
{"strengths": [{"point": "...", "why": "..."}], "weaknesses": [...], "opportunities": [...], "threats": [...]}
"""
# Sampling when BusinessThinking.SWOTDraft (whose config.json settings the JSON answer uses, so a plugin
# author tunes one place) is missing. 12 points of ~35 tokens, room for a fourth point per quadrant.
FALLBACK_SETTINGS: dict[str, Any] = {"max_tokens": 1000, "temperature": 0.4, "top_p": 0.9}


class SWOTPlugin:
    """A SWOT analysis as four markdown tables."""

    def __init__(self, progress: Progress | None = None) -> None:
        self._progress = progress or terminal_progress

    @result_is_answer  # in a conversation the four tables are shown as they are, not retold by the model
    @uses_model  # it drafts with the model and renders tables: no effect outside
    @kernel_function(
        name="SWOT",
        description="Write a SWOT analysis (strengths, weaknesses, opportunities, threats) of a business as four "
        "markdown tables, optionally based on the owner's interview answers.",
    )
    async def swot(
        self,
        # Injected by semantic-kernel; kept out of tool schemas (a Kernel is not JSON-serialisable).
        kernel: Annotated[Kernel, {"include_in_function_choices": False}],
        input: Annotated[str, "A description of the business, e.g. 'a family-run pizza shop in a small town'"],
        answers: Annotated[str, "Optional answers the owner gave to the SWOT interview questions"] = "",
    ) -> Annotated[str, "Four markdown tables: Strengths, Weaknesses, Opportunities, Threats"]:
        service = chat_service(kernel)
        if service is not None:
            from kernel_app.providers.execution_settings import supports_response_format

            if supports_response_format(service):
                sent: list[str] = []
                answer = await self._structured_answer(kernel, service, input, answers, sent)
                draft = parse_swot_json(answer)
                if sent:  # the finished tables were shown as they came: the answer is those and the rest
                    return self._send_rest(render_swot(draft), sent)
                # A service that ignored the schema still gets its answer read as a draft, not a second call.
                return render_swot(draft) if draft.found_any else to_swot_tables(answer)
        draft_text = await kernel.invoke(
            plugin_name="BusinessThinking",
            function_name="SWOTDraft",
            arguments=KernelArguments(input=input, answers=answers),
        )
        return to_swot_tables(str(draft_text))

    def _send_rest(self, tables: str, sent: list[str]) -> str:
        shown = "".join(sent)
        # Tables already shown never change (see finished_quadrants); should one have, all are shown again.
        rest = tables[len(shown) :] if tables.startswith(shown) else SECTION_SEPARATOR + tables
        send_part(rest)
        return shown + rest

    async def _structured_answer(
        self, kernel: Kernel, service: Any, input: str, answers: str, sent: list[str] | None = None
    ) -> str:
        """The JSON answer, streamed; each quadrant's progress is reported as its points complete and,
        when the caller streams (kernel_app.base.partial_output), each finished quadrant's table goes to it
        (and into ``sent``)."""
        from semantic_kernel.functions import KernelFunctionFromPrompt

        from kernel_app.base.usage import Usage, report_usage
        from kernel_app.providers.execution_settings import execution_settings, json_schema_format

        function = KernelFunctionFromPrompt(
            function_name="SWOTStructured", plugin_name="BusinessThinking", prompt=STRUCTURED_PROMPT
        )
        options = {**_draft_sampling(kernel), "response_format": json_schema_format(SWOT_SCHEMA, "swot")}
        settings = execution_settings(service, options)
        arguments = KernelArguments(settings=settings, input=input, answers=answers)
        parts: list[str] = []
        usage = Usage()
        shown = ""
        try:
            async for chunk in kernel.invoke_stream(function, arguments):
                for message in chunk if isinstance(chunk, list) else [chunk]:
                    text = str(message) if message is not None else ""
                    parts.append(text)
                    usage = usage + Usage.from_metadata(getattr(message, "metadata", None))
                text = "".join(parts)
                if sent is not None and streaming():
                    for category in CATEGORIES[len(sent) : finished_quadrants(text)]:
                        self._progress("")  # the table goes where the progress line was
                        shown = ""
                        table = render_quadrant(parse_swot_json(text), category)
                        # The blank line between tables is split so that each ends its line: the
                        # progress line redrawn after it must not overwrite the last row.
                        sent.append(("\n" if sent else "") + table + "\n")
                        send_part(sent[-1])
                line = _progress_line(count_json_points(text))
                if line != shown:
                    self._progress(line)
                    shown = line
        finally:
            self._progress("")
            report_usage(usage)  # streamed: record_usage never sees these chunks
        return "".join(parts)


def _progress_line(counts: dict[str, int]) -> str:
    if not counts:
        return "SWOT: thinking..."
    done = [f"{category} {counts[category]}" for category in CATEGORIES if category in counts]
    return "SWOT: " + ", ".join(done) + "..."


def _draft_sampling(kernel: Kernel) -> dict[str, Any]:
    """The sampling options of BusinessThinking.SWOTDraft's config.json ("default" service)."""
    try:
        draft = kernel.get_function("BusinessThinking", "SWOTDraft")
    except Exception:  # SWOTDraft removed
        return dict(FALLBACK_SETTINGS)
    if not isinstance(draft, KernelFunctionFromPrompt):  # replaced by a native function
        return dict(FALLBACK_SETTINGS)
    configured = draft.prompt_execution_settings
    chosen = configured.get("default") or next(iter(configured.values()), None)
    if chosen is None:
        return dict(FALLBACK_SETTINGS)
    options = {
        **chosen.extension_data,
        **chosen.model_dump(exclude_none=True, exclude={"service_id", "extension_data"}),
    }
    return {k: v for k, v in options.items() if k in ("max_tokens", "temperature", "top_p", "seed")} or dict(
        FALLBACK_SETTINGS
    )
