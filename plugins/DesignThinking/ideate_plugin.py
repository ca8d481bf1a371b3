"""Built-in native plugin: DesignThinking.Ideate, a table of 20 different ideas on any model.

Asked for a 20-row table in one answer, the default 1.5B model loops: it repeats rows, rewords one idea
a word at a time, cycles seven ideas over three problems, or types every idea the same fruit
(docs/models.md). So where the service has structured output (local, OpenAI, Azure) the model is asked
for the ideas as JSON constrained by a schema, one problem at a time, each problem's share of both fruits
fixed by the schema itself. An idea that repeats a kept one (by the rule of the shipped eval's
``distinct`` check) is dropped, and the model is asked again for what is missing, about another angle
each time, a bounded number of times. Other services run the prompt this replaced (``_ideate_prompt/``,
kept out of the plugin's functions by its leading underscore).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from semantic_kernel import Kernel
from semantic_kernel.functions import KernelArguments, KernelFunctionFromPrompt, kernel_function

from kernel_app.base.effects import uses_model
from kernel_app.base.partial_output import send_part, streaming
from plugins._native_calls import Progress, chat_service, terminal_progress
from plugins._prompt_folders import prompt_answer, prompt_folder_function, prompt_folder_sampling
from plugins.DesignThinking._ideas import (
    FRUITS,
    HEADER,
    HIGHER,
    KEYS,
    LOWER,
    TARGET,
    Idea,
    IdeaTable,
    Problem,
    ideas_schema,
    problems_in,
    read_answer,
)

PROMPT_FOLDER = Path(__file__).with_name("_ideate_prompt")
# What the planner and the chat engine see: the words of the prompt function this replaced, unchanged.
DESCRIPTION = (
    "Design thinking step 3: brainstorm ideas for defined customer problems, as a markdown table of 10 "
    "lower-hanging fruit (quick, easy) and 10 higher-hanging fruit (bigger) ideas."
)

STRUCTURED_PROMPT = """You are a design thinking expert. A business defined these customer problems:
---
{{$input}}
---

Brainstorm ideas for one of these problems only: {{$problem}}

{{$asked}}
Every idea is a different, specific action of 2 to 6 words. Its description is one short sentence of at
most 12 words saying how it solves this problem.
Answer with JSON only: {{$shape}}
"""
_FRUIT_WORDS = {
    LOWER: '"lower-hanging fruit" ideas (quick, cheap and easy to try)',
    HIGHER: '"higher-hanging fruit" ideas (bigger ideas that cost more but have more impact)',
}
# Requests after each problem's first: for ideas dropped as repeats. Bounded, so a model that keeps
# repeating itself ends with a shorter table and a note saying so, never a loop.
EXTRA_REQUESTS = 4
# What each of those requests asks the ideas to be about: asked the same question again, a small model
# gives the same ideas again. (Shown the ideas taken so far and told not to repeat them, the 1.5B copied
# them into its answer instead, for the wrong problem too: docs/models.md.)
ANGLES = (
    "technology",
    "staff and training",
    "prices and offers",
    "marketing and talking to customers",
    "partners and suppliers",
    "how the work is organised",
)
# Tokens an idea may take in JSON (~40 on Qwen's tokenizer: a 6-word idea, a 12-word sentence, the keys),
# with room; a request's max_tokens is this per idea asked for, plus the label.
TOKENS_PER_IDEA = 60
LABEL_TOKENS = 40
SAMPLING_KEYS = ("temperature", "top_p", "seed")
# The prompt's config.json, should it be unreadable: its own settings.
FALLBACK_SAMPLING: dict[str, Any] = {"temperature": 0.9, "top_p": 0.9}


class IdeatePlugin:
    """Design thinking's ideas as one markdown table of 20 different ideas."""

    def __init__(self, progress: Progress | None = None, extra_requests: int = EXTRA_REQUESTS) -> None:
        self._progress = progress or terminal_progress
        self._extra_requests = extra_requests

    @uses_model  # it asks the model and renders a table: no effect outside
    @kernel_function(name="Ideate", description=DESCRIPTION)
    async def ideate(
        self,
        # Injected by semantic-kernel; kept out of tool schemas (a Kernel is not JSON-serialisable).
        kernel: Annotated[Kernel, {"include_in_function_choices": False}],
        input: Annotated[str, "The problem definitions (the Define output)"],
    ) -> Annotated[str, "One markdown table: Idea, Type, Problem it solves, Description"]:
        service = chat_service(kernel)
        if service is not None:
            from kernel_app.providers.execution_settings import supports_response_format

            if supports_response_format(service):
                return await self._structured(kernel, service, input)
        # The prompt this function replaced, streamed to a caller that streams, as a prompt function's answer is.
        function = prompt_folder_function(PROMPT_FOLDER, "Ideate", "DesignThinking")
        return await prompt_answer(kernel, function, KernelArguments(input=input), stream=True)

    async def _structured(self, kernel: Kernel, service: Any, input: str) -> str:
        table = IdeaTable(problems_in(input))
        rows: list[str] = []  # the rows as kept (and, when the caller streams, as sent)
        first_rounds = len(table.problems)
        requests = 0
        try:
            while not table.full and requests < first_rounds + self._extra_requests:
                extra = requests - first_rounds  # < 0: the problem's first request
                problem = requests if extra < 0 else _most_missing(table)
                asked = {fruit: table.missing(problem, fruit) for fruit in FRUITS}
                if extra >= 0:  # one more of each still missing: room for another repeat
                    asked = {fruit: count + 1 if count else 0 for fruit, count in asked.items()}
                if not any(asked.values()):
                    break
                requests += 1
                angle = ANGLES[extra % len(ANGLES)] if extra >= 0 else ""
                used = 0

                def keep(text: str, problem: int = problem) -> None:
                    nonlocal used
                    answer = read_answer(text)
                    if answer.label and problem not in table.labels:
                        table.labels[problem] = answer.label
                    for fruit, idea, description in answer.ideas[used:]:
                        if table.add(Idea(idea, fruit, problem, description)):
                            rows.append(table.row(len(table.ideas)))
                            if streaming():
                                send_part((HEADER if len(rows) == 1 else "") + rows[-1])
                    used = len(answer.ideas)
                    where = f"problem {problem + 1} of {len(table.problems)}"
                    self._progress(f"Ideate: {where}, {len(table.ideas)} of {TARGET} ideas...")

                await self._ask(kernel, service, input, table.problems[problem], asked, angle, keep)
        finally:
            self._progress("")
        if not rows:
            from kernel_app.base.errors import ModelError

            raise ModelError(
                f"DesignThinking.Ideate: the model gave no usable idea in {requests} requests",
                raw_output="",
            )
        note = ""
        if not table.full:
            note = (
                f"\nOnly {len(rows)} of {TARGET} ideas: in {requests} requests the model gave no other idea "
                "that did not repeat one above.\n"
            )
            if streaming():
                send_part(note)
        return HEADER + "".join(rows) + note

    async def _ask(
        self,
        kernel: Kernel,
        service: Any,
        input: str,
        problem: Problem,
        asked: dict[str, int],
        angle: str,
        on_text: Callable[[str], None],
    ) -> str:
        """One problem's ideas as JSON, streamed (about ``angle``, if any); ``on_text`` sees the answer so far
        after each chunk."""
        from kernel_app.base.usage import Usage, report_usage
        from kernel_app.providers.execution_settings import execution_settings, json_schema_format

        function = KernelFunctionFromPrompt(
            function_name="IdeateStructured", plugin_name="DesignThinking", prompt=STRUCTURED_PROMPT
        )
        count = sum(asked.values())
        schema = ideas_schema(asked[LOWER], asked[HIGHER], label=not problem.label)
        options = {
            # The sampling of the prompt's config.json, so a plugin author tunes one place.
            **prompt_folder_sampling(PROMPT_FOLDER, SAMPLING_KEYS, FALLBACK_SAMPLING),
            "max_tokens": LABEL_TOKENS + TOKENS_PER_IDEA * count,
            "response_format": json_schema_format(schema, "ideas"),
        }
        arguments = KernelArguments(
            settings=execution_settings(service, options),
            input=input,
            problem=problem.text,
            asked=_asked_words(asked, angle),
            shape=_shape(asked, label=not problem.label),
        )
        parts: list[str] = []
        usage = Usage()
        try:
            async for chunk in kernel.invoke_stream(function, arguments):
                for message in chunk if isinstance(chunk, list) else [chunk]:
                    parts.append(str(message) if message is not None else "")
                    usage = usage + Usage.from_metadata(getattr(message, "metadata", None))
                on_text("".join(parts))
        finally:
            report_usage(usage)  # streamed: record_usage never sees these chunks
        return "".join(parts)


def _most_missing(table: IdeaTable) -> int:
    """The problem furthest from its share (the first of those tied)."""
    missing = [sum(table.missing(problem, fruit) for fruit in FRUITS) for problem in range(len(table.problems))]
    return missing.index(max(missing))


def _asked_words(asked: dict[str, int], angle: str) -> str:
    wanted = [f"{count} {_FRUIT_WORDS[fruit]}" for fruit, count in asked.items() if count]
    about = f" This time, give ideas about {angle}." if angle else ""
    return "Give " + " and ".join(wanted) + "." + about


def _shape(asked: dict[str, int], *, label: bool) -> str:
    """The answer's JSON shape, as the schema has it, for the model to read."""
    shape: dict[str, Any] = {"problem": "the problem in 2 to 5 words"} if label else {}
    for fruit, count in asked.items():
        if count:
            shape[KEYS[fruit]] = [{"idea": "...", "description": "..."}]
    return json.dumps(shape)
