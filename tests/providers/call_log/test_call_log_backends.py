"""The call log's contract, run on both backends: the SQLite file in the data folder and PostgreSQL.

``open_call_log`` picks the backend from the settings, as ``kernel-app logs`` and the recorder do; the
PostgreSQL one lives in a fresh database on the embedded server of tests/support/postgres.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.paths import call_log_path
from kernel_app.providers.call_log import CallQuery, CallRecord, open_call_log
from tests.support import postgres as pg_support

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url


@pytest.fixture(params=["local", pytest.param("postgresql", marks=pytest.mark.e2e)])  # a real server: e2e
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return Settings(memory_dir=tmp_path / "data", database_url=url)


@pytest.fixture
def log(settings: Settings) -> Iterator[Any]:
    opened = open_call_log(settings)
    yield opened
    opened.close()


def record(
    started_at: float, *, functions: list[str] = (), conversation: str | None = None, **fields: Any
) -> CallRecord:
    values: dict[str, Any] = {
        "service": "local",
        "model": "qwen2.5-coder-1.5b",
        "messages": [{"role": "user", "content": "a bakery"}],
        "settings": {"temperature": 0.2, "max_tokens": 900},
        "answer": "| Strengths |\n|---|\n| Fresh bread. |",
        "latency_ms": 1234.5,
    }
    values.update(fields)
    stack = [{"name": name, "arguments": {"input": f"arg of {name}"}} for name in functions]
    return CallRecord(started_at=started_at, functions=stack, conversation=conversation, **values)


def test_the_settings_pick_the_backend_and_the_local_log_lives_in_the_data_folder(log: Any, settings: Settings) -> None:
    if settings.database_url:
        assert log.backend == "postgresql"
    else:
        assert log.backend == "local"
        assert call_log_path(settings.memory_dir) == settings.memory_dir / "calls.sqlite3"
        assert call_log_path(settings.memory_dir).is_file()


def test_a_written_call_reads_back_whole(log: Any) -> None:
    written = record(
        1_700_000_000.25,
        functions=["BusinessThinking.SWOT", "BusinessThinking.SWOTDraft"],
        conversation="c-1",
        tool_calls=[{"name": "Math.add", "arguments": '{"a": 2}'}],
        prompt_tokens=812,
        completion_tokens=340,
        streamed=True,
        finish_reason="stop",
        messages=[{"role": "system", "content": "Be brief. 面包"}, {"role": "user", "content": "a bakery"}],
        settings={"temperature": 0.2, "response_format": {"type": "json_object"}, "functions_offered": ["Math.add"]},
    )
    call_id = log.write(written)
    assert isinstance(call_id, int) and written.id == call_id
    read = log.get(call_id)
    assert read is not None
    assert read.to_dict() == written.to_dict()
    assert (read.function, read.root_function) == ("BusinessThinking.SWOTDraft", "BusinessThinking.SWOT")
    assert log.get(call_id + 1000) is None


def test_filters_limit_and_order_newest_first(log: Any) -> None:
    now = time.time()
    ids = [
        log.write(record(now - 3600 * 48, functions=["Writer.Summarize"], model="qwen2.5-coder-0.5b")),
        log.write(record(now - 3600 * 2, functions=["BusinessThinking.SWOT", "BusinessThinking.SWOTDraft"])),
        log.write(record(now - 60, conversation="c-1")),
        log.write(record(now - 30, functions=["BusinessThinking.SWOTDraft"], conversation="c-1")),
    ]

    def found(**query: Any) -> list[int]:
        return [r.id for r in log.query(CallQuery(**{"limit": None, **query}))]

    assert found() == ids[::-1], "newest first"
    assert found(limit=2) == [ids[3], ids[2]]
    # A function matches the call made by it or inside it (its outermost function).
    assert found(function="BusinessThinking.SWOT") == [ids[1]]
    assert found(function="BusinessThinking.SWOTDraft") == [ids[3], ids[1]]
    assert found(conversation="c-1") == [ids[3], ids[2]]
    assert found(since=now - 3600 * 3) == [ids[3], ids[2], ids[1]]
    assert found(model="qwen2.5-coder-0.5b") == [ids[0]]
    assert found(ids=[ids[0], ids[2]]) == [ids[2], ids[0]]
    assert found(function="BusinessThinking.SWOTDraft", conversation="c-1") == [ids[3]]
    assert found(function="Nope.Nothing") == []


def test_clear_before_a_moment_then_everything(log: Any) -> None:
    now = time.time()
    old = log.write(record(now - 86400 * 40))
    recent = log.write(record(now - 60))
    assert log.clear(now - 86400 * 30) == 1
    assert log.get(old) is None and log.get(recent) is not None
    assert log.clear() == 1
    assert log.query(CallQuery()) == []


@pytest.mark.e2e  # a real PostgreSQL server
def test_the_postgres_log_has_its_own_versioned_migrations(postgres_url: str) -> None:
    import psycopg

    from kernel_app.providers.call_log.pg_log import MIGRATIONS, NAMESPACE
    from kernel_app.providers.postgres import schema_version

    for _ in range(2):  # a second start finds the tables at their version and changes nothing
        open_call_log(Settings(database_url=postgres_url)).close()
    with psycopg.connect(postgres_url) as conn:
        assert NAMESPACE == "call_log" and schema_version(conn, NAMESPACE) == len(MIGRATIONS)


def test_a_batch_is_written_in_one_go_and_each_call_gets_its_id(log: Any) -> None:
    batch = [record(time.time() - 2, answer="first"), record(time.time() - 1, answer="second")]
    log.write_many(batch)
    first, second = (r.id for r in batch)
    assert first is not None and second is not None and first < second
    assert [log.get(first).answer, log.get(second).answer] == ["first", "second"]


def test_the_outermost_functions_result_goes_on_every_call_of_its_invocation(log: Any) -> None:
    mine = [record(time.time() - 2, root_invocation="inv-1"), record(time.time() - 1, root_invocation="inv-1")]
    other = record(time.time(), root_invocation="inv-2")
    log.write_many([*mine, other])
    log.set_root_result("inv-1", "| Strengths |\n|---|\n| Fresh bread. |")
    assert [log.get(r.id).root_result for r in mine] == ["| Strengths |\n|---|\n| Fresh bread. |"] * 2
    assert log.get(other.id).root_result is None
