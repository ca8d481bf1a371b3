"""``kernel-app logs --to-eval``: logged calls become eval cases the eval loader accepts, their answers the
``expected``, the function's arguments the ``vars``, with assertions the logged answer passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernel_app.base.errors import UsageError
from kernel_app.kernel.evals import ASSERTIONS, Output, load_eval_file
from kernel_app.kernel.evals.from_calls import eval_file_from_calls
from kernel_app.providers.call_log import CallRecord

SWOT = """## Strengths
| Point | Why it matters |
|---|---|
| Fresh bread daily | Regulars come back every morning. |

## Weaknesses
| Point | Why it matters |
|---|---|
| Small oven | Big orders wait a day. |
"""


def logged(call_id: int, answer: str, *functions: tuple[str, dict[str, Any]], **fields: Any) -> CallRecord:
    return CallRecord(
        id=call_id,
        started_at=1_765_000_000.0 + call_id,
        service="local",
        model="qwen2.5-coder-1.5b",
        messages=[{"role": "user", "content": "prompt"}],
        settings={},
        answer=answer,
        latency_ms=1000.0,
        functions=[{"name": name, "arguments": arguments} for name, arguments in functions],
        **fields,
    )


def written(tmp_path: Path, records: list[CallRecord], function: str | None = None) -> tuple[Any, Any]:
    result = eval_file_from_calls(records, function)
    path = tmp_path / "regression.evals.yaml"
    path.write_text(result.text, encoding="utf-8")
    return result, path


def test_a_native_functions_call_becomes_a_case_of_that_function_with_its_arguments(tmp_path: Path) -> None:
    record = logged(
        7,
        SWOT,
        ("BusinessThinking.SWOT", {"input": "a family bakery in a small town"}),
        ("BusinessThinking.SWOTDraft", {"input": "a family bakery in a small town", "points": "3"}),
    )
    result, path = written(tmp_path, [record], "BusinessThinking.SWOT")

    loaded = load_eval_file(path)  # strict: a file the eval command accepts
    assert result.function == loaded.function == "BusinessThinking.SWOT"
    [case] = loaded.cases
    assert case.vars == {"input": "a family bakery in a small town"}
    assert case.expected == SWOT, "the logged answer, kept exactly (a literal block)"
    assert "call #7" in case.description
    kinds = {a.type: a.params for a in case.asserts}
    assert kinds["markdown-tables"] == {"count": 2}
    assert {"sentences-complete", "no-cjk", "words"} <= set(kinds)
    # The case passes on the answer it came from: a regression shows up as a failure later.
    for spec in case.asserts:
        assert ASSERTIONS[spec.type].check(Output(SWOT), spec.params, case.expected).passed, spec


def test_a_native_functions_own_result_is_the_expected_when_it_is_the_case(tmp_path: Path) -> None:
    """BusinessThinking.SWOT asks the model for JSON and returns tables: its case expects the tables."""
    draft = '{"strengths": ["Fresh bread daily"], "weaknesses": ["Small oven"]}'
    record = logged(3, draft, ("BusinessThinking.SWOT", {"input": "a bakery"}), ("BusinessThinking.SWOTStructured", {}))
    record.root_result = SWOT
    _, path = written(tmp_path, [record], "BusinessThinking.SWOT")
    [case] = load_eval_file(path).cases
    assert case.expected == SWOT and "markdown-tables" in {a.type for a in case.asserts}
    assert "is-json" not in {a.type for a in case.asserts}, "the assertions are drawn from the result"
    _, path = written(tmp_path, [record], "BusinessThinking.SWOTStructured")
    [case] = load_eval_file(path, function="BusinessThinking.SWOTStructured").cases
    assert case.expected == draft and "is-json" in {a.type for a in case.asserts}


def test_without_a_function_filter_the_outermost_function_is_the_case(tmp_path: Path) -> None:
    record = logged(1, "Short summary.", ("Outer.twice", {"topic": "bread"}), ("Writer.Summarize", {"input": "x"}))
    result, path = written(tmp_path, [record])
    assert result.function == "Outer.twice" and load_eval_file(path).cases[0].vars == {"topic": "bread"}
    result, path = written(tmp_path, [record], "Writer.Summarize")
    assert result.function == "Writer.Summarize" and load_eval_file(path).cases[0].vars == {"input": "x"}


def test_calls_of_several_functions_make_a_file_naming_none_that_loads_with_function(tmp_path: Path) -> None:
    records = [
        logged(1, "One.", ("Writer.Summarize", {"input": "a"})),
        logged(2, "Two.", ("Writer.Expand", {"input": "b"})),
    ]
    result, path = written(tmp_path, records)
    assert result.function is None
    assert not any(line.startswith("function:") for line in result.text.splitlines())
    assert "--function" in result.text, "the file says how to run it"
    assert [c.vars for c in load_eval_file(path, function="Writer.Summarize").cases] == [{"input": "a"}, {"input": "b"}]


def test_json_answers_are_checked_as_json_and_cjk_answers_get_no_no_cjk(tmp_path: Path) -> None:
    records = [
        logged(1, '[{"need": "fresh bread", "sentiment": "positive"}]', ("DesignThinking.Empathize", {})),
        logged(2, "面包 is bread, and it sells well.", ("DesignThinking.Empathize", {})),
    ]
    _, path = written(tmp_path, records)
    first, second = load_eval_file(path).cases
    assert "is-json" in {a.type for a in first.asserts} and "sentences-complete" not in {a.type for a in first.asserts}
    assert "no-cjk" not in {a.type for a in second.asserts}
    assert first.vars == {}


def test_calls_outside_functions_or_without_text_are_left_out_and_said_so(tmp_path: Path) -> None:
    records = [
        logged(1, "A chat answer."),  # a chat turn: no function to run
        logged(2, "", ("Writer.Summarize", {"input": "a"}), tool_calls=[{"name": "Math.add", "arguments": "{}"}]),
        logged(3, "", ("Writer.Summarize", {"input": "a"}), error="TimeoutError: the model took too long"),
        logged(4, "Kept.", ("Writer.Summarize", {"input": "b"})),
    ]
    result, _ = written(tmp_path, records)
    assert result.cases == 1 and len(result.skipped) == 3
    assert "#1" in result.skipped[0] and "outside any function" in result.skipped[0]
    assert "TimeoutError" in result.skipped[2]
    with pytest.raises(UsageError, match="no call can become an eval case"):
        eval_file_from_calls(records[:3])
