"""The ``database_url`` setting: where it comes from, what it refuses, and that it moves ``kernel-app memory``
to PostgreSQL (while leaving everything as it was without it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_app.base.config import Settings, load_settings
from kernel_app.base.errors import ConfigError
from kernel_app.interfaces.cli.main import main
from tests.support import postgres as pg_support

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KERNEL_APP_DATABASE_URL", raising=False)
    monkeypatch.delenv("KERNEL_APP_MEMORY_DIR", raising=False)
    path = tmp_path / "config.toml"
    monkeypatch.setenv("KERNEL_APP_CONFIG", str(path))
    return path


def test_unset_by_default_and_flag_over_variable_over_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().database_url is None
    config.write_text('database_url = "postgresql://file@db.example/kernel"\n')
    assert load_settings().database_url == "postgresql://file@db.example/kernel"
    monkeypatch.setenv("KERNEL_APP_DATABASE_URL", "postgres://env@db.example/kernel")
    assert load_settings().database_url == "postgres://env@db.example/kernel"
    flag = load_settings(database_url="postgresql://flag@/kernel?host=/run/postgresql")
    assert flag.database_url == "postgresql://flag@/kernel?host=/run/postgresql"
    monkeypatch.setenv("KERNEL_APP_DATABASE_URL", "")  # an empty variable means unset, as for a shell's VAR=
    config.write_text("")
    assert load_settings().database_url is None


@pytest.mark.parametrize(
    ("value", "shown"),
    [("mysql://root:hunter2@db/kernel", "got a mysql:// URL"), ("host=db user=kernel", "got no URL scheme")],
)
def test_a_value_that_is_not_a_postgresql_url_is_a_one_line_error(
    config: Path, monkeypatch: pytest.MonkeyPatch, value: str, shown: str
) -> None:
    monkeypatch.setenv("KERNEL_APP_DATABASE_URL", value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("KERNEL_APP_DATABASE_URL: expected a postgresql:// URL") and shown in message
    assert "hunter2" not in message and "\n" not in message
    monkeypatch.delenv("KERNEL_APP_DATABASE_URL")
    config.write_text("database_url = 5432\n")
    with pytest.raises(ConfigError, match=r"config.toml: 'database_url': expected a postgresql:// URL \(text\)"):
        load_settings()


def test_the_password_stays_out_of_repr() -> None:
    settings = Settings(database_url="postgresql://kernel:hunter2@db.example/kernel")
    assert "hunter2" not in repr(settings)


def test_a_bad_flag_is_reported_by_the_cli_in_one_line(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--database-url", "sqlite:///memory.db", "memory", "stats"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --database-url: expected a postgresql:// URL, e.g. postgresql://user@host:5432/dbname, "
        "got a sqlite:// URL"
    )


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    try:
        main(list(args))
    except SystemExit as exited:
        assert exited.code in (0, None), capsys.readouterr().err
    return capsys.readouterr().out


@pytest.mark.e2e  # a real PostgreSQL and kernel-app subprocesses
def test_memory_commands_use_postgres_when_the_url_is_set_and_local_files_otherwise(
    config: Path, tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    local = ["--memory-dir", str(tmp_path / "memory")]
    remote = [*local, "--database-url", postgres_url]
    saved = _cli(capsys, *remote, "memory", "save", "SWOT", "Late-night delivery brings money", "--id", "o1")
    assert saved.strip() == "o1"
    hits = json.loads(_cli(capsys, *remote, "memory", "search", "SWOT", "delivery at night", "--json"))
    assert [h["id"] for h in hits] == ["o1"]
    stats = json.loads(_cli(capsys, *remote, "memory", "stats"))
    assert stats["backend"] == "postgresql" and stats["pgvector"].startswith("0.8")
    assert [(c["name"], c["records"], c["index"]["kind"]) for c in stats["collections"]] == [("SWOT", 1, "hnsw")]
    # The same folder without the URL is the local store, untouched by the saves above.
    stats = json.loads(_cli(capsys, *local, "memory", "stats"))
    assert stats["backend"] == "local" and stats["collections"] == []
