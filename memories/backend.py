"""``open_store``: the memory store the settings ask for, local files or PostgreSQL.

Every place that opens the memory store (the kernel builder, ``kernel-app memory``, the server's
memory API) calls this, so the ``database_url`` setting switches all of them at once; without it
they get the local SQLite + FAISS store exactly as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memories.embedders import Embedder
    from memories.pg_store import PgMemoryStore
    from memories.store import MemoryStore


def open_store(
    path: Path | str | None = None,
    *,
    database_url: str | None = None,
    embedder: Embedder | None = None,
    **options: Any,
) -> MemoryStore | PgMemoryStore:
    """``PgMemoryStore(database_url)`` when a URL is given, else ``MemoryStore(path)``.

    ``path`` defaults to ``default_store_dir()``; with a database it is the local folder for what
    stays per instance (uploads). ``options`` go to the chosen store's constructor.
    """
    from memories.db import default_store_dir

    folder = Path(path).expanduser() if path is not None else default_store_dir()
    if database_url:
        from memories.pg_store import PgMemoryStore

        return PgMemoryStore(database_url, embedder, path=folder, **options)
    from memories.store import MemoryStore

    return MemoryStore(folder, embedder, **options)
