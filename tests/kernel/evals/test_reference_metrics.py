"""similar, bleu and rouge-l: scores against a reference text, thresholds, negations, and strict loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernel_app.kernel.evals import ASSERTIONS, AssertionResult, EvalFileError, Output, load_eval_file
from kernel_app.kernel.evals import references as reference_module
from kernel_app.kernel.evals.references import embedder_for_similar
from memories.embedders import HashingEmbedder

REFERENCE = "The bakery's fresh bread brings customers back every morning."


def run(kind: str, text: str, expected: str | None = REFERENCE, **params: Any) -> AssertionResult:
    with embedder_for_similar(HashingEmbedder(256)):  # the bundled MiniLM is a model load: see the e2e test
        result = ASSERTIONS[kind].check(Output(text), params, expected)
    assert result.type == kind
    assert 0.0 <= result.score <= 1.0 and "\n" not in result.reason and result.reason
    return result


@pytest.mark.parametrize("kind", ["similar", "bleu", "rouge-l"])
def test_the_same_text_scores_1_and_an_unrelated_one_fails(kind: str) -> None:
    same = run(kind, REFERENCE)
    assert same.passed and same.score == pytest.approx(1.0, abs=1e-5)
    other = run(kind, "Interest rates rose sharply in the third quarter of the year.")
    assert not other.passed and other.score < 0.3
    assert "below the threshold" in other.reason


@pytest.mark.parametrize("kind", ["similar", "bleu", "rouge-l"])
def test_negations_pass_below_the_threshold_and_score_the_distance(kind: str) -> None:
    unrelated = run(f"not-{kind}", "Interest rates rose sharply in the third quarter of the year.")
    assert unrelated.passed and unrelated.score > 0.7
    same = run(f"not-{kind}", REFERENCE)
    assert not same.passed and same.score == pytest.approx(0.0, abs=1e-5)


def test_bleu_and_rouge_l_are_the_libraries_numbers() -> None:
    from rouge_score.rouge_scorer import RougeScorer
    from sacrebleu.metrics.bleu import BLEU

    output = "Fresh bread brings the customers back each morning."
    expected_bleu = BLEU(effective_order=True).sentence_score(output, [REFERENCE]).score / 100
    assert run("bleu", output, threshold=0.1).score == pytest.approx(expected_bleu)
    expected_rouge = RougeScorer(["rougeL"]).score(REFERENCE, output)["rougeL"].fmeasure
    assert run("rouge-l", output, threshold=0.1).score == pytest.approx(expected_rouge)


def test_thresholds_decide_and_the_reason_says_the_score() -> None:
    output = "Fresh bread brings the customers back each morning."
    score = run("rouge-l", output).score
    assert run("rouge-l", output, threshold=score).passed
    missed = run("rouge-l", output, threshold=min(score + 0.05, 1.0))
    assert not missed.passed and missed.reason.startswith(f"ROUGE-L {score:.2f}, below the threshold")
    assert run("similar", output, threshold=0).passed  # 0 accepts anything


def test_rouge_l_counts_words_outside_ascii() -> None:
    # rouge-score's own tokenizer keeps [a-z0-9] only: "días" would be "d as" and a Greek answer score 0.
    assert run("rouge-l", "Buenos días, mañana", "buenos días mañana").score == pytest.approx(1.0)
    assert run("rouge-l", "Καλημέρα φίλε μου", "Καλημέρα φίλε").score > 0.7


def test_value_is_the_reference_when_given() -> None:
    assert run("bleu", "good morning my friend", expected=None, value="good morning my friend").passed
    assert not run("bleu", "good morning my friend", value="bonsoir").passed  # value wins over expected
    missing = run("similar", "anything", expected=None)
    assert not missing.passed and "no reference text" in missing.reason


# -- loading -------------------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_with_the_new_types_loads_with_defaults_and_parameters(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """function: Writer.Translate
cases:
  - input: good morning
    expected: buenos días
    assert:
      - {type: similar}
      - {type: bleu, threshold: 0.4}
      - {type: not-rouge-l, value: good morning, threshold: 1}
""",
    )
    (case,) = load_eval_file(path).cases
    assert [(a.type, a.params) for a in case.asserts] == [
        ("similar", {}),
        ("bleu", {"threshold": 0.4}),
        ("not-rouge-l", {"value": "good morning", "threshold": 1}),
    ]


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        (
            "{type: similar}",
            "cases.yaml:4: cases[0].expected: similar compares with a reference text and there is none: "
            "add `expected:` to the case or `value:` to the similar",
        ),
        (
            "{type: bleu, threshold: 1.5}",
            "cases.yaml:4: cases[0].assert[0].threshold: 1.5 is outside [0, 1]: fix the threshold of bleu",
        ),
        (
            "{type: rouge-l, threshold: high}",
            "cases.yaml:4: cases[0].assert[0].threshold: expected a whole number or a number, got text: "
            "write a whole number or a number",
        ),
        ("{type: rouge}", "unknown assertion type 'rouge': did you mean 'rouge-l'?"),
        ("{type: simlar}", "unknown assertion type 'simlar': did you mean 'similar'?"),
    ],
)
def test_bad_uses_are_one_line_errors(tmp_path: Path, assertion: str, message: str) -> None:
    path = write(tmp_path, f"function: Writer.Summarize\ncases:\n  - input: x\n    assert: [{assertion}]\n")
    with pytest.raises(EvalFileError) as raised:
        load_eval_file(path)
    text = str(raised.value)
    assert "\n" not in text and text.endswith(message), text


def test_a_dataset_row_without_expected_is_refused_by_row(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("input,expected\nhello,hola\nbye,\n", encoding="utf-8")
    (tmp_path / "rows2.csv").write_text("input\nhello\n", encoding="utf-8")
    text = "function: Writer.Translate\ndataset: {}\ndefaults: {{assert: [{{type: rouge-l}}]}}\n"
    assert len(load_eval_file(write(tmp_path, text.format("rows.csv"))).cases) == 2  # an empty cell is text
    with pytest.raises(EvalFileError, match=r"rows2\.csv:2: row 1: rouge-l compares with a reference text"):
        load_eval_file(write(tmp_path, text.format("rows2.csv")))


def test_a_missing_metric_library_names_the_extra_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(reference_module.LIBRARIES, "bleu", "no_such_bleu_library")
    path = write(
        tmp_path, "function: Writer.Summarize\ncases:\n  - {input: x, expected: y, assert: [{type: not-bleu}]}\n"
    )
    with pytest.raises(EvalFileError) as raised:
        load_eval_file(path)
    assert str(raised.value).endswith(
        "cases.yaml:3: cases[0].assert[0].type: not-bleu needs no_such_bleu_library, from the [eval] extra: "
        "pip install 'kernel-app[eval]': then run the eval again"
    )


@pytest.mark.e2e  # the bundled embedder: all-MiniLM-L6-v2 on onnxruntime
def test_similar_on_the_bundled_embedder_tells_a_paraphrase_from_another_topic() -> None:
    paraphrase = ASSERTIONS["similar"].check(
        Output("Customers return daily for the bakery's freshly baked bread."), {}, REFERENCE
    )
    assert paraphrase.passed and paraphrase.score > 0.8
    other = ASSERTIONS["similar"].check(Output("Interest rates rose sharply in the third quarter."), {}, REFERENCE)
    assert not other.passed and other.score < 0.3
