"""What both memory stores share: :class:`memories.store.MemoryStore` (SQLite + FAISS) and
:class:`memories.pg_store.PgMemoryStore` (PostgreSQL + pgvector) make the same promises, so they check
what they are given, embed it and check a query the same way, here, once.

A store inherits :class:`StoreBase`, which writes ``save``, ``get`` and the context manager over the
store's own ``save_many``, ``get_many`` and ``close``, and gives it :meth:`StoreBase._pending` (an item to
save, checked), :meth:`StoreBase._embed` and :meth:`StoreBase._query_vector`. The checks of names, ids
and metadata are functions, for the code that has no store at hand.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

import numpy as np
from typing_extensions import Self

from memories.embedders import Embedder, normalize_rows
from memories.errors import EmbedderMismatchError, MemoryUsageError
from memories.records import MemoryRecord, Metadata
from memories.where import check_key, check_value

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
MAX_ID_LENGTH = 512
MMR_POOL_FACTOR = 4  # an MMR search re-ranks the best max(MMR_POOL_FACTOR x limit, 20)

Key = TypeVar("Key", bound=Hashable)


class Described(Protocol):
    """A collection as a store's own row describes it: enough to check an embedder and a query against."""

    @property
    def name(self) -> str: ...
    @property
    def embedder(self) -> str: ...
    @property
    def dimensions(self) -> int: ...


@dataclasses.dataclass
class Pending:
    """An item to save, checked: its vector is filled by :meth:`StoreBase._embed` before the write."""

    id: str
    text: str
    description: str
    metadata: Metadata
    vector: np.ndarray | None
    created_at: datetime | None = None  # given (save_many's keep_times), else the first save's time
    updated_at: datetime | None = None  # given (keep_times), else the save's time


class StoreBase:
    """The methods both stores write the same way (see the module)."""

    embedder: Embedder
    # Each store's own methods (MemoryStore's document them), which the ones below are written over.
    save_many: Callable[..., builtins.list[str]]
    get_many: Callable[..., builtins.list[MemoryRecord]]
    close: Callable[[], None]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(
        self,
        collection: str,
        text: str,
        id: str | None = None,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
        *,
        embedding: Any = None,
    ) -> str:
        """Store one text (replacing the record with the same ``id``); returns the id."""
        item = {"text": text, "id": id, "description": description, "metadata": metadata, "embedding": embedding}
        return self.save_many(collection, [item])[0]

    def get(self, collection: str, id: str, *, with_embedding: bool = False) -> MemoryRecord | None:
        """The record with this id, or None."""
        found = self.get_many(collection, [id], with_embedding=with_embedding)
        return found[0] if found else None

    def _pending(self, item: Mapping[str, Any] | MemoryRecord | str, keep_times: bool = False) -> Pending:
        """``item`` checked (a one-line MemoryUsageError naming what is wrong), with an id."""
        if isinstance(item, str):
            item = {"text": item}
        elif isinstance(item, MemoryRecord):
            item = dataclasses.asdict(item) | {"embedding": item.embedding}
        elif not isinstance(item, Mapping):
            raise MemoryUsageError(f"cannot save a {type(item).__name__}: give a text, a mapping or a MemoryRecord")
        text = item.get("text")
        if not isinstance(text, str):
            raise MemoryUsageError("every record needs a text (str)")
        record_id = item.get("id")
        record_id = uuid.uuid4().hex if record_id is None else check_id(record_id)
        description = item.get("description") or ""
        if not isinstance(description, str):
            raise MemoryUsageError(f"record '{record_id}': description must be a string")
        metadata = check_metadata(item.get("metadata"))
        vector = item.get("embedding")
        if vector is not None:  # normalised with the others in _embed
            vector = np.asarray(vector, dtype=np.float32).reshape(-1)
            if vector.size != self.embedder.dimensions:
                raise MemoryUsageError(
                    f"record '{record_id}': embedding has {vector.size} values, the embedder "
                    f"{self.embedder.name} has {self.embedder.dimensions} dimensions"
                )
        created, updated = given_times(item, record_id) if keep_times else (None, None)
        return Pending(record_id, text, description, metadata, vector, created, updated)

    def _embed(self, pending: builtins.list[Pending]) -> None:
        """Fill every item's vector: given ones normalised, the others embedded in one batch."""
        given = [(p, p.vector) for p in pending if p.vector is not None]
        if given:  # one vectorised normalisation for all precomputed vectors
            normalized = normalize_rows(np.stack([vector for _, vector in given]))
            for (item, _), vector in zip(given, normalized, strict=True):
                item.vector = vector
        todo = [p for p in pending if p.vector is None]
        if not todo:
            return
        vectors = normalize_rows(self.embedder.embed([p.text for p in todo]))
        if vectors.shape != (len(todo), self.embedder.dimensions):
            raise MemoryUsageError(
                f"embedder {self.embedder.name} returned an array of shape {vectors.shape}, "
                f"expected ({len(todo)}, {self.embedder.dimensions})"
            )
        for item, vector in zip(todo, vectors, strict=True):
            item.vector = vector

    def _query_vector(self, collection: Described, query: Any) -> np.ndarray:
        """A search's query as one normalised vector: a text embedded (by the collection's embedder only),
        or a vector of the collection's dimensions."""
        if isinstance(query, str):
            check_embedder(collection, self.embedder)
            vector = normalize_rows(self.embedder.embed([query]))
        else:
            vector = normalize_rows(query)
        if vector.shape != (1, collection.dimensions):
            raise MemoryUsageError(
                f"query vector has {vector.size} values; collection '{collection.name}' has "
                f"{collection.dimensions} dimensions"
            )
        return vector[0]


def check_embedder(collection: Described, embedder: Embedder) -> None:
    """EmbedderMismatchError unless ``embedder`` is the one the collection's vectors come from."""
    if (collection.embedder, collection.dimensions) != (embedder.name, int(embedder.dimensions)):
        raise EmbedderMismatchError(
            collection.name, (collection.embedder, collection.dimensions), (embedder.name, int(embedder.dimensions))
        )


def check_mmr(mmr: float | None) -> None:
    if mmr is not None and not 0.0 <= mmr <= 1.0:
        raise MemoryUsageError(f"mmr must be between 0 and 1 (a diversity weight), not {mmr}")


def embed_texts(
    embedder: Embedder, rows: Sequence[Sequence[Any]], batch_size: int, key: Callable[[Sequence[Any]], Key]
) -> dict[Key, np.ndarray]:
    """Re-embedding: the vectors of ``rows`` (each ending with its text), by ``key(row)``, a batch at a time."""
    vectors: dict[Key, np.ndarray] = {}
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        embedded = normalize_rows(embedder.embed([row[-1] for row in batch]))
        if embedded.shape != (len(batch), embedder.dimensions):
            raise MemoryUsageError(f"embedder {embedder.name} returned shape {embedded.shape}")
        vectors.update(zip((key(row) for row in batch), embedded, strict=True))
    return vectors


def given_times(item: Mapping[str, Any], record_id: str) -> tuple[datetime | None, datetime | None]:
    """An item's own ``created_at`` and ``updated_at`` (save_many's ``keep_times``): datetimes or None."""
    times = item.get("created_at"), item.get("updated_at")
    for field_name, value in zip(("created_at", "updated_at"), times, strict=True):
        if value is not None and not isinstance(value, datetime):
            raise MemoryUsageError(f"record '{record_id}': {field_name} must be a datetime, not {type(value).__name__}")
    created, updated = times
    return (_aware(created), _aware(updated))


def _aware(value: datetime | None) -> datetime | None:
    # A naive datetime is taken as UTC, the zone every store answers in.
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def check_collection_name(name: object) -> str:
    if not isinstance(name, str) or not COLLECTION_NAME.match(name):
        raise MemoryUsageError(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def check_id(record_id: object) -> str:
    if not isinstance(record_id, str) or not record_id or len(record_id) > MAX_ID_LENGTH:
        raise MemoryUsageError(f"invalid record id {record_id!r}: use a non-empty string of at most {MAX_ID_LENGTH}")
    return record_id


def check_metadata(metadata: object) -> Metadata:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise MemoryUsageError(f"metadata must be a mapping of key to value, not {type(metadata).__name__}")
    return {check_key(key): check_value(key, value) for key, value in metadata.items()}
