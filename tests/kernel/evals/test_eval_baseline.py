"""``--baseline``: a run compared with an earlier run's JSON, in the table, the JSON and the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_app.base.errors import UsageError
from kernel_app.kernel.evals import load_eval_file
from kernel_app.kernel.evals.baseline import compare, load_baseline
from kernel_app.kernel.evals.report import markdown, table, to_json
from kernel_app.kernel.evals.runner import run_evals
from tests.support.evals import scripted_target, write_eval

TWO_CASES = """function: Writer.Summarize
cases:
  - description: about bread
    input: A long text about bread.
    assert:
      - {type: icontains, value: bread}
      - {type: words, max: 4}
  - description: about cheese
    input: A long text about cheese.
    assert:
      - {type: icontains, value: cheese}
"""


async def test_regressions_score_drops_and_improvements(tmp_path: Path) -> None:
    eval_file = load_eval_file(write_eval(tmp_path, TWO_CASES))
    before_model, _ = scripted_target("m", "Bread is good.", "Nothing here.")
    before = await run_evals([eval_file], [before_model])
    baseline_path = tmp_path / "before.json"
    baseline_path.write_text(to_json(before), encoding="utf-8")

    # case-1 now fails (bread gone), case-2 now passes; model "n" was not in the baseline.
    now_m, _ = scripted_target("m", "Cheese is good.", "Cheese is good.")
    now_n, _ = scripted_target("n", "Bread is good.", "Cheese.")
    results = await run_evals([eval_file], [now_m, now_n])
    comparison = compare(results, load_baseline(baseline_path), str(baseline_path))

    assert comparison.counts() == {
        "regressed": 1,
        "score dropped": 0,
        "improved": 1,
        "score rose": 0,
        "new": 2,
        "unchanged": 0,
        "missing": 0,
    }
    (regressed,) = comparison.of_kind("regressed")
    assert regressed.line() == (
        "REGRESSED: Writer.Summarize case-1 on m: PASS 1.00 -> FAIL 0.50 "
        "(icontains: output does not contain (any case) 'bread'; it begins 'Cheese is good.')"
    )
    assert comparison.of_kind("new")[0].line() == "NEW: Writer.Summarize case-1 on n: PASS 1.00 (not in the baseline)"

    text = table(results, comparison=comparison)
    assert f"Compared with {baseline_path}: 1 regressed, 1 improved, 2 new" in text
    kinds = [line.split(":")[0] for line in text.splitlines()]
    kinds = [kind for kind in kinds if kind in ("REGRESSED", "IMPROVED", "NEW")]
    assert kinds == ["REGRESSED", "IMPROVED", "NEW", "NEW"]  # the worse first

    data = json.loads(to_json(results, comparison))
    assert data["baseline"]["file"] == str(baseline_path) and data["baseline"]["counts"]["regressed"] == 1
    assert [
        (c["case"], c["model"], c["before"]["pass"], c["after"]["pass"]) for c in data["baseline"]["regressed"]
    ] == [("case-1", "m", True, False)]
    assert [c["case"] for c in data["baseline"]["improved"]] == ["case-2"]

    report = markdown(results, comparison=comparison)
    assert "## Compared with the baseline" in report and "- REGRESSED: Writer.Summarize case-1 on m" in report


async def test_a_lower_score_with_the_same_verdict_is_a_drop_and_repeats_are_summed(tmp_path: Path) -> None:
    eval_file = load_eval_file(write_eval(tmp_path, TWO_CASES.split("  - description: about cheese")[0]))
    before_model, _ = scripted_target("m", "Cheese is good.", "Cheese is good.")
    before = await run_evals([eval_file], [before_model], repeat=2)  # FAIL 0.50 twice
    baseline = tmp_path / "before.json"
    baseline.write_text(to_json(before), encoding="utf-8")
    now, _ = scripted_target("m", "Cheese is good.", "Cheese is very good today, really.")  # 0.50 then 0.00
    comparison = compare(await run_evals([eval_file], [now], repeat=2), load_baseline(baseline), "b")
    (dropped,) = comparison.of_kind("score dropped")
    assert dropped.before is not None and dropped.before.score == 0.5 and dropped.after.score == 0.25
    assert dropped.line().startswith("SCORE DROPPED: Writer.Summarize case-1 on m: FAIL 0.50 -> FAIL 0.25")

    same, _ = scripted_target("m", "Cheese is good.", "Cheese is good.")
    unchanged = compare(await run_evals([eval_file], [same], repeat=2), load_baseline(baseline), "b")
    assert unchanged.changes == [] and unchanged.unchanged == 1
    assert unchanged.lines() == ["Compared with b: 0 regressed, 0 improved, 1 unchanged"]


async def test_an_edited_input_is_a_new_case_and_a_dropped_one_is_missing(tmp_path: Path) -> None:
    eval_file = load_eval_file(write_eval(tmp_path, TWO_CASES))
    model, _ = scripted_target("m", "Bread is good.", "Cheese is good.")
    baseline = tmp_path / "before.json"
    baseline.write_text(to_json(await run_evals([eval_file], [model])), encoding="utf-8")
    edited = load_eval_file(write_eval(tmp_path, TWO_CASES.replace("about cheese.", "about goat cheese.")))
    model, _ = scripted_target("m", "Bread is good.", "Cheese is good.")
    comparison = compare(await run_evals([edited], [model]), load_baseline(baseline), "b")
    assert comparison.counts()["new"] == 1 and comparison.counts()["missing"] == 1
    assert comparison.counts()["unchanged"] == 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", ":1: the baseline is not JSON (Expecting property name enclosed in double quotes)"),
        ("[1, 2]", ": not an eval run (no `results` list)"),
        ('{"version": 7, "results": []}', ": version 7, this kernel-app reads 1"),
        ('{"version": 1, "results": [{"case": "case-1"}]}', ": results[0].function: expected text"),
        (
            '{"version": 1, "results": [{"function": "W.S", "case": "c", "model": "m", "pass": "yes"}]}',
            ": results[0].pass: expected true/false",
        ),
        (
            '{"version": 1, "results": [{"function": "W.S", "case": "c", "model": "m", "pass": true, "score": "1"}]}',
            ": results[0].score: expected a number",
        ),
    ],
)
def test_a_baseline_of_another_shape_is_a_one_line_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as raised:
        load_baseline(path)
    assert str(raised.value) == f"{path}{problem}: pass a file that `kernel-app eval --json` wrote"


def test_a_missing_baseline_says_so(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"missing\.json: cannot read the baseline .*--json` wrote$"):
        load_baseline(tmp_path / "missing.json")
