"""Typed errors of the memory store; every one is a :class:`~kernel_app.base.errors.KernelAppError`.

Names end in ``Error`` and never shadow builtins (``MemoryError`` is Python's out-of-memory error).
"""

from __future__ import annotations

from pathlib import Path

from kernel_app.base.errors import KernelAppError, UsageError


class MemoryStoreError(KernelAppError):
    """Base class of every error raised by ``memories``."""


class MemoryUsageError(MemoryStoreError, UsageError):
    """A bad argument: an invalid collection name, id, metadata value or ``where`` filter."""


class CollectionNotFoundError(MemoryStoreError, UsageError):
    """The named collection does not exist in this store."""

    def __init__(self, collection: str, existing: list[str]) -> None:
        self.collection = collection
        known = ", ".join(existing) if existing else "none yet"
        super().__init__(f"no memory collection named '{collection}' (collections: {known})")


class EmbedderMismatchError(MemoryStoreError):
    """The collection was embedded by another embedder (name or dimensions) than the one in use."""

    def __init__(self, collection: str, stored: tuple[str, int], current: tuple[str, int]) -> None:
        self.collection = collection
        self.stored = stored
        self.current = current
        super().__init__(
            f"collection '{collection}' was embedded with {stored[0]} ({stored[1]} dimensions) but the "
            f"embedder in use is {current[0]} ({current[1]} dimensions): run "
            f"`kernel-app memory reembed {collection}` to re-embed it with {current[0]}"
        )


class StoreCorruptError(MemoryStoreError):
    """The database file is damaged or is not a Kernel App memory store."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"{path}: {problem}: run `kernel-app memory repair` to salvage the records "
            f"(the damaged file is kept beside it as *.corrupt-<timestamp>)"
        )


class StoreBusyError(MemoryStoreError):
    """Another process held the store's write lock for longer than the busy timeout."""


class DocumentReadError(MemoryStoreError):
    """A document could not be read for ingestion (missing, unsupported type, undecodable, no text)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")
