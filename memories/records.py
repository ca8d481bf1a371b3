"""What the store holds and returns: records and search hits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# Flat JSON metadata: filterable with ``where`` (see memories.where).
MetadataValue = str | int | float | bool
Metadata = dict[str, MetadataValue]


@dataclass
class MemoryRecord:
    """One stored text with its metadata; ``embedding`` is filled only when asked for."""

    id: str
    text: str
    description: str = ""
    metadata: Metadata = field(default_factory=dict)
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class SearchHit:
    """A record found by a search; ``relevance`` is the cosine similarity to the query (-1..1)."""

    record: MemoryRecord
    relevance: float


@dataclass
class CollectionInfo:
    """A collection as ``MemoryStore.collections()`` lists it."""

    name: str
    embedder: str
    dimensions: int
    count: int
    created_at: datetime
