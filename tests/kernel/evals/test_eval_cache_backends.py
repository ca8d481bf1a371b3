"""The eval output cache on both backends: the data folder's SQLite file, and PostgreSQL where
``database_url`` is set (a fresh database on the embedded server of tests/support/postgres.py).

The same keys either way; with PostgreSQL two processes (a server's workers, a CLI run beside them)
share the outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.usage import Usage
from kernel_app.kernel.evals import load_eval_file
from kernel_app.kernel.evals.assertions import Output
from kernel_app.kernel.evals.cache import CACHE_FILE, OutputCache, OutputStore, open_output_cache
from kernel_app.kernel.evals.pg_cache import NAMESPACE, PgOutputCache
from kernel_app.kernel.evals.runner import run_evals
from tests.support import postgres as pg_support
from tests.support.evals import scripted_target, write_eval

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

SUMMARY_EVAL = """function: Writer.Summarize
cases:
  - input: A long text about bread.
    assert:
      - {type: icontains, value: bread}
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])  # a real server: e2e
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose eval cache is the parametrized backend (the same one for every cache opened)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return Settings(memory_dir=tmp_path / "data", database_url=url)


@pytest.fixture
def open_cache(settings: Settings) -> Iterator[Callable[[], OutputStore]]:
    opened: list[OutputStore] = []

    def open_one() -> OutputStore:
        opened.append(open_output_cache(settings))
        return opened[-1]

    yield open_one
    for cache in opened:
        cache.close()


def test_the_settings_choose_the_backend(settings: Settings, open_cache: Callable[[], OutputStore]) -> None:
    cache = open_cache()
    if settings.database_url:
        assert isinstance(cache, PgOutputCache) and cache.where.startswith("PostgreSQL at ")
        assert not (settings.memory_dir / CACHE_FILE).exists()  # nothing local with a database
    else:
        assert isinstance(cache, OutputCache) and cache.path == settings.memory_dir / CACHE_FILE


def test_an_output_comes_back_whole_and_a_key_is_replaced(open_cache: Callable[[], OutputStore]) -> None:
    cache = open_cache()
    assert cache.get("k") is None
    usage = Usage(prompt_tokens=120, completion_tokens=30, calls=2)
    cache.put("k", "Writer.Summarize", "m", Output("Bread is good. ünïcode ✓", 2.25, usage))
    assert cache.get("k") == Output("Bread is good. ünïcode ✓", 2.25, usage)
    cache.put("k", "Writer.Summarize", "m", Output("Second answer.", 1.0))
    assert cache.get("k") == Output("Second answer.", 1.0)
    assert cache.get("other") is None


def test_a_second_cache_on_the_same_settings_sees_the_outputs(open_cache: Callable[[], OutputStore]) -> None:
    # Another process (a server's worker, a CLI run) opening the same settings' cache: it reads them.
    open_cache().put("shared", "Writer.Summarize", "m", Output("Shared bread.", 0.5))
    assert open_cache().get("shared") == Output("Shared bread.", 0.5)


async def test_a_rerun_takes_the_output_from_the_backend(tmp_path: Path, open_cache: Callable[[], OutputStore]) -> None:
    eval_file = load_eval_file(write_eval(tmp_path, SUMMARY_EVAL))
    model, service = scripted_target("m", "Bread is good.")
    (first,) = await run_evals([eval_file], [model], cache=open_cache())
    assert len(service.requests) == 1 and not first.cached
    again, again_service = scripted_target("m")  # no answer queued: a model call would fail the run
    (second,) = await run_evals([eval_file], [again], cache=open_cache())
    assert again_service.requests == [] and second.cached and second.passed
    assert second.output.text == "Bread is good." and second.output.usage.completion_tokens == 3


@pytest.mark.e2e  # a real server
def test_the_postgresql_cache_is_a_versioned_name_space(postgres_url: str) -> None:
    import psycopg

    from kernel_app.providers.postgres import schema_version

    PgOutputCache(postgres_url).close()
    PgOutputCache(postgres_url).close()  # a second start finds the tables and changes nothing
    with psycopg.connect(postgres_url) as conn:
        assert schema_version(conn, NAMESPACE) == 1
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'eval_outputs' ORDER BY 1"
        ).fetchall()
    assert [c[0] for c in columns] == ["created_at", "function", "key", "latency_s", "model", "text", "usage"]


@pytest.mark.e2e  # a real server, dropped under the cache
def test_a_database_gone_mid_run_is_a_one_line_error(postgres_server, postgres_url: str) -> None:
    from kernel_app.base.errors import UsageError

    cache = PgOutputCache(postgres_url)
    try:
        postgres_server.drop_database(postgres_url.split("?", 1)[0].rsplit("/", 1)[-1])
        with pytest.raises(UsageError) as raised:
            cache.get("k")
        message = str(raised.value)
        assert message.startswith("the eval cache on PostgreSQL at ") and message.endswith("pass --no-cache")
        assert "\n" not in message
    finally:
        cache.close()
