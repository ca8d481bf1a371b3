"""The command line as a user meets it: help, listing, linting, configuration and error codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import ROOT, cli_env, run_cli

pytestmark = pytest.mark.e2e  # each test runs kernel-app in a subprocess


def test_help_does_not_import_semantic_kernel_or_load_a_model() -> None:
    code = (
        "import sys\n"
        "from kernel_app.interfaces.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('semantic_kernel', 'openai', 'llama_cpp', 'onnxruntime', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=ROOT)
    assert "Usage: kernel-app" in proc.stdout and "run" in proc.stdout and "plugins" in proc.stdout
    assert "HEAVY []" in proc.stdout


def test_plugins_list_text_and_json() -> None:
    text = run_cli("plugins", "list")
    assert text.returncode == 0, text.stderr
    assert "BusinessThinking.SWOT" in text.stdout and "Math.add" in text.stdout
    proc = run_cli("plugins", "list", "--json")
    entries = json.loads(proc.stdout)
    swot = next(e for e in entries if (e["plugin"], e["function"]) == ("BusinessThinking", "SWOT"))
    assert swot["description"]
    params = {p["name"]: p for p in swot["parameters"]}
    assert params["input"]["required"] is True
    assert set(params["input"]) == {"name", "description", "default", "required"}
    shift = next(e for e in entries if e["function"] == "ShiftDomain")
    assert {p["name"] for p in shift["parameters"]} == {"input", "domain"}


def test_lint_ok_and_broken(tmp_path: Path) -> None:
    good = tmp_path / "good" / "Greeter" / "Hello"
    good.mkdir(parents=True)
    (good / "skprompt.txt").write_text("Say hello to {{$input}}")
    (good / "config.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "type": "completion",
                "description": "Greet.",
                "completion": {"max_tokens": 20},
                "input": {"parameters": [{"name": "input", "description": "who"}]},
            }
        )
    )
    proc = run_cli("plugins", "lint", str(tmp_path / "good"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 function(s) loaded, 0 error(s)" in proc.stderr

    bad = tmp_path / "bad" / "Broken"
    (bad / "NoPrompt").mkdir(parents=True)
    (bad / "Json").mkdir()
    (bad / "Json" / "skprompt.txt").write_text("x")
    (bad / "Json" / "config.json").write_text('{"description": "d",,}')
    proc = run_cli("plugins", "lint", str(tmp_path / "bad"))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    assert any("config.json:1:21: invalid JSON" in line for line in lines)
    assert any("NoPrompt: no skprompt.txt: add skprompt.txt" in line for line in lines)


def test_user_plugins_dir_from_flag_and_environment(tmp_path: Path) -> None:
    folder = tmp_path / "Mine" / "Echo"
    folder.mkdir(parents=True)
    (folder / "skprompt.txt").write_text("{{$input}}")
    (folder / "config.json").write_text(json.dumps({"description": "Echo.", "input_variables": [{"name": "input"}]}))
    assert "Mine.Echo" in run_cli("--plugins-dir", str(tmp_path), "plugins", "list").stdout
    assert "Mine.Echo" in run_cli("plugins", "list", KERNEL_APP_PLUGINS=str(tmp_path)).stdout


def test_untrusted_native_plugin_is_reported_not_run(tmp_path: Path) -> None:
    plugin = tmp_path / "Tools"
    plugin.mkdir()
    marker = tmp_path / "ran"
    (plugin / "tools.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from semantic_kernel.functions import kernel_function\n"
        "class Tools:\n    @kernel_function(name='ping')\n    def ping(self) -> str:\n        return 'pong'\n"
    )
    proc = run_cli("run", "Tools.ping", KERNEL_APP_PLUGINS=str(tmp_path))
    assert proc.returncode == 2 and not marker.exists(), proc.stderr
    assert "no function Tools.ping" in proc.stderr or "did not load" in proc.stderr
    assert "untrusted directory" in proc.stderr
    trusted = run_cli("--trust", str(tmp_path), "run", "Tools.ping", KERNEL_APP_PLUGINS=str(tmp_path))
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.strip() == "pong" and marker.exists()


def test_native_run_and_usage_errors() -> None:
    proc = run_cli("run", "Math.add", "--var", "a=110", "--var", "b=990", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == "1100"
    bad_var = run_cli("run", "Math.add", "--var", "a")
    assert bad_var.returncode == 2 and bad_var.stderr.startswith("error: --var 'a': expected NAME=VALUE")
    unknown = run_cli("run", "Nope.nothing")
    assert unknown.returncode == 2 and "plugins list" in unknown.stderr
    missing = run_cli(
        "run",
        "BusinessThinking.ShiftDomain",
        "--input",
        "swot",
        KERNEL_APP_SERVICE="openai",
        OPENAI_API_KEY="sk-unused",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
    )
    assert missing.returncode == 2 and "missing required variable 'domain'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_config_file_and_bad_values(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('service = "openai"\nmodel = "from-file"\n')
    proc = run_cli("--config", str(config), "run", "Writer.Summarize", "--input", "x")
    assert proc.returncode == 2 and "OPENAI_API_KEY" in proc.stderr  # the file chose the openai service
    config.write_text('servce = "openai"\n')
    typo = run_cli("run", "Math.add", KERNEL_APP_CONFIG=str(config))
    assert typo.returncode == 2 and "unknown setting 'servce'" in typo.stderr
    bad = run_cli("run", "Math.add", KERNEL_APP_SERVICE="gemini")
    assert bad.returncode == 2 and "use one of local, openai, azure" in bad.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('service = "openai\n')
    assert "not valid TOML" in run_cli("--config", str(broken), "plugins", "list").stderr
