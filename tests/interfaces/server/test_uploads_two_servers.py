"""REST document uploads (``/v1/memory/{collection}/documents``) on two servers sharing one PostgreSQL
(issue 19): the bytes uploaded through A are downloaded and ingested again through B without A's copy,
and re-uploading the name through B replaces A's chunks instead of adding a second set; dropping the
collection through A deletes the bytes, for every server. Without ``database_url`` the download comes from
the server's own ``uploads/`` copy; chunks are named ``uploads/COLLECTION/NAME`` on both backends."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation import ConversationStore
from kernel_app.interfaces.server.app import create_app
from kernel_app.providers.scripted import ScriptedChatCompletion
from memories import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import running

pytestmark = pytest.mark.e2e  # uvicorn servers, two of them on one PostgreSQL

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

FIRST = b"# Opening hours\n\nThe Lyon bakery opens at seven every morning.\n\n## Sunday\n\nIt closes at noon.\n"
SECOND = b"# Opening hours\n\nFrom March the Lyon bakery opens at six.\n"


@contextmanager
def _serving(folder: Path, database_url: str | None) -> Iterator[str]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    app: Any = create_app(
        settings,
        chat_service=ScriptedChatCompletion(),
        store=ConversationStore(folder / "conversations.sqlite3"),
        embedder=HashingEmbedder(64),
    )
    with running(app) as url:
        yield url


def _upload(url: str, data: bytes, *, stream: bool = False) -> httpx.Response:
    files = [("files", ("hours.md", data, "text/markdown"))]
    return httpx.post(
        f"{url}/v1/memory/Shop/documents", params={"stream": str(stream).lower()}, files=files, timeout=60
    )


def _chunks(url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{url}/v1/memory/Shop/records", params={"limit": 500}).json()["data"]


def test_an_upload_through_a_is_downloaded_reingested_and_replaced_through_b(tmp_path: Path, postgres_url: str) -> None:
    with _serving(tmp_path / "a", postgres_url) as a, _serving(tmp_path / "b", postgres_url) as b:
        first = _upload(a, FIRST)
        assert first.status_code == 201, first.text
        assert first.json()["added"] == 1
        chunks = _chunks(b)
        assert chunks and {c["metadata"]["source"] for c in chunks} == {"uploads/Shop/hours.md"}  # no server's path
        shutil.rmtree(tmp_path / "a" / "uploads")  # A's working copy is not needed by anyone

        downloaded = httpx.get(f"{b}/v1/memory/Shop/documents/hours.md")
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.content == FIRST and downloaded.headers["content-type"].startswith("text/markdown")
        again = _upload(b, downloaded.content)  # ingested again through B: the same document, unchanged
        assert again.status_code == 201, again.text
        assert (again.json()["added"], again.json()["skipped_unchanged"]) == (0, 1)
        assert _chunks(a) == chunks

        replaced = _upload(b, SECOND, stream=True)
        assert replaced.status_code == 200 and '"added": 1' in replaced.text, replaced.text  # streamed: events
        now = _chunks(a)
        assert any("opens at six" in c["text"] for c in now)
        assert not any("seven" in c["text"] or "noon" in c["text"] for c in now)  # A's chunks were replaced
        assert {c["metadata"]["source"] for c in now} == {"uploads/Shop/hours.md"}
        assert httpx.get(f"{a}/v1/memory/Shop/documents/hours.md").content == SECOND

        missing = httpx.get(f"{a}/v1/memory/Shop/documents/menu.md")
        assert missing.status_code == 404 and "menu.md" in missing.text

        assert httpx.delete(f"{a}/v1/memory/Shop").status_code == 204
        assert (tmp_path / "b" / "uploads" / "Shop" / "hours.md").exists()  # B's working copy, out of A's reach
        for url in (a, b):  # gone from the database, and B's leftover copy is not served either
            assert httpx.get(f"{url}/v1/memory/Shop/documents/hours.md").status_code == 404
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT count(*) FROM memory_uploads").fetchone() == (0,)


def test_without_a_database_the_download_is_the_server_s_own_copy(tmp_path: Path) -> None:
    with _serving(tmp_path, None) as url:
        assert _upload(url, FIRST).status_code == 201
        kept = tmp_path / "uploads" / "Shop" / "hours.md"
        assert {c["metadata"]["source"] for c in _chunks(url)} == {"uploads/Shop/hours.md"}  # not the path
        assert httpx.get(f"{url}/v1/memory/Shop/documents/hours.md").content == FIRST
        kept.unlink()
        assert httpx.get(f"{url}/v1/memory/Shop/documents/hours.md").status_code == 404
        _upload(url, FIRST)
        assert httpx.delete(f"{url}/v1/memory/Shop").status_code == 204
        assert not kept.parent.exists()  # dropping the collection deletes its uploads
