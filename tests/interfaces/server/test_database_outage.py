"""The database going away and coming back (issue 19): a server on a real PostgreSQL that the test stops
(``pg_ctl stop -m immediate``, as a crash would) and starts again on the same data.

While it is away, whatever needs it answers 503 with ``Retry-After`` and one line of JSON, the log says
so once (not a traceback per request), /readyz reports it, and what does not need it (the
OpenAI-compatible endpoint) keeps answering; once it is back, service resumes with no restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation.pg_store import PgConversationStore
from kernel_app.interfaces.server.app import create_app
from kernel_app.providers.scripted import ScriptedChatCompletion
from memories import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import running

stoppable_postgres = pg_support.stoppable_postgres  # the fixture, by name (tests/support/postgres.py)

pytestmark = pytest.mark.e2e  # a PostgreSQL server of its own, stopped and started, under a uvicorn server


@contextmanager
def _serving(folder: Path, database_url: str, service: ScriptedChatCompletion) -> Iterator[str]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    app: Any = create_app(settings, chat_service=service, embedder=HashingEmbedder(64))
    try:
        with running(app) as url:
            yield url
    finally:
        app.state.kernel_app.store.close()
        if app.state.kernel_app.memory_store is not None:
            app.state.kernel_app.memory_store.close()


OUTAGE_S = 8.0  # how long the database stays away (at least)


def _assert_database_down(reply: httpx.Response) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.headers["Retry-After"] == "5"
    error = reply.json()["error"]
    assert error["code"] == "database_unavailable"
    assert error["message"].startswith("the database is unavailable, try again in 5 s: ")
    assert "\n" not in error["message"]


def test_the_database_going_away_is_a_503_and_service_resumes_when_it_returns(
    tmp_path: Path, stoppable_postgres: pg_support.StoppablePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    url = stoppable_postgres.url(stoppable_postgres.create_database())
    service = ScriptedChatCompletion(["Noted.", "Plain answer.", "Back again."])
    with _serving(tmp_path, url, service) as base:
        cid = httpx.post(f"{base}/v1/conversations", json={"title": "Outage"}).json()["id"]
        said = httpx.post(f"{base}/v1/conversations/{cid}/messages", json={"content": "Hello", "stream": False})
        assert said.status_code == 200, said.text
        assert httpx.post(f"{base}/v1/memory/notes/records", json={"text": "ovens at night"}).status_code == 201
        assert httpx.get(f"{base}/readyz").json()["database"] == {
            "backend": "postgresql",
            "shared": True,
            "reachable": True,
        }

        stoppable_postgres.stop()
        down = time.monotonic()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            for _ in range(2):  # REST conversations: read, and a new turn
                _assert_database_down(httpx.get(f"{base}/v1/conversations/{cid}", timeout=30))
                _assert_database_down(
                    httpx.post(
                        f"{base}/v1/conversations/{cid}/messages",
                        json={"content": "Still there?", "stream": False},
                        timeout=30,
                    )
                )
            _assert_database_down(httpx.get(f"{base}/v1/memory", timeout=30))  # memory
            _assert_database_down(httpx.post(f"{base}/v1/memory/notes/search", json={"query": "ovens"}, timeout=30))
            ready = httpx.get(f"{base}/readyz", timeout=30)
            assert ready.status_code == 503
            assert ready.json()["reason"].startswith("the database is unavailable: ")
            assert ready.json()["database"]["reachable"] is False
            # The OpenAI-compatible endpoint stores nothing: it keeps answering without the database.
            plain = httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "kernel-app", "messages": [{"role": "user", "content": "Hi"}]},
                timeout=30,
            )
            assert plain.status_code == 200, plain.text
            assert plain.json()["choices"][0]["message"]["content"] == "Plain answer."
        outage_lines = [r for r in caplog.records if "the database is unavailable" in r.getMessage()]
        assert len(outage_lines) == 1, [r.getMessage() for r in outage_lines]  # once, not once per request
        assert not any(r.exc_info for r in caplog.records), "a traceback was logged"

        # Long enough for psycopg_pool's own backoff to grow past the checkout timeout: its attempts 1, 2
        # and 4 s apart, the next one would come 8 s later, several seconds after the database is back.
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down)))
        stoppable_postgres.start()
        # Service resumes within about a second of the database's return: every pool retries a lost
        # connection for a second at most, then the next request that needs one starts a new attempt
        # (kernel_app.providers.postgres.pool.RECONNECT_S). So the first request of each kind after the
        # return is answered: it waits up to the pool's checkout timeout (3 s) for a connection, where
        # psycopg_pool's own backoff (grown to 8-16 s during this outage) made them 503s for seconds.
        back = time.monotonic()
        reply = httpx.get(f"{base}/v1/conversations/{cid}", timeout=30)
        assert reply.status_code == 200, f"{reply.text} after {time.monotonic() - back:.1f} s"
        again = httpx.post(
            f"{base}/v1/conversations/{cid}/messages", json={"content": "Back?", "stream": False}, timeout=30
        )
        assert again.status_code == 200, f"{again.text} after {time.monotonic() - back:.1f} s"
        assert again.json()["text"] == "Back again."
        hits = httpx.post(f"{base}/v1/memory/notes/search", json={"query": "ovens at night"}, timeout=30)
        assert hits.status_code == 200, f"{hits.text} after {time.monotonic() - back:.1f} s"
        assert hits.json()["data"][0]["text"] == "ovens at night"
        assert httpx.get(f"{base}/readyz").status_code == 200
        texts = [m["content"] for m in httpx.get(f"{base}/v1/conversations/{cid}").json()["messages"]]
        assert texts == ["Hello", "Noted.", "Back?", "Back again."]  # nothing acknowledged was lost


def test_a_connection_broken_mid_request_is_discarded_not_handed_out_again(
    tmp_path: Path, stoppable_postgres: pg_support.StoppablePostgres
) -> None:
    import psycopg

    url = stoppable_postgres.url(stoppable_postgres.create_database())
    store = PgConversationStore(url, path=tmp_path / "conversations.sqlite3", max_connections=1)
    try:
        conversation = store.create(title="One connection")
        # The pool's only connection breaks in the middle of a transaction (its server process ends).
        with pytest.raises(psycopg.OperationalError), store._pool.connection() as conn:
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        assert store.get(conversation.id).title == "One connection"  # a new connection, not the broken one
        # And one killed while idle in the pool (a database restart does that to all of them) is found
        # out when it is taken, not by the request that gets it.
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        time.sleep(0.2)
        assert store.get(conversation.id).title == "One connection"
    finally:
        store.close()
