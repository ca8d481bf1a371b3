"""Memory: a persistent, crash-safe FAISS similarity store with collections and metadata.

``MemoryStore`` keeps records in SQLite (the source of truth) and a derived FAISS index per
collection; ``PgMemoryStore`` keeps them in PostgreSQL + pgvector; ``open_store`` picks one from the
``database_url`` setting. See docs/memory.md. Importing the package is light: numpy and faiss
load with the first ``MemoryStore`` (or ingestion helper) used, psycopg with the first ``PgMemoryStore``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memories.embedders import Embedder, HashingEmbedder, MiniLMAdapter, default_embedder
from memories.errors import (
    CollectionNotFoundError,
    DocumentReadError,
    EmbedderMismatchError,
    MemoryStoreError,
    MemoryUsageError,
    StoreBusyError,
    StoreCorruptError,
)
from memories.records import CollectionInfo, MemoryRecord, Metadata, SearchHit

if TYPE_CHECKING:
    from memories.backend import open_store
    from memories.index import IndexSettings
    from memories.ingest import Chunk, IngestReport, chunk_markdown, ingest, iter_files, read_document
    from memories.pg_store import PgMemoryStore
    from memories.repair import RepairReport, repair_store
    from memories.store import MemoryStore, default_store_dir

SearchResult = SearchHit  # the name reserved in the foundation

_LAZY = {
    "MemoryStore": "memories.store",
    "PgMemoryStore": "memories.pg_store",
    "open_store": "memories.backend",
    "default_store_dir": "memories.store",
    "IndexSettings": "memories.index",
    "RepairReport": "memories.repair",
    "repair_store": "memories.repair",
    "Chunk": "memories.ingest",
    "IngestReport": "memories.ingest",
    "chunk_markdown": "memories.ingest",
    "ingest": "memories.ingest",
    "iter_files": "memories.ingest",
    "read_document": "memories.ingest",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memories' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Chunk",
    "CollectionInfo",
    "CollectionNotFoundError",
    "DocumentReadError",
    "Embedder",
    "EmbedderMismatchError",
    "HashingEmbedder",
    "IndexSettings",
    "IngestReport",
    "MemoryRecord",
    "MemoryStore",
    "MemoryStoreError",
    "MemoryUsageError",
    "Metadata",
    "MiniLMAdapter",
    "PgMemoryStore",
    "RepairReport",
    "SearchHit",
    "SearchResult",
    "StoreBusyError",
    "StoreCorruptError",
    "chunk_markdown",
    "default_embedder",
    "default_store_dir",
    "ingest",
    "iter_files",
    "open_store",
    "read_document",
    "repair_store",
]
