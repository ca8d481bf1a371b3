"""Small file-system helpers: atomic writes and an inter-process lock."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, single-process use only
    fcntl = None  # type: ignore[assignment]

TEMP_MARK = ".tmp-"


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """``write(temp_path)`` then fsync and rename over ``path``: readers see the old or the new file."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name + TEMP_MARK)
    os.close(fd)
    try:
        write(temp)
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_directory(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda temp: Path(temp).write_bytes(data))


def fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on every platform.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created, never deleted: deleting lock files races)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_stale_temps(directory: Path, prefix: str = "") -> int:
    """Delete temp files (of files named ``prefix*``) left by a process killed mid-write.

    Call it only while holding the lock that writers of those files hold.
    """
    removed = 0
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.name.startswith(prefix) and TEMP_MARK in entry.name:
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed += 1
    return removed
