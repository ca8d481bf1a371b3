"""``kernel-app eval`` with a judge model and with a planner's file, in a subprocess over the loopback OpenAI stub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli

pytestmark = pytest.mark.e2e  # kernel-app in a subprocess, over a loopback server

RUBRIC_EVAL = """function: Writer.Summarize
cases:
  - input: A long text about bread.
    expected: Bread is good.
    assert:
      - {type: llm-rubric, value: "The summary is about bread", threshold: 0.7}
      - {type: rouge-l, threshold: 0.5}
"""

PLANNER_EVAL = """planner: sequential
cases:
  - input: What is the sum of 110 and 990?
    assert:
      - {type: plan-functions, value: [Math.add]}
"""


def env(server) -> dict[str, str]:
    return {"KERNEL_APP_SERVICE": "openai", "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-unused"}


def test_the_judge_is_its_own_model_asked_for_structured_output(openai_server, tmp_path: Path) -> None:
    path = tmp_path / "rubric.yaml"
    path.write_text(RUBRIC_EVAL, encoding="utf-8")
    openai_server.queue("Bread is good.", json.dumps({"pass": True, "score": 0.6, "reason": "Mostly bread."}))
    proc = run_cli(
        "eval", str(path), "--json", "--judge-service", "openai", "--judge-model", "judge-4o", **env(openai_server)
    )
    assert proc.returncode == 1, proc.stderr  # the score 0.6 is under the threshold 0.7
    (result,) = json.loads(proc.stdout)["results"]
    assert result["reason"] == "llm-rubric: judge: Mostly bread. (score 0.60, threshold 0.7)"
    assert [a["type"] for a in result["assertions"] if a["pass"]] == ["rouge-l"]
    model, judge = openai_server.requests
    assert model.body["model"] == "gpt-4o-mini" and judge.body["model"] == "judge-4o"
    assert judge.body["response_format"]["type"] == "json_schema"
    assert "The summary is about bread" in judge.prompt and "Bread is good." in judge.prompt


def test_a_planner_file_runs_the_planner_on_each_goal(openai_server, tmp_path: Path) -> None:
    path = tmp_path / "goals.yaml"
    path.write_text(PLANNER_EVAL, encoding="utf-8")
    step = {"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}
    openai_server.queue(json.dumps({"steps": [step]}))
    proc = run_cli("eval", str(path), **env(openai_server))
    assert proc.returncode == 0, proc.stderr
    assert "planner:sequential" in proc.stdout and "1 of 1 runs passed" in proc.stdout
    assert "What is the sum of 110 and 990?" in openai_server.requests[0].prompt
