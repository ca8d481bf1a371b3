"""Two servers on one PostgreSQL share one memory (issue 19's "memory saved through A is found through B,
with its sources"), over the real REST API on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation import ConversationStore
from kernel_app.interfaces.server.app import create_app
from kernel_app.providers.scripted import ScriptedChatCompletion
from memories import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import running

pytestmark = pytest.mark.e2e  # two uvicorn servers on one PostgreSQL

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url


@contextmanager
def _serving(folder: Path, database_url: str, service: ScriptedChatCompletion) -> Iterator[str]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    app: Any = create_app(
        settings,
        chat_service=service,
        store=ConversationStore(folder / "conversations.sqlite3"),
        embedder=HashingEmbedder(64),
    )
    with running(app) as url:
        yield url


def test_memory_saved_through_one_server_is_searched_and_cited_through_another(
    tmp_path: Path, postgres_url: str
) -> None:
    answers_b = ScriptedChatCompletion()
    with (
        _serving(tmp_path / "a", postgres_url, ScriptedChatCompletion()) as a,
        _serving(tmp_path / "b", postgres_url, answers_b) as b,
    ):
        for text, kind in (("Fresh bread every morning", "strength"), ("Rent is rising", "threat")):
            saved = httpx.post(f"{a}/v1/memory/SWOT/records", json={"text": text, "metadata": {"kind": kind}})
            assert saved.status_code == 201, saved.text
        assert httpx.get(f"{b}/v1/memory").json()["data"] == [
            {"name": "SWOT", "count": 2, "embedder": "hashing-64", "dimensions": 64}
        ]
        hits = httpx.post(f"{b}/v1/memory/SWOT/search", json={"query": "bread", "where": {"kind": "threat"}})
        assert [h["text"] for h in hits.json()["data"]] == ["Rent is rising"]
        best = httpx.post(f"{b}/v1/memory/SWOT/search", json={"query": "Fresh bread every morning"}).json()["data"][0]
        answers_b.queue(f"Your bread is fresh every morning [{best['id']}].")
        answer = httpx.post(
            f"{b}/v1/memory/SWOT/ask", json={"question": "Fresh bread every morning?", "min_relevance": 0.0}
        ).json()
        assert answer["cited"] == [best["id"]] and answer["text"].endswith(f"Sources: [{best['id']}]")
        assert httpx.delete(f"{b}/v1/memory/SWOT/records/{best['id']}").status_code == 204
        assert httpx.delete(f"{a}/v1/memory/SWOT/records/{best['id']}").status_code == 404  # gone for A too
