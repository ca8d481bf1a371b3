"""``kernel-app logs``: list and filter the call log, show one call, turn calls into an eval file, clear.

In process (click's runner) over a real SQLite call log in the test's data folder; the calls are written
by the recorder around the scripted service, as any surface's calls are."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kernel_app import ScriptedChatCompletion
from kernel_app.base.config import Settings, load_settings
from kernel_app.base.errors import ConfigError
from kernel_app.interfaces.cli.logs_cmd import parse_when
from kernel_app.interfaces.cli.main import cli
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.evals import load_eval_file
from kernel_app.providers.call_log import CallRecord, create_recorder, open_call_log, record_calls

SWOT_ANSWER = "| Strengths | Why |\n|---|---|\n| Fresh bread | Regulars come back every morning. |"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def logs(data: Path, *args: str, input: str | None = None) -> Any:
    result = CliRunner().invoke(cli, ["--memory-dir", str(data), "logs", *args], input=input)
    return result


async def run_functions(data: Path) -> None:
    """Two Writer.Summarize calls and one Writer.ShortPoem call, through the recorder create_chat_service uses."""
    settings = Settings(memory_dir=data)
    service = ScriptedChatCompletion(["Bread is good.", "Cheese is good.", SWOT_ANSWER])
    recorder = create_recorder(settings)
    record_calls(service, recorder)
    kernel = build_kernel(settings, chat_service=service).kernel
    await kernel.invoke(kernel.get_function("Writer", "Summarize"), input="A long text about bread.")
    await kernel.invoke(kernel.get_function("Writer", "Summarize"), input="A long text about cheese.")
    await kernel.invoke(kernel.get_function("Writer", "ShortPoem"), input="bakery strengths")
    recorder.close()  # writes what is queued


def write(data: Path, record: CallRecord) -> int:
    log = open_call_log(Settings(memory_dir=data))
    try:
        return log.write(record)
    finally:
        log.close()


async def test_the_list_shows_the_newest_calls_last_with_function_tokens_and_previews(data: Path) -> None:
    await run_functions(data)
    result = logs(data)
    assert result.exit_code == 0, result.output
    headers = [line for line in result.output.splitlines() if line.startswith("#")]
    assert [h.split()[0] for h in headers] == ["#1", "#2", "#3"], "the default -n 3, oldest first"
    assert "Writer.Summarize" in headers[0] and "scripted/scripted" in headers[0] and "tokens" in headers[0]
    assert "prompt: " in result.output and "answer: Bread is good." in result.output

    result = logs(data, "-n", "1")
    assert result.output.startswith("#3 ") and "Writer.ShortPoem" in result.output


async def test_filters_and_json(data: Path) -> None:
    await run_functions(data)
    write(
        data,
        CallRecord(
            started_at=time.time() - 86400 * 3,
            service="openai",
            model="gpt-4o-mini",
            messages=[],
            settings={},
            answer="old",
            latency_ms=5.0,
            conversation="conv-1",
        ),
    )
    result = logs(data, "--function", "Writer.Summarize", "-n", "0", "--json")
    assert result.exit_code == 0, result.output
    calls = json.loads(result.output)
    assert [c["answer"] for c in calls] == ["Bread is good.", "Cheese is good."]
    assert calls[0]["functions"] == [{"name": "Writer.Summarize", "arguments": {"input": "A long text about bread."}}]
    assert {"prompt_tokens", "completion_tokens", "latency_ms", "settings", "messages"} <= set(calls[0])

    def answers(*args: str) -> list[str]:
        found = logs(data, *args, "-n", "0", "--json")
        assert found.exit_code == 0, found.output
        return [c["answer"] for c in json.loads(found.output)]

    assert answers("--conversation", "conv-1") == ["old"]
    assert answers("--model", "gpt-4o-mini") == ["old"]
    assert "old" not in answers("--since", "1d") and len(answers("--since", "1d")) == 3
    assert answers("--id", "1", "--id", "3") == ["Bread is good.", SWOT_ANSWER]
    assert answers("--function", "Nobody.Nothing") == []


async def test_show_prints_the_full_prompt_settings_and_answer(data: Path) -> None:
    await run_functions(data)
    result = logs(data, "show", "3")
    assert result.exit_code == 0, result.output
    assert "## Prompt" in result.output and "bakery strengths" in result.output
    assert "## Answer" in result.output and SWOT_ANSWER in result.output
    assert 'function: Writer.ShortPoem {"input": "bakery strengths"}' in result.output
    assert "settings: {" in result.output
    missing = logs(data, "show", "99")
    assert missing.exit_code != 0 and "no logged call #99" in str(missing.exception or missing.output)


async def test_to_eval_writes_a_file_the_eval_command_loads(data: Path, tmp_path: Path) -> None:
    await run_functions(data)
    target = tmp_path / "my-summary.evals.yaml"
    result = logs(data, "--function", "Writer.Summarize", "-n", "1", "--to-eval", str(target))
    assert result.exit_code == 0, result.output
    assert f"wrote 1 case of Writer.Summarize to {target}" in result.output
    loaded = load_eval_file(target)
    assert loaded.function == "Writer.Summarize"
    [case] = loaded.cases
    assert case.vars == {"input": "A long text about cheese."} and case.expected == "Cheese is good."

    chosen = tmp_path / "chosen.evals.yaml"
    result = logs(data, "--id", "1", "--id", "2", "--to-eval", str(chosen))
    assert result.exit_code == 0, result.output
    assert [c.expected for c in load_eval_file(chosen).cases] == ["Bread is good.", "Cheese is good."]


async def test_clear_before_a_date_and_everything(data: Path) -> None:
    await run_functions(data)
    write(
        data,
        CallRecord(
            started_at=time.time() - 86400 * 60,
            service="s",
            model="m",
            messages=[],
            settings={},
            answer="a",
            latency_ms=1.0,
        ),
    )
    result = logs(data, "clear", "--before", "30d")
    assert result.exit_code == 0 and "deleted 1 call" in result.output
    refused = logs(data, "clear", input="n\n")
    assert refused.exit_code != 0, "clearing everything asks first"
    result = logs(data, "clear", "--yes")
    assert result.exit_code == 0 and "deleted 3 calls" in result.output


def test_help_says_how_to_clear_and_turn_the_log_off() -> None:
    result = CliRunner().invoke(cli, ["logs", "--help"])
    assert "kernel-app logs clear --before" in result.output and "--no-call-log" in result.output


def test_the_call_log_setting_comes_from_flag_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().call_log is True, "on by default"
    monkeypatch.setenv("KERNEL_APP_CALL_LOG", "0")
    assert load_settings().call_log is False
    assert load_settings(call_log=True).call_log is True, "the flag wins"
    monkeypatch.delenv("KERNEL_APP_CALL_LOG")
    config = tmp_path / "config.toml"
    config.write_text("call_log = false\n", encoding="utf-8")
    assert load_settings(config).call_log is False
    config.write_text('call_log = "maybe"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"call_log.*expected true or false"):
        load_settings(config)


def test_with_the_log_off_create_chat_service_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel_app.providers import create_chat_service
    from kernel_app.providers.call_log import recorder_of

    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused-in-this-test")
    assert recorder_of(create_chat_service(Settings(service="openai"))) is not None
    assert recorder_of(create_chat_service(Settings(service="openai", call_log=False))) is None


@pytest.mark.parametrize(("value", "age_s"), [("30m", 1800), ("2h", 7200), ("7d", 7 * 86400), ("1w", 7 * 86400)])
def test_ages_are_that_long_ago(value: str, age_s: int) -> None:
    assert abs(time.time() - age_s - parse_when(value, "--since")) < 5


def test_a_bad_date_is_a_one_line_error_naming_the_option(data: Path) -> None:
    result = logs(data, "--since", "last tuesday")
    assert result.exit_code != 0
    assert "--since 'last tuesday': expected a date" in str(result.exception)
