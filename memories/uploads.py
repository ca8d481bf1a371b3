"""How uploaded documents are named in a collection, and the one-time re-keying of the old names.

A document uploaded into a collection (the REST API's ``/v1/memory/{collection}/documents``,
chat-copilot's ``/chats/{id}/documents``) is kept at ``uploads/COLLECTION/NAME`` under the store's
folder, and its chunks' ``source`` is that relative name, ``uploads/COLLECTION/NAME``: the same on
every server and whichever backend holds it, so uploading the name again replaces its chunks.

Uploads ingested before that carried the receiving server's resolved path (``/srv/a/memory/uploads/
Shop/hours.md``), and their ids start with it. :func:`rekey_plan` finds them and says how to rename
them (source and id); both stores apply it once, when first opened by a program that knows it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from memories.records import Metadata

UPLOADS = "uploads"
REKEY_PASS = "upload-sources-v1"  # the name under which a store records that the re-key ran
_SEPARATORS = re.compile(r"[\\/]")


def safe_name(name: str) -> str:
    """A file or folder name that stays inside the uploads folder."""
    cleaned = "".join(c if c.isalnum() or c in "-_. " else "_" for c in name).strip(" .")
    return cleaned or "_"


def upload_folder(collection: str) -> str:
    """The collection's folder under ``uploads/`` (and its key in the database's uploads table)."""
    return safe_name(collection)


def remove_uploads(store_folder: Path, collection: str) -> None:
    """Delete the collection's uploaded files under a store's folder (dropping the collection)."""
    shutil.rmtree(Path(store_folder) / UPLOADS / upload_folder(collection), ignore_errors=True)


def upload_source(collection: str, name: str) -> str:
    """The ``source`` of an upload's chunks: ``uploads/COLLECTION/NAME``, both names made safe."""
    return f"{UPLOADS}/{upload_folder(collection)}/{safe_name(PurePath(name).name)}"


def legacy_upload_source(collection: str, source: str) -> str | None:
    """``uploads/COLLECTION/NAME`` for a source that is an absolute path ending in
    ``uploads/COLLECTION/NAME`` (an upload named by its server's path); None for anything else."""
    absolute = source.startswith("/") or bool(re.match(r"^[A-Za-z]:[\\/]", source))
    parts = _SEPARATORS.split(source)
    if not absolute or len(parts) < 4:
        return None
    uploads, folder, name = parts[-3:]
    if uploads != UPLOADS or folder != upload_folder(collection) or not name or safe_name(name) != name:
        return None
    return f"{UPLOADS}/{folder}/{name}"


@dataclass(frozen=True)
class Rename:
    old_id: str
    new_id: str
    metadata: Metadata  # with the new source


@dataclass
class RekeyPlan:
    """What to change in one collection: delete ``deletes`` first, then apply ``renames``."""

    renames: list[Rename] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.renames or self.deletes)


def rekey_plan(collection: str, rows: Iterable[tuple[str, Metadata, float]]) -> RekeyPlan:
    """The renames and deletions that give every old upload in ``collection`` its stable name.

    ``rows`` are (id, metadata, updated_at as a timestamp) of the collection's records (rows that are
    no upload are ignored). Where one document has several sets of chunks (uploaded through two servers
    before the name was stable, or once under each name), the newest set stays and the others go.
    """
    sets: dict[str, dict[str, list[tuple[str, Metadata, float]]]] = {}  # new source -> old source -> rows
    for record_id, metadata, updated_at in rows:
        source = metadata.get("source")
        if not isinstance(source, str):
            continue
        stable = source if source.startswith(f"{UPLOADS}/") else legacy_upload_source(collection, source)
        if stable is not None:
            sets.setdefault(stable, {}).setdefault(source, []).append((record_id, metadata, updated_at))
    plan = RekeyPlan()
    for stable, by_source in sets.items():
        if list(by_source) == [stable]:
            continue  # already named well, and only once
        newest = max(by_source, key=lambda s: max(updated for _, _, updated in by_source[s]))
        for source, chunks in by_source.items():
            if source != newest:
                plan.deletes.extend(record_id for record_id, _, _ in chunks)
        if newest == stable:
            continue
        for record_id, metadata, _ in by_source[newest]:
            number = metadata.get("chunk")
            suffix = str(number) if isinstance(number, int) else record_id.rpartition("#")[2]
            plan.renames.append(Rename(record_id, f"{stable}#{suffix}", {**metadata, "source": stable}))
    return plan
