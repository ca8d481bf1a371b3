"""``llm-rubric``: a judge model grades the output against a rubric, answering ``{pass, score, reason}``.

The judge is called by the runner between ``produce`` and ``check`` (:func:`grade`), which keeps its
verdicts on the output; the assertion only reads them, so checks stay pure and re-checking a cached
output never calls a model twice. The answer is asked for as structured output (``response_format``
with a JSON schema, a grammar on the embedded model) and still parsed strictly: an answer that is not
that JSON is a failed assertion with the reason, never a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import innermost_message
from kernel_app.kernel.evals.assertions import AssertionResult, Check, Output, register

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

    from kernel_app.kernel.evals.spec import EvalCase

RUBRIC_TYPES = ("llm-rubric", "not-llm-rubric")
SCHEMA_NAME = "rubric_verdict"
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "pass": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string"},
    },
    "required": ["pass", "score", "reason"],
    "additionalProperties": False,
}

SYSTEM_PROMPT = """You grade an output against a rubric. Read the rubric, then the output, and decide whether \
the output meets the rubric. Answer with JSON only: {"pass": true or false, "score": a number from 0 (does not \
meet it at all) to 1 (meets it fully), "reason": one short sentence saying why}."""

# The judge's answer is a short JSON object: a bound keeps a looping model from running on.
MAX_TOKENS = 300


@dataclass(frozen=True)
class Verdict:
    """What the judge said of one output for one rubric; ``error`` when its answer could not be used."""

    passed: bool = False
    score: float = 0.0
    reason: str = ""
    error: str | None = None


@dataclass
class Judge:
    """The model that grades rubrics: a chat service and the name reports show for it."""

    service: ChatCompletionClientBase
    name: str = "judge"


def needs_judge(cases: list[EvalCase]) -> bool:
    """Whether any case has an ``llm-rubric``: only then is a judge model built (and loaded)."""
    return any(spec.type in RUBRIC_TYPES for case in cases for spec in case.asserts)


async def grade(judge: Judge | None, output: Output, case: EvalCase) -> Output:
    """``output`` with the judge's verdict on each of the case's rubrics (none when the run failed)."""
    rubrics = list(dict.fromkeys(str(s.params["value"]) for s in case.asserts if s.type in RUBRIC_TYPES))
    if output.error is not None or not rubrics:
        return output
    verdicts: dict[str, Verdict] = {}
    for rubric in rubrics:
        if judge is None:
            verdicts[rubric] = Verdict(error="no judge model: pass one with --judge-service/--judge-model")
        else:
            verdicts[rubric] = await ask(judge, rubric, output.text)
    return replace(output, verdicts={**output.verdicts, **verdicts})


async def ask(judge: Judge, rubric: str, text: str) -> Verdict:
    """One judge call; a failing service or an unusable answer is a verdict with an error."""
    from semantic_kernel.contents import ChatHistory

    from kernel_app.providers.execution_settings import execution_settings, json_schema_format

    # Asked of every service: one whose settings lack response_format keeps it in extension_data, which
    # semantic-kernel's connectors do not send, and the answer is parsed strictly either way.
    response_format = json_schema_format(VERDICT_SCHEMA, SCHEMA_NAME)
    options: dict[str, Any] = {"temperature": 0.0, "max_tokens": MAX_TOKENS, "response_format": response_format}
    history = ChatHistory()
    history.add_system_message(SYSTEM_PROMPT)
    history.add_user_message(f"Rubric:\n{rubric}\n\nOutput:\n<<<\n{text}\n>>>")
    try:
        message = await judge.service.get_chat_message_content(history, execution_settings(judge.service, options))
    except Exception as error:  # any service failure (HTTP, no model, a scripted test's empty queue)
        return Verdict(error=f"the judge {judge.name} failed: {innermost_message(error)}")
    return parse_verdict(message.content if message is not None else "")


_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.S)


def parse_verdict(answer: str | None) -> Verdict:
    """The judge's JSON ``{pass, score, reason}`` as a Verdict, or one with the error saying what was wrong."""
    text = (answer or "").strip()
    fenced = _FENCE.match(text)  # a judge that ignores structured output may still fence its JSON
    if fenced:
        text = fenced.group(1).strip()
    shown = " ".join(text.split())
    shown = repr(shown if len(shown) <= 60 else shown[:59] + "…")
    try:
        # strict=False: llama.cpp's JSON grammar lets raw newlines into strings
        data = json.loads(text, strict=False)
    except (ValueError, RecursionError):
        return Verdict(error=f"the judge's answer is not JSON {{pass, score, reason}}: {shown}")
    if not isinstance(data, dict):
        return Verdict(error=f"the judge's answer is not a JSON object: {shown}")
    passed, score, reason = data.get("pass"), data.get("score"), data.get("reason", "")
    if not isinstance(passed, bool):
        return Verdict(error=f"the judge's answer has no true/false `pass`: {shown}")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= float(score) <= 1.0:
        return Verdict(error=f"the judge's answer has no `score` in [0, 1]: {shown}")
    return Verdict(passed, float(score), " ".join(str(reason).split()))


def _valid_rubric(params: Mapping[str, Any]) -> str | None:
    if not str(params["value"]).strip():
        return "value: the rubric is empty"
    threshold = params.get("threshold")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        return f"threshold: {threshold} is outside [0, 1]"
    return None


def _rubric_assertion(negate: bool) -> Check:
    name = RUBRIC_TYPES[negate]

    def check(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
        verdict = output.verdicts.get(str(params["value"]))
        if not isinstance(verdict, Verdict):
            return AssertionResult(name, False, 0.0, "the judge was not asked (run it through kernel-app eval)")
        if verdict.error is not None:
            return AssertionResult(name, False, 0.0, verdict.error)
        threshold = params.get("threshold")
        # With a threshold the score decides (as promptfoo's); without one, the judge's own pass.
        met = verdict.passed if threshold is None else verdict.score >= float(threshold)
        said = f"judge: {verdict.reason or 'no reason given'} (score {verdict.score:.2f}"
        said += ")" if threshold is None else f", threshold {float(threshold):g})"
        score = 1.0 - verdict.score if negate else verdict.score
        return AssertionResult(name, met != negate, score, said)

    return check


for _negate in (False, True):
    register(RUBRIC_TYPES[_negate], {"value": ((str,), True), "threshold": ((int, float), False)}, _valid_rubric)(
        _rubric_assertion(_negate)
    )
