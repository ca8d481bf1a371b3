"""Adversarial model answers for the sequential and the action planner (issue 10), over the scripted service.

Each answer either is tolerated (and then gives exactly the plan the model wrote, whole) or is a typed
error that a repair turn fixes; repeated, it ends in a one-line PlanningError. Never a traceback, never a
shorter plan than the model's, never an unbounded message or repair request. The classes of the issue:
answers that cannot be read whole (1), odd values (4), model text in messages (5), bracket-heavy prose
(6), huge quoted pieces (7) and null for a required argument (8).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel_app.providers.scripted import ScriptedChatCompletion
from planners import (
    ActionPlanner,
    EmptyPlanError,
    InvalidArgumentValueError,
    MissingArgumentError,
    NoFunctionFits,
    Plan,
    PlanError,
    PlanExecutor,
    PlanFormatError,
    PlanningError,
    PlanParseError,
    SequentialPlanner,
    UnknownArgumentError,
    UnknownFunctionError,
)
from planners.prompts import MAX_ECHOED_ANSWER
from tests.support.spies import count_invocations

GOAL = "Tomorrow is Valentine's day. I need to come up with a poem. Translate the poem to French."
S0 = {"function": "Writer.ShortPoem", "args": {"input": "Valentine's day"}, "output": "poem"}
S1 = {"function": "Writer.Translate", "args": {"input": "$poem", "language": "French"}, "output": "french"}
VALID = json.dumps({"steps": [S0, S1]})
J0, J1 = json.dumps(S0), json.dumps(S1)

SUM_GOAL = "What is the sum of 110 and 990?"
ADD = {"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}
SUM_VALID = json.dumps({"steps": [ADD]})
UPPER = json.dumps({"function": "Text.upper", "args": {"input": "$sum"}, "output": "loud"})

# A repair request may quote the previous answer (MAX_ECHOED_ANSWER) plus bounded problems; no more.
MAX_REPAIR_MESSAGE = 12_000
MAX_ERROR_LINE = 2_000


def second(**args: Any) -> str:
    """VALID with the second step's args replaced by raw JSON text for each key (to write NaN etc.)."""
    inner = ", ".join(f"{json.dumps(k)}: {v}" for k, v in args.items())
    return '{"steps": [' + J0 + ', {"function": "Writer.Translate", "args": {' + inner + '}, "output": "french"}]}'


def add_with(a: str, b: str = "990") -> str:
    return '{"steps": [{"function": "Math.add", "args": {"a": ' + a + ', "b": ' + b + '}, "output": "sum"}]}'


def nested(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


# (id, answer, expected error type, or None when the answer is tolerated and gives VALID whole)
SEQUENTIAL: list[tuple[str, str, type[Exception] | None]] = [
    # 1. not readable whole: a repair, never the first step alone
    ("line-comment-at-top", '{\n  // the plan\n  "steps": [' + J0 + ", " + J1 + "]\n}", PlanParseError),
    ("line-comment-between-steps", '{"steps": [' + J0 + ", // then translate\n" + J1 + "]}", PlanParseError),
    ("block-comments", '/* plan */ {"steps": [' + J0 + ", /* next */ " + J1 + "]}", PlanParseError),
    ("comment-in-bare-list", "[ // steps\n" + J0 + ", " + J1 + "]", PlanParseError),
    ("comment-only-before-list", "{ // wrapper\n" + '"steps": [' + J0 + ", " + J1 + "]}", PlanParseError),
    ("numbered-parens", f"1) {J0}\n2) {J1}", PlanParseError),
    ("numbered-dots", f"Step 1. {J0}\nStep 2. {J1}", PlanParseError),
    ("bulleted-steps", f"- {J0}\n- {J1}", PlanParseError),
    ("steps-in-two-fences", f"```json\n{J0}\n```\nthen\n```json\n{J1}\n```", PlanParseError),
    ("plan-then-an-extra-step", f"{VALID}\nAlso: {UPPER}", PlanParseError),
    ("two-plans", json.dumps({"steps": [S0]}) + " " + json.dumps({"steps": [S1]}), PlanParseError),
    ("plan-then-broken-json", VALID + ' and {"function": "Writer.Translate", ', PlanParseError),
    ("unquoted-keys", "{steps: [" + J0 + ", " + J1 + "]}", PlanParseError),
    ("single-quoted-wrapper", "{'steps': [" + J0 + ", " + J1 + "]}", PlanParseError),
    ("prose-longer-than-the-limit", "x" * 150_000 + VALID + " and more" * 10_000, PlanParseError),
    ("plan-inside-a-json-string", json.dumps(VALID), PlanParseError),
    ("yaml-plan", "steps:\n  - function: Writer.ShortPoem\n    args: {input: x}", PlanParseError),
    ("curly-quotes", VALID.replace('"', "\u201c"), PlanParseError),
    ("html-escaped", VALID.replace('"', "&quot;"), PlanParseError),
    # 6. prose full of brackets before an unfenced plan: no budget to exhaust
    ("100-markdown-links", "See [the docs](https://example.com/a) and more. " * 100 + VALID, None),
    ("500-braces-in-prose", "{x} " * 500 + VALID, None),
    ("300-footnotes", "[1] " * 300 + VALID, None),
    ("200-json-lists-in-prose", '["a"] ' * 200 + VALID, None),
    ("links-then-fenced-plan", "[a](b) " * 70 + f"```json\n{VALID}\n```", None),
    # 4. odd values: a bounded depth, finite numbers, valid text
    ("args-nested-20-deep", second(input='"$poem"', language=nested(20)), InvalidArgumentValueError),
    ("args-nested-300-deep", second(input='"$poem"', language=nested(300)), PlanParseError),
    ("nan-argument", second(input='"$poem"', language="NaN"), InvalidArgumentValueError),
    ("infinity-argument", second(input='"$poem"', language="Infinity"), InvalidArgumentValueError),
    ("minus-infinity-argument", second(input='"$poem"', language="-Infinity"), InvalidArgumentValueError),
    ("1e999-argument", second(input='"$poem"', language="1e999"), InvalidArgumentValueError),
    ("nan-deep-in-a-list", second(input='"$poem"', language='["fr", [NaN]]'), InvalidArgumentValueError),
    ("lone-surrogate-value", second(input='"$poem"', language='"\\ud83d"'), InvalidArgumentValueError),
    ("lone-surrogate-nested-key", second(input='"$poem"', language='{"\\udc00": 1}'), InvalidArgumentValueError),
    (
        "lone-surrogate-argument-name",
        second(input='"$poem"', language='"French"', **{"\udc00": '"x"'}),
        UnknownArgumentError,
    ),
    ("lone-surrogate-function", VALID.replace("Writer.Translate", "Writer.\\ud83d"), UnknownFunctionError),
    ("integer-of-5000-digits", second(input='"$poem"', language="1" + "0" * 5000), PlanParseError),
    # 5. model text in messages: escaped, on one line
    ("function-name-with-newline", VALID.replace("Writer.Translate", "Writer.Trans\\nlate"), UnknownFunctionError),
    ("argument-name-with-newline", second(input='"$poem"', **{"lang\nuage": '"French"'}), UnknownArgumentError),
    ("keys-with-newlines", '{"po\\nem": "Roses", "trans\\nlation": "Les roses"}', PlanFormatError),
    ("output-name-with-newline", VALID.replace('"french"', '"fr\\nench"'), PlanError),
    ("args-not-an-object-named-oddly", '{"steps": [{"function": "Writer.\\nX", "args": 5}]}', PlanFormatError),
    # 7. huge quoted pieces: bounded repair requests and error lines
    ("100kb-function-name", VALID.replace("Writer.Translate", "W" * 100_000), UnknownFunctionError),
    ("100kb-argument-name", second(input='"$poem"', language='"French"', **{"k" * 100_000: "1"}), UnknownArgumentError),
    (
        "500-unknown-arguments",
        second(input='"$poem"', language='"French"', **{f"x{i}": "1" for i in range(500)}),
        UnknownArgumentError,
    ),
    ("100kb-output-name", VALID.replace('"french"', '"' + "f" * 100_000 + '"'), PlanError),
    # 8. null for a required argument
    ("null-required-language", second(input='"$poem"', language="null"), MissingArgumentError),
    ("null-required-input", second(input="null", language='"French"'), MissingArgumentError),
    # other shapes
    ("steps-null", '{"steps": null}', EmptyPlanError),
    ("only-a-reason-key", '{"reason": "I am unsure"}', PlanFormatError),
    (
        "args-as-bad-json-string",
        '{"steps": [' + J0 + ', {"function": "Writer.Translate", "args": "{not json"}]}',
        PlanFormatError,
    ),
    ("output-is-a-number", VALID.replace('"french"', "5"), PlanFormatError),
    ("function-is-true", VALID.replace('"Writer.Translate"', "true"), PlanFormatError),
    ("function-is-empty", VALID.replace('"Writer.Translate"', '""'), PlanFormatError),
    ("steps-is-an-object", '{"steps": ' + J0 + "}", PlanFormatError),
    ("tool-calls-shape", '{"tool_calls": [{"name": "Writer-ShortPoem", "arguments": "{}"}]}', PlanFormatError),
    ("zero-width-space-in-name", VALID.replace("Writer.Translate", "Writer.\u200bTranslate"), UnknownFunctionError),
    # tolerated shapes: still exactly the model's whole plan
    (
        "args-as-json-string",
        '{"steps": ['
        + J0
        + ', {"function": "Writer.Translate", "args": '
        + json.dumps(json.dumps(S1["args"]))
        + ', "output": "french"}]}',
        None,
    ),
    (
        "function-as-tool-call-object",
        '{"steps": ['
        + J0
        + ', {"function": {"name": "Writer-Translate", "arguments": '
        + json.dumps(S1["args"])
        + '}, "output": "french"}]}',
        None,
    ),
    ("output-with-dollar", VALID.replace('"output": "french"', '"output": "$french"'), None),
    ("plan-wrapped-twice", json.dumps({"plan": {"plan": {"steps": [S0, S1]}}}), None),
    ("extra-step-keys", json.dumps({"steps": [{**S0, "why": "a poem first"}, S1]}), None),
    ("byte-order-mark", "\ufeff" + VALID, None),
    ("crlf-pretty-printed", json.dumps({"steps": [S0, S1]}, indent=2).replace("\n", "\r\n"), None),
    ("step-repeated-verbatim", json.dumps({"steps": [S0, S0, S1]}), None),
    ("same-plan-fenced-twice", f"```json\n{VALID}\n```\nAgain:\n```json\n{VALID}\n```", None),
    ("prose-braces-after-plan", VALID + " I hope {this} helps [really].", None),
]

ACTION: list[tuple[str, str, type[Exception] | None]] = [
    ("two-steps-numbered", f"1) {json.dumps(ADD)}\n2) {UPPER}", PlanParseError),
    ("step-then-extra-step", f"{SUM_VALID} {UPPER}", PlanParseError),
    ("steps-in-two-fences", f"```json\n{json.dumps(ADD)}\n```\n```json\n{UPPER}\n```", PlanParseError),
    ("comment-before-steps", '{ // add them\n "steps": [' + json.dumps(ADD) + "]}", PlanParseError),
    ("nan-a", add_with("NaN"), InvalidArgumentValueError),
    ("infinity-b", add_with("110", "Infinity"), InvalidArgumentValueError),
    ("1e999-a", add_with("1e999"), InvalidArgumentValueError),
    ("minus-1e999-b", add_with("110", "-1e999"), InvalidArgumentValueError),
    ("null-a", add_with("null"), MissingArgumentError),
    ("null-b", add_with("110", "null"), MissingArgumentError),
    ("deep-a", add_with(nested(12)), InvalidArgumentValueError),
    ("too-deep-a", add_with(nested(100)), PlanParseError),
    ("surrogate-a", add_with('"\\ud800"'), InvalidArgumentValueError),
    ("huge-function-name", SUM_VALID.replace("Math.add", "M" * 50_000), UnknownFunctionError),
    ("key-with-newline", SUM_VALID.replace('"b"', '"b\\n"'), UnknownArgumentError),
    ("markdown-links-first", "[a](https://b.example) " * 80 + SUM_VALID, None),
    ("step-object-alone", json.dumps(ADD), None),
    ("empty-steps-no-reason", '{"steps": []}', EmptyPlanError),
]


def test_the_corpus_is_big_enough() -> None:
    # With the 32 answers of test_plan_planners.py and the tool-call corpus of test_plan_calls.py: 100+.
    assert len(SEQUENTIAL) + len(ACTION) >= 80
    assert len({name for name, *_ in SEQUENTIAL}) == len(SEQUENTIAL)
    assert len({name for name, *_ in ACTION}) == len(ACTION)


def assert_bounded_one_line(error: BaseException) -> None:
    text = str(error)
    assert "\n" not in text and "\r" not in text, text[:300]
    assert len(text) < MAX_ERROR_LINE, f"{len(text)} characters: {text[:200]}"
    text.encode("utf-8")  # printable: no lone surrogate


def check_first_answer(planner: Any, scripted: ScriptedChatCompletion, error: type[Exception] | None) -> None:
    if error is None:
        assert len(scripted.requests) == 1 and planner.last_attempts[0].error is None
        return
    assert len(scripted.requests) == 2, "exactly one repair turn"
    first = planner.last_attempts[0].error
    assert isinstance(first, error), repr(first)[:300]
    assert_bounded_one_line(first)
    repair = scripted.requests[1]
    assert repair.messages[-2]["role"] == "assistant"
    assert len(repair.messages[-2]["content"]) <= MAX_ECHOED_ANSWER + 40
    assert len(repair.messages[-1]["content"]) < MAX_REPAIR_MESSAGE, "the problem list is bounded"
    for message in repair.messages:
        message["content"].encode("utf-8")  # the repair request can be sent


@pytest.mark.parametrize(("name", "answer", "error"), SEQUENTIAL, ids=[c[0] for c in SEQUENTIAL])
async def test_sequential_answer_gives_the_whole_plan_or_a_repair(
    name: str, answer: str, error: type[Exception] | None, kernel, scripted: ScriptedChatCompletion
) -> None:
    scripted.queue(answer, VALID)
    planner = SequentialPlanner(kernel, excluded=["Time"])
    plan = await planner.create_plan(GOAL)
    assert plan == Plan(goal=GOAL, steps=Plan.from_dict({"steps": [S0, S1]}).steps)
    check_first_answer(planner, scripted, error)


@pytest.mark.parametrize(
    ("name", "answer", "error"), [c for c in SEQUENTIAL if c[2]], ids=[c[0] for c in SEQUENTIAL if c[2]]
)
async def test_sequential_answer_repeated_is_a_one_line_planning_error(
    name: str, answer: str, error: type[Exception], kernel, scripted: ScriptedChatCompletion
) -> None:
    invoked = count_invocations(kernel)
    scripted.queue(*[answer] * 3)
    with pytest.raises(PlanningError) as caught:
        await SequentialPlanner(kernel, excluded=["Time"], max_repairs=2).create_plan(GOAL)
    assert type(caught.value) is PlanningError and caught.value.exit_code == 3
    assert all(isinstance(a.error, error) for a in caught.value.attempts)
    assert_bounded_one_line(caught.value)
    caught.value.debug_report().encode("utf-8")
    assert invoked == []


@pytest.mark.parametrize(("name", "answer", "error"), ACTION, ids=[c[0] for c in ACTION])
async def test_action_answer_gives_the_whole_step_or_a_repair(
    name: str, answer: str, error: type[Exception] | None, kernel, scripted: ScriptedChatCompletion
) -> None:
    scripted.queue(answer, SUM_VALID)
    planner = ActionPlanner(kernel)
    plan = await planner.create_plan(SUM_GOAL)
    assert plan.to_dict()["steps"] == [ADD]
    check_first_answer(planner, scripted, error)
    assert (await PlanExecutor(kernel, catalogue=planner.catalogue).execute(plan)).result == "1100"


@pytest.mark.parametrize(("name", "answer", "error"), [c for c in ACTION if c[2]], ids=[c[0] for c in ACTION if c[2]])
async def test_action_answer_repeated_is_a_one_line_planning_error(
    name: str, answer: str, error: type[Exception], kernel, scripted: ScriptedChatCompletion
) -> None:
    scripted.queue(*[answer] * 2)
    with pytest.raises(PlanningError) as caught:
        await ActionPlanner(kernel, max_repairs=1).create_plan(SUM_GOAL)
    assert type(caught.value) is PlanningError
    assert_bounded_one_line(caught.value)


async def test_a_reason_with_newlines_stays_on_one_line(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue(json.dumps({"steps": [], "reason": "no function\nwrites files\r\n" + "really " * 1000}))
    with pytest.raises(NoFunctionFits) as caught:
        await ActionPlanner(kernel).create_plan("write a file")
    assert str(caught.value).startswith("no function fits the goal: no function\\nwrites files\\r\\n")
    assert_bounded_one_line(caught.value)
    assert caught.value.reason.startswith("no function\nwrites files")  # the reason itself is kept as written


async def test_a_100kb_name_keeps_every_repair_request_small(kernel, scripted: ScriptedChatCompletion) -> None:
    answer = VALID.replace("Writer.Translate", "W" * 100_000)
    scripted.queue(*[answer] * 4)
    with pytest.raises(PlanningError) as caught:
        await SequentialPlanner(kernel).create_plan(GOAL)
    for request in scripted.requests[1:]:
        assert len(request.messages[-1]["content"]) < 1_000 and len(request.messages[-2]["content"]) < 4_100
    assert len(str(caught.value)) < 500


async def test_null_for_an_optional_argument_means_not_given(kernel, scripted: ScriptedChatCompletion) -> None:
    # SeekCostEfficiency's strengths is optional: null is "use the default", never the text "None".
    step = {"function": "BusinessThinking.SeekCostEfficiency", "args": {"input": "a bakery", "strengths": None}}
    scripted.queue(json.dumps({"steps": [{**step, "output": "ideas"}]}))
    plan = await SequentialPlanner(kernel).create_plan("cheaper ways to run my bakery")
    assert plan.steps[0].args == {"input": "a bakery", "strengths": None}
    await PlanExecutor(kernel).execute(plan)
    prompt = scripted.requests[-1].prompt
    assert "a bakery" in prompt and "None" not in prompt
