"""The call log as a user meets it: ``kernel-app run`` in a process of its own logs its model call (written
before the process exits), ``kernel-app logs`` in the next process finds it, and the API key is nowhere in
the data folder. ``--no-call-log`` and KERNEL_APP_CALL_LOG=0 log nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.cli import run_cli

pytestmark = pytest.mark.e2e  # kernel-app in a subprocess, over a loopback server

KEY = "sk-e2e-Zq8T2vLmN4xR7kP1wY5sB3cD"


def env(server) -> dict[str, str]:
    return {"KERNEL_APP_SERVICE": "openai", "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY}


def data_folder() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "kernel-app" / "memory"  # this test's own (tests/conftest.py)


def test_a_run_is_logged_and_listed_by_the_next_process_without_its_key(openai_server, tmp_path: Path) -> None:
    openai_server.queue("Bread is good.")
    ran = run_cli("run", "Writer.Summarize", "--input", "A long text about bread.", **env(openai_server))
    assert ran.returncode == 0, ran.stderr

    listed = run_cli("logs", "--json")
    assert listed.returncode == 0, listed.stderr
    [call] = json.loads(listed.stdout)
    assert call["function"] == "Writer.Summarize" and call["answer"] == "Bread is good."
    assert call["service"] == "openai" and call["model"] == "gpt-4o-mini"
    assert "A long text about bread." in call["messages"][-1]["content"]
    assert call["prompt_tokens"] is not None and call["latency_ms"] > 0

    stored = b"".join(p.read_bytes() for p in data_folder().iterdir() if p.name.startswith("calls.sqlite3"))
    assert b"A long text about bread." in stored and KEY.encode() not in stored

    target = tmp_path / "summary.evals.yaml"
    exported = run_cli("logs", "--function", "Writer.Summarize", "-n", "1", "--to-eval", str(target))
    assert exported.returncode == 0, exported.stderr
    openai_server.queue("Bread is good.")
    evaluated = run_cli("eval", str(target), **env(openai_server))
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert "1 of 1 runs passed" in evaluated.stdout


@pytest.mark.parametrize("switch", [("--no-call-log",), ()], ids=["flag", "environment"])
def test_the_log_switched_off_logs_nothing(openai_server, switch: tuple[str, ...]) -> None:
    openai_server.queue("Bread is good.")
    extra = {} if switch else {"KERNEL_APP_CALL_LOG": "0"}
    ran = run_cli(*switch, "run", "Writer.Summarize", "--input", "bread", **env(openai_server), **extra)
    assert ran.returncode == 0, ran.stderr
    listed = run_cli("logs", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_yesterdays_swot_becomes_a_regression_case_that_passes(openai_server, tmp_path: Path) -> None:
    """The README's story: SWOT drafts with SWOTDraft (this service has no structured output) and renders
    four tables; the case expects the tables SWOT returned, not the draft, and passes on the same draft."""
    draft = "\n".join(
        f"{c}:\n" + "\n".join(f"- Point {i}: it matters because customers notice it every day." for i in range(3))
        for c in ("Strengths", "Weaknesses", "Opportunities", "Threats")
    )
    openai_server.default_answer = draft
    ran = run_cli("run", "BusinessThinking.SWOT", "--input", "a family bakery", **env(openai_server))
    assert ran.returncode == 0, ran.stderr

    target = tmp_path / "my-swot.evals.yaml"
    exported = run_cli("logs", "--function", "BusinessThinking.SWOT", "-n", "1", "--to-eval", str(target))
    assert exported.returncode == 0, exported.stderr
    text = target.read_text(encoding="utf-8")
    assert text.count("function: BusinessThinking.SWOT") == 1 and "input: a family bakery" in text
    assert "type: markdown-tables" in text and "count: 4" in text, text
    assert ran.stdout.strip() in text.replace("\n    ", "\n"), "the expected answer is the tables SWOT printed"

    evaluated = run_cli("eval", str(target), "--json", **env(openai_server))
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert json.loads(evaluated.stdout)["summary"]["failed"] == 0
