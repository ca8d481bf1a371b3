"""A chat-copilot document uploaded again through another server replaces its chunks (issue 19): they are
named ``uploads/COLLECTION/NAME``, not by the receiving server's path, on PostgreSQL (two servers, each its
own folder, one database) and on the local store (two servers on one folder)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server.app import create_app
from kernel_app.providers.scripted import ScriptedChatCompletion
from memories import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import running

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

pytestmark = pytest.mark.e2e  # two uvicorn servers

FIRST = b"# Opening hours\n\nThe Lyon bakery opens at seven every morning.\n\n## Sunday\n\nIt closes at noon.\n"
SECOND = b"# Opening hours\n\nFrom March the Lyon bakery opens at six.\n"


@contextmanager
def _serving(folder: Path, database_url: str | None) -> Iterator[str]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    app: Any = create_app(settings, chat_service=ScriptedChatCompletion(), embedder=HashingEmbedder(64))
    with running(app) as url:
        yield url
    app.state.kernel_app.store.close()


@pytest.fixture(params=["postgresql", "local"])
def two(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        folders = (tmp_path / "a", tmp_path / "b")
    else:
        url, folders = None, (tmp_path, tmp_path)
    with _serving(folders[0], url) as a, _serving(folders[1], url) as b:
        yield a, b


def _upload(url: str, chat_id: str, data: bytes) -> httpx.Response:
    files = [("formFiles", ("hours.md", data, "text/markdown"))]
    return httpx.post(f"{url}/copilot/chats/{chat_id}/documents", files=files, timeout=60)


def _chunks(url: str, chat_id: str) -> list[dict[str, Any]]:
    records = httpx.get(f"{url}/v1/memory/copilot-{chat_id}/records", params={"limit": 500})
    assert records.status_code == 200, records.text
    return records.json()["data"]


def test_a_document_uploaded_again_through_b_replaces_a_s_chunks(two: tuple[str, str]) -> None:
    a, b = two
    chat_id = httpx.post(f"{a}/copilot/chats", json={"title": "docs"}).json()["chatSession"]["id"]
    assert _upload(a, chat_id, FIRST).status_code == 200
    first = _chunks(b, chat_id)
    assert first and {c["metadata"]["source"] for c in first} == {f"uploads/copilot-{chat_id}/hours.md"}
    assert all(c["id"].startswith(f"uploads/copilot-{chat_id}/hours.md#") for c in first)

    assert _upload(b, chat_id, SECOND).status_code == 200
    now = _chunks(a, chat_id)
    assert [c["text"] for c in now] == ["# Opening hours\n\nFrom March the Lyon bakery opens at six."]  # one set
    [document] = httpx.get(f"{a}/copilot/chats/{chat_id}/documents").json()  # listed once, with its chunks
    assert (document["name"], document["size"], document["tokens"]) == ("hours.md", len(SECOND), 1)
