"""Secrets never reach the call log: API keys, Authorization headers and the database password, wherever
they show up in a call (the prompt, the settings, the arguments, the answer). Checked on what the log
actually holds: the SQLite files' bytes, and PostgreSQL's rows as text."""

from __future__ import annotations

from pathlib import Path

import pytest
from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
from semantic_kernel.contents import ChatHistory

from kernel_app import ScriptedChatCompletion
from kernel_app.base.config import Settings
from kernel_app.providers.call_log import CallQuery, Redactor, create_recorder, in_function, open_call_log, record_calls
from kernel_app.providers.call_log.context import frame
from kernel_app.providers.call_log.redact import REDACTED
from tests.support import postgres as pg_support

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

OPENAI_KEY = "sk-proj-Zq8T2vLmN4xR7kP1wY5sB3cD"
AZURE_KEY = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
BEARER = "eyJhbGciOiJSUzI1NiJ9.tokenbody.signature"
DB_PASSWORD = "S3cret-db-pw"
OTHER_BEARER = "unknownTokenValue123456"


def with_password(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}password={DB_PASSWORD}"  # trust auth: the server ignores it


@pytest.fixture(params=["local", pytest.param("postgresql", marks=pytest.mark.e2e)])  # a real server: e2e
def settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    if request.param == "postgresql":
        return Settings(
            memory_dir=tmp_path / "data", database_url=with_password(request.getfixturevalue("postgres_url"))
        )
    monkeypatch.setenv("PGPASSWORD", DB_PASSWORD)
    return Settings(memory_dir=tmp_path / "data")


def stored_text(settings: Settings) -> str:
    """Everything the log holds, as text."""
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as conn:
            return "\n".join(row[0] for row in conn.execute("SELECT t::text FROM model_calls t"))
    folder = settings.memory_dir
    assert folder is not None
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.iterdir() if p.is_file())


async def test_keys_headers_and_the_database_password_are_never_stored(settings: Settings) -> None:
    leaky_answer = f"Your key is {OPENAI_KEY} and the database is postgresql://app:{DB_PASSWORD}@db/app."
    recorder = create_recorder(settings)
    service = record_calls(ScriptedChatCompletion(default=leaky_answer), recorder)
    history = ChatHistory()
    history.add_system_message(f"Authorization: Bearer {OTHER_BEARER}")
    history.add_user_message(f"Use the key {AZURE_KEY} with password {DB_PASSWORD}")
    request = PromptExecutionSettings(
        extension_data={
            "api_key": OPENAI_KEY,
            "headers": {"Authorization": f"Bearer {BEARER}", "X-Trace": "kept"},
            "temperature": 0.3,
        }
    )

    with in_function(frame("Web.Fetch", {"url": "https://example.test", "api_key": "another-key-42"})):
        answer = await service.get_chat_message_contents(history, request)
    assert str(answer[0]) == leaky_answer, "the caller still gets the answer as the model gave it"
    recorder.close()  # writes what is queued

    text = stored_text(settings)
    assert "Use the key" in text and "kept" in text and "Web.Fetch" in text, "the call itself is logged"
    for secret in (OPENAI_KEY, AZURE_KEY, BEARER, DB_PASSWORD, OTHER_BEARER, "another-key-42"):
        assert secret not in text, f"{secret[:6]}… was stored"

    log = open_call_log(settings)
    try:
        [record] = log.query(CallQuery())
    finally:
        log.close()
    assert record.settings["api_key"] == REDACTED and record.settings["headers"]["Authorization"] == REDACTED
    assert record.settings["temperature"] == 0.3
    assert record.arguments_of("Web.Fetch") == {"url": "https://example.test", "api_key": REDACTED}
    assert REDACTED in record.answer and "postgresql://app:" in record.answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdef123456", "Authorization: Bearer [redacted]"),
        ("key sk-abcdefghijklmnopqrstu1234 here", "key [redacted] here"),
        ("postgresql://user:pa55word@host:5432/db", "postgresql://user:[redacted]@host:5432/db"),
        ("max_tokens is 900, temperature 0.2", "max_tokens is 900, temperature 0.2"),
    ],
)
def test_text_shaped_like_a_secret_is_masked_even_when_its_value_is_unknown(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


def test_settings_keys_that_name_a_secret_lose_their_value_and_others_keep_theirs() -> None:
    redacted = Redactor().value(
        {
            "api_key": "abc",
            "Authorization": "x",
            "password": "p",
            "max_tokens": 9,
            "token": "t",
            "nested": [{"secret": 1}],
        }
    )
    assert redacted == {
        "api_key": REDACTED,
        "Authorization": REDACTED,
        "password": REDACTED,
        "max_tokens": 9,
        "token": REDACTED,
        "nested": [{"secret": REDACTED}],
    }


def test_the_secrets_of_this_process_come_from_its_environment_and_the_database_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-123456789")
    redactor = Redactor.from_environment("postgresql://u:p%40ss-word@h/db")
    assert redactor.text("tok-123456789 p@ss-word p%40ss-word") == f"{REDACTED} {REDACTED} {REDACTED}"


def test_short_values_are_not_treated_as_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_KEY", "yes")  # would mask every "yes" in every prompt
    assert Redactor.from_environment().text("yes, please") == "yes, please"
