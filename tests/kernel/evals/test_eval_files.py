"""Loading eval files: where the function comes from, defaults, datasets, and one-line errors with lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_app.kernel.evals import EvalFileError, discover, load_eval_file

ROOT = Path(__file__).resolve().parents[3]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, function: str | None = None) -> str:
    with pytest.raises(EvalFileError) as caught:
        load_eval_file(path, function)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path))
    assert caught.value.exit_code == 2  # a usage error: the CLI exits 2
    return message


def test_the_location_names_the_function(tmp_path: Path) -> None:
    body = "cases:\n  - input: hi\n    assert: [{type: contains, value: hi}]\n"
    folder = write(tmp_path / "Writer" / "Summarize" / "evals.yaml", body)
    beside = write(tmp_path / "BusinessThinking" / "SWOT.evals.yaml", body)
    assert load_eval_file(folder).function == "Writer.Summarize"
    assert load_eval_file(beside).function == "BusinessThinking.SWOT"
    loose = write(tmp_path / "mine.yaml", body)
    assert load_eval_file(loose, "Math.add").function == "Math.add"  # --function
    named = write(tmp_path / "named.yaml", "function: Text.upper\n" + body)
    assert load_eval_file(named, "Math.add").function == "Text.upper"  # the file's own name wins
    assert error_of(loose).endswith(
        ":1: function: the file names no function: add `function: Plugin.Function` at its top or pass --function"
    )


def test_discover_finds_both_kinds_of_file_and_skips_others(tmp_path: Path) -> None:
    body = "cases: [{input: hi, assert: [{type: no-cjk}]}]\n"
    first = write(tmp_path / "P" / "F" / "evals.yaml", body)
    second = write(tmp_path / "P" / "G.evals.yaml", body)
    write(tmp_path / "P" / "G.yaml", "name: G\ntemplate: hi\n")  # a YAML prompt, not an eval file
    assert discover([tmp_path]) == [first, second]
    assert discover([second]) == [second]
    # A native function has no folder: its path names the eval file beside its module.
    assert discover([tmp_path / "P" / "G"]) == [second]
    from kernel_app.base.errors import UsageError

    with pytest.raises(UsageError, match="no such file or folder"):
        discover([tmp_path / "missing"])


def test_defaults_cases_vars_input_and_expected(tmp_path: Path) -> None:
    path = write(
        tmp_path / "e.yaml",
        """function: BusinessThinking.ShiftDomain
description: keeps the structure
defaults:
  vars: {domain: cleaning services}
  assert:
    - {type: no-cjk}
cases:
  - description: the bakery
    input: a SWOT of a bakery
    expected: a SWOT of a cleaning company
    assert:
      - {type: markdown-tables, count: 4, min-rows: 3, headings: [Strengths]}
  - vars: {input: a SWOT of a gym, domain: dentists}
""",
    )
    loaded = load_eval_file(path)
    assert loaded.description == "keeps the structure"
    first, second = loaded.cases
    assert (first.id, first.description) == ("case-1", "the bakery")
    assert first.vars == {"domain": "cleaning services", "input": "a SWOT of a bakery"}
    assert first.expected == "a SWOT of a cleaning company"
    assert [a.type for a in first.asserts] == ["no-cjk", "markdown-tables"]
    assert first.asserts[1].params == {"count": 4, "min-rows": 3, "headings": ["Strengths"]}
    assert second.vars == {"domain": "dentists", "input": "a SWOT of a gym"} and second.description == "a SWOT of a gym"


def test_dataset_rows_become_cases(tmp_path: Path) -> None:
    write(tmp_path / "cases.csv", "input,tone,expected\nhello,warm,Hi there\nbye,dry,\n")
    write(tmp_path / "more.jsonl", '{"input": "x"}\n\n{"input": "y", "expected": "Y"}\n')
    head = "function: Writer.Summarize\ndefaults: {vars: {tone: plain}, assert: [{type: words, max: 50}]}\n"
    csv_file = load_eval_file(write(tmp_path / "a.yaml", head + "dataset: cases.csv\n"))
    assert [c.vars for c in csv_file.cases] == [{"input": "hello", "tone": "warm"}, {"input": "bye", "tone": "dry"}]
    assert csv_file.cases[0].expected == "Hi there" and csv_file.cases[0].asserts[0].type == "words"
    mixed = load_eval_file(
        write(tmp_path / "b.yaml", head + "cases: [{input: z}]\ndataset: more.jsonl\n"),
    )
    assert [c.id for c in mixed.cases] == ["case-1", "case-2", "case-3"]
    assert [c.vars["input"] for c in mixed.cases] == ["z", "x", "y"] and mixed.cases[2].expected == "Y"
    write(tmp_path / "bad.jsonl", '{"input": "x"}\n[1]\n')
    with pytest.raises(EvalFileError, match=r"bad\.jsonl:2: expected a JSON object"):
        load_eval_file(write(tmp_path / "c.yaml", head + "dataset: bad.jsonl\n"))


@pytest.mark.parametrize(
    ("text", "expected_end"),
    [
        (
            "function: A.B\ncases:\n  - input: x\n    assert:\n      - {type: icontain, value: x}\n",
            ":5: cases[0].assert[0].type: unknown assertion type 'icontain': did you mean 'icontains'?",
        ),
        (
            "function: A.B\ncases:\n  - input: x\n    asert: [{type: no-cjk}]\n",
            ":4: cases[0].asert: unknown key: did you mean 'assert'?",
        ),
        (
            "function: A.B\ncases:\n  - input: x\n    assert:\n      - type: length\n        min: many\n",
            ":6: cases[0].assert[0].min: expected a whole number, got text: write a whole number",
        ),
        (
            "function: A.B\ncases:\n  - input: x\n    assert:\n      - type: contains\n",
            ":5: cases[0].assert[0].value: contains needs it: add `value: ...`",
        ),
        (
            "function: A.B\ncases:\n  - input: x\n    assert:\n      - {type: no-cjk, value: 3}\n",
            ":5: cases[0].assert[0].value: unknown key: known keys: description, type",
        ),
        (
            "function: A.B\ncases:\n  - input: x\n    assert:\n      - type: is-json\n        schema: {type: nope}\n",
            ":6: cases[0].assert[0].schema: not a valid JSON Schema (",
        ),
        (
            "function: A.B\ncases:\n  - input: x\n    assert:\n      - {type: not-regex, value: '(unclosed'}\n",
            ":5: cases[0].assert[0].value: not a regular expression (missing ) at position 9)",
        ),
        (
            "function: A.B\ncases:\n  - input: x\n    assert:\n"
            "      - type: sentences-complete\n        label-columns: -1\n",
            ":6: cases[0].assert[0].label-columns: must be 0 or more (how many leading columns of a table name",
        ),
        (
            "function: A.B\ncases:\n  - input: x\n    assert:\n"
            "      - type: markdown-tables\n        distinct: [Idea]\n        distinct-overlap: 80\n",
            ":7: cases[0].assert[0].distinct-overlap: 80 is outside (0, 1] (the share of words two cells share",
        ),
        ("function: A.B\ncases: {input: x}\n", ":2: cases: expected a list of cases, got a mapping"),
        ("function: A.B\ncases:\n  - input: x\n", ":3: cases[0]: no assertions: add `assert:` here or under"),
        ("function: A.B\ncases: []\n", ":1: cases: no cases: add `cases:`"),
        ("function: A.B\ncases:\n  - input: [x\n", ": YAML: "),
        ("- just a list\n", ":1: expected a mapping, got a list: write `key: value` lines"),
        ("function: A.B\ndataset: nowhere.csv\n", ":2: dataset: "),
    ],
)
def test_malformed_files_are_one_line_errors_with_line_and_field(tmp_path: Path, text: str, expected_end: str) -> None:
    message = error_of(write(tmp_path / "e.yaml", text))
    assert expected_end in message, message


def test_the_shipped_swot_eval_loads() -> None:
    loaded = load_eval_file(ROOT / "plugins" / "BusinessThinking" / "SWOT.evals.yaml")
    assert loaded.function == "BusinessThinking.SWOT" and len(loaded.cases) >= 3
    types = {a.type for case in loaded.cases for a in case.asserts}
    assert {"markdown-tables", "sentences-complete", "no-cjk"} <= types


def test_the_plugin_loader_does_not_read_an_eval_file_as_a_yaml_prompt(tmp_path: Path) -> None:
    from kernel_app.kernel.plugin_folders.loader import PluginDirectory, load_plugin_directories

    write(tmp_path / "P" / "Greet.yaml", "name: Greet\ndescription: says hello\ntemplate: Hello {{$input}}\n")
    write(tmp_path / "P" / "Greet.evals.yaml", "cases: [{input: Ann, assert: [{type: contains, value: Ann}]}]\n")
    report = load_plugin_directories([PluginDirectory(tmp_path)])
    assert [f.name for f in report.plugins["P"]] == ["Greet"]
    assert [p for p in report.problems if "evals" in p.path] == []


def test_a_dataset_is_read_only_under_the_folders_given(tmp_path: Path) -> None:
    """The server loads eval files with ``datasets_under``: a dataset outside them is never opened."""
    from kernel_app.kernel.evals.spec import parse_eval_text

    write(tmp_path / "outside.csv", "input\nthe server's secret\n")
    folder = tmp_path / "plugins" / "Writer"
    write(folder / "cases.csv", "input\nbread\n")
    body = "function: Writer.Summarize\ndefaults: {assert: [{type: contains, value: x}]}\ndataset: DATASET\n"
    inside = write(folder / "Summarize.evals.yaml", body.replace("DATASET", "cases.csv"))
    assert [c.vars for c in load_eval_file(inside, datasets_under=[tmp_path / "plugins"]).cases] == [{"input": "bread"}]
    outside = write(folder / "Summarize.evals.yaml", body.replace("DATASET", "../../outside.csv"))
    with pytest.raises(EvalFileError, match=r"Summarize\.evals\.yaml:3: dataset: not read here"):
        load_eval_file(outside, datasets_under=[tmp_path / "plugins"])
    with pytest.raises(EvalFileError, match=r"posted\.evals\.yaml:3: dataset: not read here"):
        parse_eval_text(body.replace("DATASET", "cases.csv"), Path("posted.evals.yaml"), datasets_under=())
