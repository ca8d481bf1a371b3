"""`kernel-app plan` and `kernel-app execute` as a user runs them, over a loopback OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli

pytestmark = pytest.mark.e2e  # kernel-app in a subprocess, over a loopback server

VALID = json.dumps({"steps": [{"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}]})


def openai_env(server) -> dict[str, str]:
    return {"KERNEL_APP_SERVICE": "openai", "OPENAI_BASE_URL": server.base_url}


def test_plan_repairs_a_malformed_answer_and_executes(openai_server, tmp_path: Path) -> None:
    openai_server.queue('Sure! {"steps": [{"function": "Math.add", "args": {"a": 110', VALID)
    saved = tmp_path / "plan.json"
    proc = run_cli(
        "plan",
        "What is the sum of 110 and 990?",
        "--json",
        "--execute",
        "--yes",
        "--save",
        str(saved),
        **openai_env(openai_server),
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["steps"][0]["function"] == "Math.add" and payload["result"] == "1100"
    assert len(openai_server.requests) == 2  # exactly one repair turn
    assert openai_server.requests[0].body["response_format"]["type"] == "json_schema"
    assert json.loads(saved.read_text())["steps"][0]["output"] == "sum"

    again = run_cli("execute", str(saved), "--yes", **openai_env(openai_server))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "1100" and len(openai_server.requests) == 2  # no model call to execute


def test_garbage_answers_fail_in_one_line_with_exit_3(openai_server) -> None:
    openai_server.default_answer = "I'd rather write a poem about pizza."
    proc = run_cli("plan", "Make a SWOT", "--max-repairs", "2", **openai_env(openai_server))
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert len(openai_server.requests) == 3
    debug = run_cli("--debug", "plan", "Make a SWOT", "--max-repairs", "1", **openai_env(openai_server))
    assert debug.returncode == 3 and debug.stderr.count("I'd rather write a poem about pizza.") >= 2
    assert "Traceback" not in debug.stderr


def test_execute_refuses_without_confirmation_and_rejects_made_up_functions(openai_server, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(VALID)
    refused = run_cli("execute", str(plan_file), **openai_env(openai_server))
    assert refused.returncode == 2 and "--yes" in refused.stderr
    plan_file.write_text(json.dumps({"steps": [{"function": "Shell.run", "args": {"cmd": "rm"}, "output": "x"}]}))
    made_up = run_cli("execute", str(plan_file), "--yes", **openai_env(openai_server))
    assert made_up.returncode == 3 and "Shell.run" in made_up.stderr
    assert openai_server.requests == []


def test_the_bakery_goal_runs_swot_then_shift_domain(openai_server) -> None:
    """The issue's own goal, end to end: plan, execute (SWOT's draft and the shift's tables are real model calls)."""
    plan = {
        "steps": [
            {"function": "BusinessThinking.SWOT", "args": {"input": "a bakery"}, "output": "swot"},
            {
                "function": "BusinessThinking.ShiftDomain",
                "args": {"input": "$swot", "domain": "cleaning services"},
                "output": "shifted",
            },
        ]
    }
    # SWOT asks a structured-output service (OpenAI here) for the quadrants as JSON.
    draft = json.dumps(
        {
            "strengths": [{"point": "Fresh bread every morning", "why": "regulars come daily"}],
            "weaknesses": [{"point": "Small shop", "why": "few seats"}],
            "opportunities": [{"point": "Catering", "why": "offices nearby"}],
            "threats": [{"point": "Supermarkets", "why": "cheaper bread"}],
        }
    )
    # ShiftDomain asks it for each of the four tables' rows as JSON too.
    rows = [
        ("Reliable early-morning crews", "offices open clean"),
        ("Small team", "few sites at once"),
        ("Office contracts", "businesses nearby"),
        ("Franchise cleaners", "cheaper visits"),
    ]
    shifted = [json.dumps({"rows": [{"Point": point, "Why it matters": why}]}) for point, why in rows]
    openai_server.queue(json.dumps(plan), draft, *shifted)
    goal = "Make a SWOT for a bakery, then shift it to the domain of cleaning services"
    proc = run_cli("plan", goal, "--execute", "--yes", **openai_env(openai_server))
    assert proc.returncode == 0, proc.stderr
    assert "| Reliable early-morning crews | offices open clean |" in proc.stdout
    assert proc.stdout.strip().endswith(
        "### Threats\n| Point | Why it matters |\n| --- | --- |\n| Franchise cleaners | cheaper visits |"
    )
    shift_prompt = json.dumps(openai_server.requests[2].body["messages"])
    assert "Fresh bread every morning" in shift_prompt and "cleaning services" in shift_prompt  # $swot was passed on
    assert len(openai_server.requests) == 6
