"""`kernel-app plan` / `execute` as a user meets issue 10: approval of function calls, the trace, typed
failures, broken saved plans listed whole, `--debug` anywhere with the model answers first, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.cli import ROOT, cli_env, run_cli


def env_for(server, tmp_path: Path) -> dict[str, str]:
    return {
        "KERNEL_APP_SERVICE": "openai",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "KERNEL_APP_MEMORY_DIR": str(tmp_path / "store"),
    }


SAVE = [("memory-save", {"input": "my PIN is 1234", "collection": "notes", "id": "pin"})]


def test_function_calling_without_execute_runs_nothing_with_an_effect(tool_server, tmp_path: Path) -> None:
    tool_server.answers.extend([[("Math-add", {"a": 2, "b": 3}), *SAVE], "Saved, and 2 + 3 = 5."])
    proc = run_cli(
        "plan", "remember my PIN; add 2 and 3", "--planner", "function-calling", **env_for(tool_server, tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Saved, and 2 + 3 = 5."
    assert "  ran Math.add(a=2, b=3)" in proc.stderr
    assert (
        '  not run (needs approval): memory.save(input="my PIN is 1234", collection="notes", id="pin")' in proc.stderr
    )
    assert "rerun with --execute" in proc.stderr
    assert sorted(tool_server.tool_messages(1)) == ["5", "not run: needs approval"]  # the model was told
    # Nothing was saved to memory. The call log beside it (calls.sqlite3) does hold the model's answer,
    # the call it asked for included: that is what it is for.
    assert not (tmp_path / "store").exists() or "1234" not in "".join(
        p.read_text(errors="replace")
        for p in (tmp_path / "store").rglob("*")
        if p.is_file() and not p.name.startswith("calls.sqlite3")
    )


def test_function_calling_with_execute_and_yes_runs_and_traces(tool_server, tmp_path: Path) -> None:
    tool_server.answers.extend([SAVE, "Saved."])
    env = env_for(tool_server, tmp_path)
    proc = run_cli("plan", "remember my PIN", "--planner", "function-calling", "--execute", "--yes", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    assert '  ran memory.save(input="my PIN is 1234", collection="notes", id="pin")' in proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["result"] == "Saved." and payload["steps"][0]["function"] == "memory.save"
    assert payload["execution"]["calls"][0]["call"].startswith("memory.save(")
    assert tool_server.tool_messages(1) == ["pin"]  # memory.save returns the id
    refused = run_cli("plan", "x", "--planner", "function-calling", "--execute", **env)
    assert refused.returncode == 2 and "--yes" in refused.stderr  # no terminal to ask on


def test_a_model_that_never_stops_fails_in_one_line_naming_the_limit(tool_server, tmp_path: Path) -> None:
    tool_server.default = [("Math-add", {"a": 1, "b": 1})]
    proc = run_cli("plan", "add forever", "--planner", "function-calling", **env_for(tool_server, tmp_path))
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "limit of 5 round(s)" in proc.stderr, proc.stderr


@pytest.mark.e2e
def test_a_broken_saved_plan_lists_every_problem(tmp_path: Path) -> None:
    plan = {
        "steps": [
            {"function": "Math.add", "args": {"a": 1}, "output": "sum"},
            {"function": "Math.ad", "args": {"a": 1, "b": 2}, "output": "sum2"},
            {"function": "Text.upper", "args": {"input": "$nothing", "style": "loud"}, "output": "loud"},
        ]
    }
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(plan))
    proc = run_cli("execute", str(saved), "--yes")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    assert (
        lines[0] == "error: step 1 (Math.add): missing required argument 'b' (The second number) (and 3 more problems)"
    )
    assert lines[1:] == [
        "  step 2: unknown function 'Math.ad': did you mean Math.add or Math.divide or Math.subtract?",
        "  step 3 (Text.upper): unknown argument 'style'; parameters are input",
        "  step 3 (Text.upper): '$nothing' is not defined: available are $sum, $sum2"
        " (a literal text is written without $)",
    ]
    wrong_keys = tmp_path / "keys.json"
    wrong_keys.write_text(json.dumps({"steps": [{"function": "Math.add", "arg": {}, "out": "x", "output": "s"}]}))
    proc = run_cli("execute", str(wrong_keys), "--yes")
    assert proc.returncode == 3 and len(proc.stderr.splitlines()) == 2, proc.stderr
    assert "(and 1 more)" in proc.stderr.splitlines()[0] and "out: unknown key" in proc.stderr.splitlines()[1]


@pytest.mark.e2e
def test_a_saved_plan_with_nan_or_infinity_is_refused_clearly(tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    saved.write_text('{"steps": [{"function": "Math.add", "args": {"a": NaN, "b": 1e999}, "output": "sum"}]}')
    proc = run_cli("execute", str(saved), "--yes")
    assert proc.returncode == 3
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: step 1 (Math.add): argument 'a': nan is not a finite number")
    assert lines[1].startswith("  step 1 (Math.add): argument 'b': inf is not a finite number")


def test_debug_is_accepted_anywhere_and_shows_the_answers_first(openai_server) -> None:
    openai_server.default_answer = "I'd rather write a poem about pizza."
    env = {"KERNEL_APP_SERVICE": "openai", "OPENAI_BASE_URL": openai_server.base_url}
    proc = run_cli("plan", "Make a SWOT", "--max-repairs", "1", "--debug", **env)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: no valid plan after 2 answer(s)")
    assert lines[1:4] == [
        "--- answer 1 ---",
        "I'd rather write a poem about pizza.",
        lines[3],
    ] and lines[3].startswith("--- error 1: the answer contains no JSON plan")
    log_start = next(i for i, line in enumerate(lines) if line.startswith("--- log of the run"))
    assert log_start > lines.index("--- answer 2 ---")
    assert any(line.startswith("DEBUG ") for line in lines[log_start:])
    assert not any(line.startswith("DEBUG ") for line in lines[:log_start])


SLOW_PLUGIN = """
import asyncio
import time
from pathlib import Path

from semantic_kernel.functions import kernel_function


class SlowPlugin:
    @kernel_function(name="crawl", description="Takes a long time, in a worker thread like the embedded model.")
    async def crawl(self, marker: str) -> str:
        Path(marker).write_text("started")
        await asyncio.to_thread(time.sleep, 60)
        return "finished"
"""


@pytest.mark.e2e
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_during_execute_stops_at_once(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    (plugins / "Slow").mkdir(parents=True)
    (plugins / "Slow" / "slow_plugin.py").write_text(textwrap.dedent(SLOW_PLUGIN))
    marker = tmp_path / "started"
    saved = tmp_path / "plan.json"
    saved.write_text(
        json.dumps({"steps": [{"function": "Slow.crawl", "args": {"marker": str(marker)}, "output": "x"}]})
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kernel_app",
            "--plugins-dir",
            str(plugins),
            "--trust",
            str(plugins),
            "execute",
            str(saved),
            "--yes",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.1)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and "interrupted" in stderr, stderr
    assert took < 10, f"Ctrl-C took {took:.1f} s (the step sleeps 60 s in a thread)"


def test_each_call_is_shown_and_asked_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from kernel_app.base.effects import Effect
    from kernel_app.interfaces.cli.plan_cmd import _approve_calls_on_terminal
    from planners import CallRequest

    asked: list[str] = []
    monkeypatch.setattr(click, "confirm", lambda text, **kwargs: asked.append(text) or False)
    request = CallRequest("memory.save", {"input": "line one\nline two", "collection": "notes"}, Effect.WRITE)
    assert _approve_calls_on_terminal(yes=False)(request) is False
    assert asked == ['Run memory.save(input="line one\\nline two", collection="notes") (write)?']
    assert _approve_calls_on_terminal(yes=True)(request) is True and len(asked) == 1
