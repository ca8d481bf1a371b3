"""Copy a memory store into another, local files <-> PostgreSQL (``kernel-app memory migrate``).

Records are copied with their vectors (nothing is embedded again) and their created and updated
times, a batch per transaction; ids the target already holds are skipped, so an interrupted copy is
resumed by running it again. Each collection is then verified: every source id is in the target, and
a sample of records has the same text, metadata, vector and times. The source is only read, never
changed.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from memories.errors import EmbedderMismatchError, MemoryStoreError

DEFAULT_BATCH = 1000
DEFAULT_SAMPLE = 50
DEFER_INDEX_MIN = 2000  # records left to copy: below it the index is kept (its build has a fixed cost)


class _RecordedEmbedder:
    """Stands for the embedder a collection was built with: the copy passes vectors, never texts to embed."""

    def __init__(self, name: str, dimensions: int) -> None:
        self.name, self.dimensions = name, dimensions

    def embed(self, texts: list[str]) -> np.ndarray:
        raise MemoryStoreError(f"copying collections never embeds texts (asked to embed {len(texts)} with {self.name})")


@dataclass
class CollectionCopy:
    """What copying one collection did."""

    name: str
    copied: int
    already_there: int
    sampled: int

    def __str__(self) -> str:
        if not (self.copied or self.already_there):
            return f"{self.name}: empty, nothing to copy (a collection is created by its first record)"
        return (
            f"{self.name}: {self.copied} record(s) copied, {self.already_there} already there; "
            f"verified all ids and {self.sampled} sampled vector(s)"
        )


def copy_store(
    source: Any,
    target: Any,
    *,
    collections: Iterable[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    sample: int = DEFAULT_SAMPLE,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[CollectionCopy]:
    """Copy ``collections`` (default: all) of ``source`` into ``target`` (MemoryStore or PgMemoryStore).

    ``progress(collection, done, total)`` is called after each batch. Raises
    :class:`EmbedderMismatchError` if the target holds the collection under another embedder, and
    :class:`MemoryStoreError` if the verification finds a difference.
    """
    infos = {info.name: info for info in source.collections()}
    names = list(collections) if collections is not None else sorted(infos)
    missing = [name for name in names if name not in infos]
    if missing:
        from memories.errors import CollectionNotFoundError

        raise CollectionNotFoundError(missing[0], sorted(infos))
    target_infos = {info.name: info for info in target.collections()}
    reports = []
    for name in names:
        info = infos[name]
        there = target_infos.get(name)
        if there is not None and (there.embedder, there.dimensions) != (info.embedder, info.dimensions):
            raise EmbedderMismatchError(name, (there.embedder, there.dimensions), (info.embedder, info.dimensions))
        reports.append(_copy_collection(source, target, info, batch_size, sample, progress))
    return reports


def _copy_collection(
    source: Any,
    target: Any,
    info: Any,
    batch_size: int,
    sample: int,
    progress: Callable[[str, int, int], None] | None,
) -> CollectionCopy:
    name = info.name
    target.embedder = _RecordedEmbedder(info.embedder, info.dimensions)  # saves then check against the collection
    ids = sorted(source.metadata(name))
    present = set(target.metadata(name))
    todo = [record_id for record_id in ids if record_id not in present]
    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    with contextlib.ExitStack() as deferred:
        for number, batch in enumerate(batches, 1):
            records = source.get_many(name, batch, with_embedding=True)
            target.save_many(name, records, keep_times=True)  # the source's created and updated times
            if number == 1 and _defers_index(target, len(todo) - len(batch), len(present) + len(batch)):
                # The first batch created the collection; the rest go in without an index to update
                # row by row, which is built once after the last (PostgreSQL; bench/bench_pg_append.py).
                deferred.enter_context(target.index_deferred(name))
            if progress is not None:
                progress(name, min(number * batch_size, len(todo)), len(todo))
    if hasattr(target, "ensure_index") and ids:
        target.ensure_index(name)  # one a stopped copy left unbuilt
    if not ids:  # a collection is created by its first record: an empty one has nothing to carry over
        return CollectionCopy(name, 0, 0, 0)
    sampled = _verify(source, target, name, ids, sample)
    return CollectionCopy(name, len(todo), len(ids) - len(todo), sampled)


def _defers_index(target: Any, left: int, there: int) -> bool:
    """Whether the rest of a copy is loaded with the target's index deferred: a PostgreSQL target, and at
    least as many records still to copy as the collection holds (else updating its graph costs less than
    building it again over everything)."""
    return hasattr(target, "index_deferred") and left >= max(DEFER_INDEX_MIN, there)


def _verify(source: Any, target: Any, name: str, ids: list[str], sample: int) -> int:
    lost = sorted(set(ids) - set(target.metadata(name)))
    if lost:
        raise MemoryStoreError(f"collection '{name}': {len(lost)} record(s) missing after the copy, e.g. '{lost[0]}'")
    chosen = random.Random(0).sample(ids, min(sample, len(ids)))
    theirs = {r.id: r for r in target.get_many(name, chosen, with_embedding=True)}
    for mine in source.get_many(name, chosen, with_embedding=True):
        copy = theirs[mine.id]
        same_vector = (
            mine.embedding is not None
            and copy.embedding is not None
            and np.allclose(mine.embedding, copy.embedding, atol=1e-6)
        )
        same_record = (copy.text, copy.description, copy.metadata) == (mine.text, mine.description, mine.metadata)
        if not (same_record and same_vector and _same_times(mine, copy)):
            raise MemoryStoreError(f"collection '{name}': record '{mine.id}' differs after the copy")
    return len(chosen)


def _same_times(mine: Any, copy: Any) -> bool:
    """Within a millisecond: SQLite keeps float seconds, PostgreSQL microseconds."""
    for ours, theirs in ((mine.created_at, copy.created_at), (mine.updated_at, copy.updated_at)):
        if (ours is None) != (theirs is None) or (ours and abs((ours - theirs).total_seconds()) > 1e-3):
            return False
    return True
