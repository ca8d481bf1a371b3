"""Settings as a user sets them: flags over KERNEL_APP_* variables over the config file over defaults, and
one-line errors that name where a bad value came from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_app.base.config import Settings, load_settings
from kernel_app.base.errors import ConfigError

ENV = (
    "KERNEL_APP_SERVICE",
    "KERNEL_APP_MODEL",
    "KERNEL_APP_PLUGINS",
    "KERNEL_APP_TRUSTED",
    "KERNEL_APP_MEMORY_DIR",
    "KERNEL_APP_HTTP_PLUGIN",
    "KERNEL_APP_LOCAL_CONTEXT_TOKENS",
    "KERNEL_APP_LOCAL_THREADS",
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config.toml"
    monkeypatch.setenv("KERNEL_APP_CONFIG", str(path))
    return path


def test_defaults_without_a_file(config: Path) -> None:
    settings = load_settings()
    assert settings == Settings()
    assert (settings.service, settings.model, settings.plugins_dirs, settings.http_plugin) == ("local", None, [], False)
    assert settings.local_context_tokens == 4096 and settings.local_threads is None


def test_flags_beat_the_environment_which_beats_the_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_text(
        'service = "openai"\nmodel = "from-file"\nplugins_dirs = ["~/mine"]\nhttp_plugin = true\nlocal_threads = 3\n'
    )
    from_file = load_settings()
    assert (from_file.service, from_file.model, from_file.http_plugin, from_file.local_threads) == (
        "openai",
        "from-file",
        True,
        3,
    )
    assert from_file.plugins_dirs == [Path("~/mine").expanduser()]

    monkeypatch.setenv("KERNEL_APP_MODEL", "from-env")
    monkeypatch.setenv("KERNEL_APP_PLUGINS", os.pathsep.join(["/a", "", "/b"]))
    monkeypatch.setenv("KERNEL_APP_HTTP_PLUGIN", "0")
    monkeypatch.setenv("KERNEL_APP_LOCAL_THREADS", "2")
    from_env = load_settings()
    assert (from_env.service, from_env.model, from_env.http_plugin, from_env.local_threads) == (
        "openai",
        "from-env",
        False,
        2,
    )
    assert from_env.plugins_dirs == [Path("/a"), Path("/b")]

    flagged = load_settings(model="from-flag", service=None, plugins_dirs=None, memory_dir=config.parent / "m")
    assert (flagged.model, flagged.service, flagged.memory_dir) == ("from-flag", "openai", config.parent / "m")


def test_an_explicit_config_file_must_exist(tmp_path: Path, config: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: config file not found: check the path given to --config"):
        load_settings(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('servce = "openai"\n', r"config\.toml: unknown setting 'servce': valid keys are service, model, plugins_dirs"),
        ('service = "gemini"\n', r"config\.toml: 'service': unknown service 'gemini': use one of local, openai, azure"),
        ('service = "openai\n', r"config\.toml: not valid TOML: .*line 1.*: fix the file or point KERNEL_APP_CONFIG"),
        ("plugins_dirs = 3\n", r"config\.toml: 'plugins_dirs': expected a list of directories"),
        ('http_plugin = "maybe"\n', r"config\.toml: 'http_plugin': expected true or false, got 'maybe'"),
        ("local_threads = 0\n", r"config\.toml: 'local_threads': expected a whole number of at least 1, got 0"),
        ("model = 4\n", r"config\.toml: 'model': expected a model name \(text\), got 4"),
    ],
)
def test_a_bad_file_names_the_file_and_the_key(config: Path, text: str, expected: str) -> None:
    config.write_text(text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_settings()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("KERNEL_APP_SERVICE", "gemini", r"^KERNEL_APP_SERVICE: unknown service 'gemini': use one of local"),
        ("KERNEL_APP_LOCAL_THREADS", "two", r"^KERNEL_APP_LOCAL_THREADS: expected a whole number of at least 1"),
        ("KERNEL_APP_HTTP_PLUGIN", "sometimes", r"^KERNEL_APP_HTTP_PLUGIN: expected true or false"),
    ],
)
def test_a_bad_variable_is_named(config: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_a_bad_flag_is_named(config: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--local-threads: expected a whole number"):
        load_settings(local_threads=-1)


def test_settings_built_in_code_are_checked_and_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERNEL_APP_SERVICE", "openai")
    settings = Settings(memory_dir="~/store", plugins_dirs=["~/p"])  # type: ignore[arg-type]
    assert settings.service == "local" and settings.memory_dir == Path("~/store").expanduser()
    assert settings.replace(service="azure").service == "azure" and settings.service == "local"
    with pytest.raises(ConfigError, match="setting 'service': unknown service 'gpt'"):
        settings.replace(service="gpt")


@pytest.mark.e2e
def test_reading_settings_does_not_import_pydantic() -> None:
    # `plugins list` has half a second; pydantic-settings alone cost ~0.2 s of it.
    code = "import sys, kernel_app.base.config as c; c.load_settings(); print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
