"""llm-rubric: a scripted judge grades outputs, between produce and check; bad answers fail, never crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.evals import ASSERTIONS, EvalFileError, Output, load_eval_file
from kernel_app.kernel.evals.judge import VERDICT_SCHEMA, Judge, grade, needs_judge, parse_verdict
from kernel_app.kernel.evals.runner import CaseResult, Target, run_evals
from kernel_app.providers.scripted import ScriptedChatCompletion

RUBRIC_EVAL = """function: Writer.Summarize
cases:
  - input: A long text about a bakery.
    assert:
      - {type: llm-rubric, value: "The summary mentions the bakery"}
      - {type: not-llm-rubric, value: "The summary is rude", threshold: 0.5}
"""


def verdict(passed: bool, score: float, reason: str) -> str:
    return json.dumps({"pass": passed, "score": score, "reason": reason})


async def evaluate(
    tmp_path: Path, *judge_answers: str, answer: str = "The bakery bakes bread."
) -> tuple[CaseResult, ScriptedChatCompletion, ScriptedChatCompletion]:
    """The rubric file run on a scripted model; (its one result, the judge's service, the model's service)."""
    path = tmp_path / "rubric.yaml"
    path.write_text(RUBRIC_EVAL, encoding="utf-8")
    model = ScriptedChatCompletion([answer], ai_model_id="model")
    built = build_kernel(Settings(), chat_service=model)
    judge_service = ScriptedChatCompletion(judge_answers, ai_model_id="judge")
    results = await run_evals(
        [load_eval_file(path)], [Target("model", built.kernel, built.report)], judge=Judge(judge_service, "judge")
    )
    (result,) = results
    return result, judge_service, model


async def test_a_passing_verdict_passes_and_the_judge_saw_rubric_and_output(tmp_path: Path) -> None:
    result, judge, model = await evaluate(
        tmp_path, verdict(True, 0.9, "It names the bakery."), verdict(False, 0.1, "It is polite.")
    )
    assert result.passed, result.reason
    mentions, rude = result.assertions
    assert (mentions.type, mentions.score, mentions.reason) == (
        "llm-rubric",
        0.9,
        "judge: It names the bakery. (score 0.90)",
    )
    assert (rude.type, rude.passed, rude.score) == ("not-llm-rubric", True, pytest.approx(0.9))
    assert len(model.requests) == 1 and len(judge.requests) == 2  # the judge is its own model
    first = judge.requests[0]
    assert "The summary mentions the bakery" in first.prompt and "The bakery bakes bread." in first.prompt
    assert first.settings["temperature"] == 0.0
    # Structured output: the verdict's JSON schema goes out as response_format (a grammar on the local model).
    assert first.settings["response_format"]["json_schema"]["schema"] == VERDICT_SCHEMA


async def test_a_failing_verdict_fails_with_the_judges_reason(tmp_path: Path) -> None:
    result, _, _ = await evaluate(
        tmp_path, verdict(False, 0.2, "It talks about cheese."), verdict(False, 0.0, "Polite.")
    )
    assert not result.passed
    assert result.reason == "llm-rubric: judge: It talks about cheese. (score 0.20)"


async def test_the_threshold_decides_over_the_judges_pass(tmp_path: Path) -> None:
    # not-llm-rubric has threshold 0.5: a "rude" score of 0.6 fails it even though the judge said pass=false.
    result, _, _ = await evaluate(tmp_path, verdict(True, 1.0, "Yes."), verdict(False, 0.6, "Somewhat curt."))
    assert not result.passed
    assert result.reason == "not-llm-rubric: judge: Somewhat curt. (score 0.60, threshold 0.5)"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("The summary is fine, I'd say it passes.", "the judge's answer is not JSON {pass, score, reason}"),
        ('{"pass": true, "score": 0.9', "the judge's answer is not JSON {pass, score, reason}"),
        ('["pass", 1]', "the judge's answer is not a JSON object"),
        ('{"pass": "yes", "score": 0.9, "reason": "ok"}', "the judge's answer has no true/false `pass`"),
        ('{"pass": true, "score": 9, "reason": "ok"}', "the judge's answer has no `score` in [0, 1]"),
        ('{"pass": true, "reason": "ok"}', "the judge's answer has no `score` in [0, 1]"),
        ("", "the judge's answer is not JSON {pass, score, reason}: ''"),
    ],
)
async def test_a_malformed_answer_is_a_failed_assertion_with_a_clear_reason(
    tmp_path: Path, answer: str, reason: str
) -> None:
    result, _, _ = await evaluate(tmp_path, answer, verdict(False, 0.0, "Polite."))
    assert not result.passed and result.output.error is None
    first = result.assertions[0]
    assert not first.passed and first.score == 0.0 and first.reason.startswith(reason) and "\n" not in first.reason
    assert result.assertions[1].passed  # the other rubric was judged on its own


def test_a_fenced_verdict_with_a_raw_newline_is_read() -> None:
    parsed = parse_verdict('```json\n{"pass": true, "score": 1, "reason": "line one\nline two"}\n```')
    assert (parsed.passed, parsed.score, parsed.reason, parsed.error) == (True, 1.0, "line one line two", None)


async def test_a_failing_judge_service_is_a_failed_assertion(tmp_path: Path) -> None:
    result, _, _ = await evaluate(tmp_path)  # no judge answer scripted: the service raises
    assert not result.passed
    assert result.reason.startswith("llm-rubric: the judge judge failed: ")


async def test_the_same_rubric_is_judged_once_and_a_failed_run_not_at_all() -> None:
    from kernel_app.kernel.evals.spec import AssertionSpec, EvalCase

    spec = AssertionSpec("llm-rubric", {"value": "Polite"})
    case = EvalCase("case-1", "x", {}, None, [spec, AssertionSpec("llm-rubric", {"value": "Polite", "threshold": 1})])
    judge = ScriptedChatCompletion([verdict(True, 0.8, "Polite.")], ai_model_id="judge")
    graded = await grade(Judge(judge), Output("Thank you."), case)
    assert list(graded.verdicts) == ["Polite"] and len(judge.requests) == 1
    assert ASSERTIONS["llm-rubric"].check(graded, spec.params, None).passed
    assert not ASSERTIONS["llm-rubric"].check(graded, {"value": "Polite", "threshold": 1}, None).passed
    failed = Output("", error="the model failed")
    assert await grade(Judge(judge), failed, case) is failed and len(judge.requests) == 1
    unjudged = ASSERTIONS["llm-rubric"].check(Output("Thank you."), spec.params, None)
    assert not unjudged.passed and "judge was not asked" in unjudged.reason


async def test_without_a_judge_the_rubric_fails_saying_how_to_give_one() -> None:
    from kernel_app.kernel.evals.spec import AssertionSpec, EvalCase

    case = EvalCase("case-1", "x", {}, None, [AssertionSpec("llm-rubric", {"value": "Polite"})])
    graded = await grade(None, Output("Thank you."), case)
    result = ASSERTIONS["llm-rubric"].check(graded, {"value": "Polite"}, None)
    assert not result.passed and "--judge-service/--judge-model" in result.reason


def test_only_files_with_a_rubric_need_a_judge(tmp_path: Path) -> None:
    path = tmp_path / "rubric.yaml"
    path.write_text(RUBRIC_EVAL, encoding="utf-8")
    assert needs_judge(load_eval_file(path).cases)
    path.write_text(RUBRIC_EVAL.replace("llm-rubric", "icontains").replace(", threshold: 0.5", ""), encoding="utf-8")
    assert not needs_judge(load_eval_file(path).cases)


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        ("{type: llm-rubric}", "cases[0].assert[0].value: llm-rubric needs it: add `value: ...`"),
        ("{type: llm-rubric, value: '  '}", "cases[0].assert[0].value: the rubric is empty"),
        ("{type: llm-rubric, value: ok, threshold: -1}", "cases[0].assert[0].threshold: -1 is outside [0, 1]"),
        ("{type: llm-rubrik, value: ok}", "unknown assertion type 'llm-rubrik': did you mean 'llm-rubric'?"),
    ],
)
def test_bad_rubrics_are_one_line_errors(tmp_path: Path, assertion: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"function: Writer.Summarize\ncases:\n  - input: x\n    assert: [{assertion}]\n", encoding="utf-8")
    with pytest.raises(EvalFileError) as raised:
        load_eval_file(path)
    assert message in str(raised.value) and "\n" not in str(raised.value)
