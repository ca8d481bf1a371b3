"""Running eval files on the scripted chat service, and the run's JSON, JUnit and markdown forms."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.errors import FunctionNotFoundError
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.evals import load_eval_file
from kernel_app.kernel.evals.report import junit, markdown, table, to_json
from kernel_app.kernel.evals.runner import Target, run_evals
from kernel_app.providers.scripted import ScriptedChatCompletion

ROOT = Path(__file__).resolve().parents[3]

SUMMARY_EVAL = """function: Writer.Summarize
cases:
  - description: short and on topic
    input: A long text about bread.
    assert:
      - {type: icontains, value: bread}
      - {type: words, max: 6}
"""


def target(name: str, *answers: str) -> tuple[Target, ScriptedChatCompletion]:
    service = ScriptedChatCompletion(answers, ai_model_id=name)
    built = build_kernel(Settings(), chat_service=service)
    return Target(name, built.kernel, built.report), service


def draft(why: str = "customers notice it every day.") -> str:
    """A SWOT draft as SWOTDraft writes it; the SWOT turns it into four tables."""
    return "\n".join(
        f"{category}:\n" + "\n".join(f"- Point {i} of {category.lower()}: this matters because {why}" for i in range(3))
        for category in ("Strengths", "Weaknesses", "Opportunities", "Threats")
    )


async def test_two_models_side_by_side_with_repeats(tmp_path: Path) -> None:
    eval_file = load_eval_file(_write(tmp_path, SUMMARY_EVAL))
    good, good_service = target("good", "Bread is old.", "Bread is good.")
    bad, _ = target("bad", "Bread is a staple food eaten around the world.", "Cheese.")
    seen: list[tuple[int, int, str]] = []
    results = await run_evals([eval_file], [good, bad], repeat=2, progress=lambda *p: seen.append(p))
    assert [(r.model, r.repeat, r.passed) for r in results] == [
        ("good", 1, True),
        ("good", 2, True),
        ("bad", 1, False),
        ("bad", 2, False),
    ]
    assert "A long text about bread." in good_service.requests[0].prompt  # `input` reached the prompt
    assert results[2].reason == "words: 9 words, more than the maximum 6" and results[2].score == 0.5
    assert results[3].reason.startswith("icontains: output does not contain (any case) 'bread'")
    assert results[0].output.usage.completion_tokens == 3  # the scripted service counts words
    assert seen[-1] == (4, 4, "Writer.Summarize case-1 on bad") and [s[0] for s in seen] == [1, 2, 3, 4]


async def test_a_failing_model_call_is_a_failed_case_with_its_error(tmp_path: Path) -> None:
    eval_file = load_eval_file(_write(tmp_path, SUMMARY_EVAL))
    empty, _ = target("empty")  # no scripted answer: the call fails
    (result,) = await run_evals([eval_file], [empty])
    assert not result.passed and result.assertions == [] and result.score == 0.0
    assert result.reason.startswith("error: ") and "\n" not in result.reason


async def test_an_unknown_function_fails_before_any_model_call(tmp_path: Path) -> None:
    eval_file = load_eval_file(_write(tmp_path, SUMMARY_EVAL.replace("Writer.Summarize", "Writer.Sumarize")))
    model, service = target("m", "unused")
    with pytest.raises(FunctionNotFoundError, match=r"did you mean Writer\.Summarize"):
        await run_evals([eval_file], [model])
    assert service.requests == []


async def test_the_shipped_swot_eval_passes_whole_cells_and_catches_cut_ones() -> None:
    eval_file = load_eval_file(ROOT / "plugins" / "BusinessThinking" / "SWOT.evals.yaml")
    cut = draft().replace("customers notice it every day.", "which may help", 4)
    model, service = target("scripted", draft(), cut, *[draft()] * (len(eval_file.cases) - 2))
    results = await run_evals([eval_file], [model])
    assert [r.passed for r in results] == [True, False] + [True] * (len(results) - 2)
    assert results[1].reason.startswith("sentences-complete: 4 of 24 cells/paragraphs cut")
    assert "a family bakery in a small town" in service.requests[0].prompt


def plain_rewrite(table_text: str) -> str:
    """Each row's "why it matters" sentence replaced by a short plain one; headings and labels kept."""
    rows = iter(["It is nice.", "People feel at home.", "Many can pay.", "Food may run out.", "Few hear of it."])
    more = iter(["No one answers calls.", "We can sell on the web.", "Fairs bring people.", "Fêtes bring friends."])
    last = iter(["Big shops sell more.", "People spend less.", "Other countries may sell things better."])
    sentences = iter([*rows, *more, *last])
    lines = []
    for line in table_text.splitlines():
        cells = line.strip("|").split("|")
        if line.startswith("|") and len(cells) == 2 and not cells[0].strip().startswith(("Point", "---")):
            line = f"| {cells[0].strip()} | {next(sentences)} |"
        lines.append(line)
    return "\n".join(lines)


async def test_the_shipped_change_audience_eval_catches_a_copy_of_the_swot() -> None:
    eval_file = load_eval_file(ROOT / "plugins" / "BusinessThinking" / "ChangeAudience.evals.yaml")
    swot = str(eval_file.cases[1].vars["input"])
    child = "We will work together to sell more things to the people who like our shop."
    # A copy with its one listed jargon word swapped passes every word check; ROUGE-L against the input catches it.
    copy_text = swot.replace("leverage", "use")
    model, _ = target("scripted", child, child, copy_text, plain_rewrite(swot))
    results = await run_evals([eval_file], [model], repeat=2)
    copy, rewrite = (r for r in results if "new employee" in r.case.description)
    assert (
        not copy.passed
        and copy.reason.startswith("not-rouge-l: ROUGE-L ")
        and "at least the threshold 0.7" in copy.reason
    )
    assert rewrite.passed, rewrite.reason  # the labels ("Globalization") may stay: they name the points


def ideas_table(descriptions: list[str]) -> str:
    rows = [
        f"| {n} | Idea {word} | {'Lower' if n <= 10 else 'Higher'}-hanging fruit | Slow deliveries | {description} |"
        for n, (word, description) in enumerate(zip(IDEA_WORDS, descriptions, strict=True), 1)
    ]
    return "\n".join(
        ["| # | Idea | Type | Problem it solves | Description |", "| --- | --- | --- | --- | --- |", *rows]
    )


# Twenty different idea names and twenty different things for their descriptions.
IDEA_WORDS = [f"number {n}" for n in range(1, 21)]
THINGS = [
    "drivers",
    "bikes",
    "routes",
    "ovens",
    "boxes",
    "maps",
    "apps",
    "cards",
    "signs",
    "menus",
    "vans",
    "bells",
    "bags",
    "clocks",
    "lamps",
    "carts",
    "tills",
]
THINGS += ["trays", "mugs", "hats"]


async def test_the_shipped_ideate_eval_catches_an_idea_said_twice() -> None:
    eval_file = load_eval_file(ROOT / "plugins" / "DesignThinking" / "Ideate.evals.yaml")
    distinct = [f"Try new {thing} from next week." for thing in THINGS]
    # A small model's table: the last rows say the same thing about another thing, one word changed.
    looped = distinct[:15] + [
        f"Improve the delivery {thing} to cut delivery time for customers." for thing in THINGS[:5]
    ]
    model, _ = target("scripted", ideas_table(distinct), ideas_table(looped))
    good, repeated = await run_evals([eval_file], [model])
    assert good.passed, good.reason
    assert not repeated.passed and repeated.reason.startswith(
        "markdown-tables: 'Description' nearly repeats itself: row 16 'Improve the delivery drivers to cut"
    )


async def test_reports_json_junit_markdown_and_table(tmp_path: Path) -> None:
    eval_file = load_eval_file(_write(tmp_path, SUMMARY_EVAL))
    good, _ = target("good", "Bread is good.")
    bad, _ = target("bad", "Cheese | is | good.")
    results = await run_evals([eval_file], [good, bad])

    data = json.loads(to_json(results))
    assert data["version"] == 1
    assert data["summary"] == {"runs": 2, "passed": 1, "failed": 1, "cached": 0, "models": ["good", "bad"]}
    first = data["results"][0]
    assert set(first) == {
        *("file", "function", "case", "description", "model", "repeat", "pass", "score", "reason", "vars"),
        *("expected", "output", "error", "latency_s", "usage", "cached", "assertions"),
    }
    assert first["assertions"][0] == {
        "type": "icontains",
        "pass": True,
        "score": 1.0,
        "reason": "output contains (any case) 'bread'",
    }

    suites = ElementTree.fromstring(junit(results))
    assert [s.get("name") for s in suites] == ["Writer.Summarize [good]", "Writer.Summarize [bad]"]
    assert [s.get("failures") for s in suites] == ["0", "1"]
    failure = suites[1].find("testcase/failure")
    assert failure is not None and failure.get("message", "").startswith("icontains: output does not contain")
    assert "Cheese | is | good." in (failure.text or "")

    report = markdown(results)
    assert report.startswith("# kernel-app eval\n\n1 of 2 runs passed on good, bad.")
    assert "| Writer.Summarize | case-1: short and on topic | PASS 1.00 | FAIL 0.50 icontains:" in report
    assert "Cheese | is | good." in report  # outputs are in the report, fenced, unescaped
    assert "❌ `icontains` (0.00)" in report

    text = table(results)
    assert text.splitlines()[0].split() == ["function", "case", "good", "bad"]
    assert "PASS 1.00" in text and "FAIL 0.50 icontains: output does not contain" in text
    assert text.endswith("1 of 2 runs passed")


def _write(folder: Path, text: str) -> Path:
    path = folder / "summary.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_on_result_gets_each_result_as_soon_as_it_is_checked(tmp_path: Path) -> None:
    eval_file = load_eval_file(_write(tmp_path, SUMMARY_EVAL))
    model, service = target("m", "Bread is old.", "Cheese.")
    seen: list[tuple[int, bool, int]] = []
    results = await run_evals(
        [eval_file], [model], repeat=2, on_result=lambda r: seen.append((r.repeat, r.passed, len(service.requests)))
    )
    assert seen == [(1, True, 1), (2, False, 2)]  # the first came before the second answer was asked for
    assert [(r.repeat, r.passed) for r in results] == [(1, True), (2, False)]
