"""Records of files whose sha256 was checked, so a later start can trust them without rehashing.

A record holds the expected sha256 and a stamp of the file as it was when its hash matched (size,
mtime, ctime, inode). While the file's stamp still equals the record's, it is the bytes that were
hashed; any write or metadata change alters ctime, which a user cannot set back, so a changed file
never matches an old record and is hashed again. The chat models' cache
(:mod:`kernel_app.providers.llama.cache`) and the embedder's files
(:mod:`kernel_app.providers.embedder.files`) both keep their records this way.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TextIO

CHUNK = 8 * 1024 * 1024


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/kernel-app`` (default ``~/.cache/kernel-app``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "kernel-app"


def stamp(path: Path) -> dict[str, int]:
    """What identifies this version of the file without reading it."""
    # ctime changes on every write and metadata change and cannot be set back by a user, so a
    # modified file never matches an old record even when its size and mtime were restored.
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "ctime_ns": info.st_ctime_ns, "inode": info.st_ino}


def record_matches(record: Path, path: Path, sha256: str) -> bool:
    """Whether ``record`` says ``path``, unchanged since, had the hash ``sha256`` (no hashing)."""
    try:
        saved = json.loads(record.read_text())
        return saved.get("sha256") == sha256 and saved.get("stamp") == stamp(path)
    except (OSError, ValueError, AttributeError):  # no record, an unreadable one, or not a JSON object
        return False


def write_record(record: Path, path: Path, sha256: str) -> None:
    """Record that ``path``, as it is now, has the hash ``sha256`` (written whole or not at all)."""
    temporary = record.with_name(record.name + ".tmp")
    temporary.write_text(json.dumps({"sha256": sha256, "stamp": stamp(path)}))
    os.replace(temporary, record)


def file_sha256(path: Path, progress_label: str | None = None, out: TextIO | None = None) -> str:
    """The file's sha256, read in chunks; with a label, a progress bar on ``out`` (for large files)."""
    digest = hashlib.sha256()
    progress = None
    if progress_label is not None:
        from kernel_app.providers.byte_progress import ByteProgress

        progress = ByteProgress(progress_label, path.stat().st_size, out)
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress.advance(len(chunk))
    if progress is not None:
        progress.finish()
    return digest.hexdigest()
