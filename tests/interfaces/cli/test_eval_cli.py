"""``kernel-app eval`` end to end: a subprocess over the loopback OpenAI stub, exit codes and files parsed back."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.support.cli import run_cli

pytestmark = pytest.mark.e2e  # kernel-app in a subprocess, over a loopback server

EVAL = """function: Writer.Summarize
cases:
  - description: mentions bread
    input: A long text about bread.
    assert:
      - {type: icontains, value: bread}
      - {type: no-cjk}
  - input: A long text about cheese.
    assert:
      - {type: icontains, value: cheese}
"""


def env(server, data: Path) -> dict[str, str]:
    """The stub's service, and a data folder of the test's own (the output cache lives there)."""
    return {
        "KERNEL_APP_SERVICE": "openai",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-unused",
        "KERNEL_APP_MEMORY_DIR": str(data),
    }


def test_passing_run_exits_0_with_a_table_and_progress(openai_server, tmp_path: Path) -> None:
    path = tmp_path / "summary.yaml"
    path.write_text(EVAL, encoding="utf-8")
    openai_server.queue("Bread is good.", "Cheese is good.")
    proc = run_cli("eval", str(path), **env(openai_server, tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr
    assert "case 0/2: starting: the first run loads the model" in proc.stderr  # not a terminal: lines
    assert "case 1/2: Writer.Summarize case-1 on gpt-4o-mini" in proc.stderr
    assert "case-1 mentions bread" in proc.stdout and "2 of 2 runs passed" in proc.stdout


def test_failures_exit_1_with_json_junit_report_across_two_models(openai_server, tmp_path: Path) -> None:
    path = tmp_path / "summary.yaml"
    path.write_text(EVAL, encoding="utf-8")
    openai_server.queue("Bread is good.", "Bread 面包.", "Cheese is good.", "Nothing here.")
    junit_file, report_file = tmp_path / "out.xml", tmp_path / "out.md"
    proc = run_cli(
        "eval",
        str(path),
        *("--model", "model-a", "--model", "model-b", "--json"),
        *("--junit", str(junit_file), "--report", str(report_file)),
        **env(openai_server, tmp_path / "data"),
    )
    assert proc.returncode == 1, proc.stderr
    # Each case runs on each model before the next case.
    assert [r.body["model"] for r in openai_server.requests] == ["model-a", "model-b", "model-a", "model-b"]
    data = json.loads(proc.stdout)
    assert data["summary"] == {"runs": 4, "passed": 2, "failed": 2, "cached": 0, "models": ["model-a", "model-b"]}
    verdicts = [(r["case"], r["model"], r["pass"], r["reason"].split(":")[0]) for r in data["results"]]
    assert verdicts == [
        ("case-1", "model-a", True, ""),
        ("case-1", "model-b", False, "no-cjk"),
        ("case-2", "model-a", True, ""),
        ("case-2", "model-b", False, "icontains"),
    ]
    suites = ElementTree.parse(junit_file).getroot()
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("Writer.Summarize [model-a]", "2", "0"),
        ("Writer.Summarize [model-b]", "2", "2"),
    ]
    report = report_file.read_text(encoding="utf-8")
    assert "2 of 4 runs passed on model-a, model-b." in report and "Bread 面包." in report


def test_a_malformed_file_exits_2_with_one_line(openai_server, tmp_path: Path) -> None:
    path = tmp_path / "summary.yaml"
    path.write_text(EVAL.replace("icontains", "icontain", 1), encoding="utf-8")
    proc = run_cli("eval", str(path), **env(openai_server, tmp_path / "data"))
    assert proc.returncode == 2 and openai_server.requests == []
    assert proc.stderr.strip() == (
        f"error: {path}:6: cases[0].assert[0].type: unknown assertion type 'icontain': did you mean 'icontains'?"
    )
    unknown = run_cli("eval", str(tmp_path / "missing.yaml"), **env(openai_server, tmp_path / "data"))
    assert unknown.returncode == 2 and "no such file or folder" in unknown.stderr


def test_the_shipped_swot_eval_runs_by_folder(openai_server, tmp_path: Path) -> None:
    """Without structured output the SWOT drafts with SWOTDraft; a draft whose cells are whole passes. The
    folder holds the other BusinessThinking evals too: they run, and fail on a SWOT draft as their answer."""
    draft = "\n".join(
        f"{c}:\n" + "\n".join(f"- Point {i}: it matters because customers notice it every day." for i in range(3))
        for c in ("Strengths", "Weaknesses", "Opportunities", "Threats")
    )
    openai_server.default_answer = draft
    root = Path(__file__).resolve().parents[3]
    proc = run_cli(
        "eval", str(root / "plugins" / "BusinessThinking"), "--json", **env(openai_server, tmp_path / "data")
    )
    data = json.loads(proc.stdout or "{}")
    results = data.get("results", [])
    assert {r["function"] for r in results} >= {"BusinessThinking.SWOT", "BusinessThinking.ShiftDomain"}, proc.stderr
    swot = [r for r in results if r["function"] == "BusinessThinking.SWOT"]
    assert len(swot) >= 3 and all(r["pass"] for r in swot), [r["reason"] for r in swot]
    assert proc.returncode == 1  # a SWOT draft is no answer for ShiftDomain's or SWOTDraft's evals


def test_a_copied_function_is_evaluated_from_its_own_folder_not_the_built_in(openai_server, tmp_path: Path) -> None:
    """The author's copy of Writer.Summarize, evaluated by folder, runs their prompt without --plugins-dir."""
    function = tmp_path / "my-plugins" / "Writer" / "Summarize"
    function.mkdir(parents=True)
    (function / "skprompt.txt").write_text("MY EDITED PROMPT: summarize {{$input}}", encoding="utf-8")
    (function / "evals.yaml").write_text(
        "cases:\n  - input: bread\n    assert: [{type: icontains, value: bread}]\n", encoding="utf-8"
    )
    openai_server.queue("Bread, briefly.")
    proc = run_cli("eval", str(function), **env(openai_server, tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr
    assert "MY EDITED PROMPT: summarize bread" in openai_server.requests[0].prompt
    assert f"eval: loading plugins from {tmp_path / 'my-plugins'}" in proc.stderr


def test_a_rerun_reuses_cached_outputs_and_compares_with_the_baseline(openai_server, tmp_path: Path) -> None:
    path = tmp_path / "summary.yaml"
    path.write_text(EVAL, encoding="utf-8")
    data, baseline, html_report = tmp_path / "data", tmp_path / "before.json", tmp_path / "evals.html"
    openai_server.queue("Bread is good.", "Cheese is good.")
    first = run_cli("eval", str(path), "--json", **env(openai_server, data))
    assert first.returncode == 0 and len(openai_server.requests) == 2, first.stderr
    baseline.write_text(first.stdout, encoding="utf-8")
    assert (data / "eval-cache.sqlite3").is_file()

    # The author tightens an assertion: the outputs come from the cache, and case-2 now fails.
    path.write_text(EVAL.replace("value: cheese", "value: brie"), encoding="utf-8")
    second = run_cli(
        "eval", str(path), "--baseline", str(baseline), "--report", str(html_report), **env(openai_server, data)
    )
    assert second.returncode == 1 and len(openai_server.requests) == 2, second.stderr  # no model call
    assert "case 2/2: Writer.Summarize case-2 on gpt-4o-mini (cached)" in second.stderr
    assert "1 of 2 runs passed (2 of 2 outputs from the cache)" in second.stdout
    assert f"Compared with {baseline}: 1 regressed, 0 improved, 1 unchanged" in second.stdout
    assert "REGRESSED: Writer.Summarize case-2 on gpt-4o-mini: PASS 1.00 -> FAIL 0.00" in second.stdout
    page = html_report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "REGRESSED: Writer.Summarize case-2" in page

    openai_server.queue("Bread is good.", "Brie is good.")
    third = run_cli("eval", str(path), "--no-cache", "--json", **env(openai_server, data))
    assert third.returncode == 0 and len(openai_server.requests) == 4, third.stderr
    assert json.loads(third.stdout)["summary"]["cached"] == 0


def test_a_bad_baseline_exits_2_before_any_model_call(openai_server, tmp_path: Path) -> None:
    path = tmp_path / "summary.yaml"
    path.write_text(EVAL, encoding="utf-8")
    baseline = tmp_path / "before.json"
    baseline.write_text('{"summary": {}}', encoding="utf-8")
    proc = run_cli("eval", str(path), "--baseline", str(baseline), **env(openai_server, tmp_path / "data"))
    assert proc.returncode == 2 and openai_server.requests == []
    assert proc.stderr.strip() == (
        f"error: {baseline}: not an eval run (no `results` list): pass a file that `kernel-app eval --json` wrote"
    )


def test_the_progress_bar_redraws_in_place_on_a_terminal(openai_server, tmp_path: Path) -> None:
    """On a terminal one line is redrawn (carriage return, erase), cut to the width so it never wraps."""
    import pexpect

    from tests.support.cli import ROOT, cli_env

    path = tmp_path / "summary.yaml"
    path.write_text(EVAL, encoding="utf-8")
    openai_server.queue("Bread is good.", "Cheese is good.")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "kernel_app", "eval", str(path)],
        # $COLUMNS is not the terminal's width: the bar measures the terminal it is drawn on.
        env=cli_env(**env(openai_server, tmp_path / "data"), TERM="xterm", COLUMNS="200"),
        encoding="utf-8",
        timeout=60,
        dimensions=(24, 50),
        cwd=str(ROOT),
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    shown = child.before or ""
    frames = [frame for frame in shown.split("\r\x1b[K") if "/2 " in frame]
    # The empty bar comes first, before the first run (which loads the model) says anything.
    assert [frame.split()[1] for frame in frames] == ["0/2", "1/2", "2/2"], shown
    assert frames[0].startswith("[.....") and "starting" in frames[0]
    assert frames[1].startswith("[#####") and all(len(frame.split("\r")[0].rstrip()) < 50 for frame in frames)
    assert "case 1/2" not in shown and "2 of 2 runs passed" in shown  # not the pipe's lines
