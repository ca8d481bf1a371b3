"""tests/support/corpus_fetch.py: the package corpus is fetched by pin and checksum and extracted unchanged.

No registry is reached here: the downloads are small archives the tests build, and the registry client
is replaced where a download is exercised.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support import corpus_fetch
from tests.support.corpus_fetch import CorpusError

SKILL = b"---\nname: demo\ndescription: A demo skill.\n---\nDo the demo.\n"
PROMPTY = b"---\ndescription: d\n---\nuser:\n{{question}}\r\n"  # a CRLF stays a CRLF


def make_tgz(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_wheel(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(path: Path, packages: list[dict[str, Any]]) -> Path:
    lines = []
    for package in packages:
        lines.append("[[package]]")
        lines += [f'{key} = "{package[key]}"' for key in ("registry", "name", "version", "file", "sha256", "licence")]
        lines.append("[package.files]")
        lines += [f'"{corpus}" = "{member}"' for corpus, member in package["files"].items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def cache_with_downloads(tmp_path: Path) -> tuple[Path, Path]:
    """A cache whose downloads are already there (so nothing is fetched), and the manifest that pins them."""
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    tgz = make_tgz(downloads / "demo-1.0.0.tgz", {"package/skills/demo/SKILL.md": SKILL})
    whl = make_wheel(downloads / "demo_py-2.0-py3-none-any.whl", {"demo_py/prompts/ask.prompty": PROMPTY})
    manifest = write_manifest(
        tmp_path / "packages.toml",
        [
            {"registry": "npm", "name": "demo", "version": "1.0.0", "file": "demo-1.0.0.tgz", "sha256": tgz}
            | {"licence": "MIT", "files": {"skills/Demo/demo/SKILL.md": "package/skills/demo/SKILL.md"}},
            {"registry": "pypi", "name": "demo-py", "version": "2.0", "file": "demo_py-2.0-py3-none-any.whl"}
            | {"sha256": whl, "licence": "MIT", "files": {"prompty/Demo/ask.prompty": "demo_py/prompts/ask.prompty"}},
        ],
    )
    return tmp_path / "cache", manifest


def test_the_named_files_are_extracted_byte_for_byte_and_stamped(cache_with_downloads: tuple[Path, Path]) -> None:
    cache, manifest = cache_with_downloads
    assert corpus_fetch.missing_reason(cache, manifest) == (
        f"the package corpus is not in {cache / 'corpus'}: run `python -m tests.support.corpus_fetch` (it needs pip"
        " and npm)"
    )
    corpus = corpus_fetch.fetch(cache, manifest)
    assert (corpus / "skills/Demo/demo/SKILL.md").read_bytes() == SKILL
    assert (corpus / "prompty/Demo/ask.prompty").read_bytes() == PROMPTY
    assert sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()) == [
        ".packages.sha256",
        "prompty/Demo/ask.prompty",
        "skills/Demo/demo/SKILL.md",
    ]
    assert corpus_fetch.missing_reason(cache, manifest) is None
    manifest.write_text(manifest.read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
    reason = corpus_fetch.missing_reason(cache, manifest)
    assert reason is not None and "older than tests/corpus/packages.toml: run `python -m tests.support" in reason


def test_a_download_whose_checksum_differs_from_the_pin_is_refused(
    cache_with_downloads: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, manifest = cache_with_downloads
    (package, _) = corpus_fetch.load_manifest(manifest)
    (cache / "downloads" / package.file).write_bytes(b"tampered")  # a cached file that fails its check is fetched

    def registry(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert command[1:3] == ["pack", "demo@1.0.0"]
        Path(command[command.index("--pack-destination") + 1], package.file).write_bytes(b"another file")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(corpus_fetch.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(corpus_fetch.subprocess, "run", registry)
    with pytest.raises(CorpusError) as refused:
        corpus_fetch.download(package, cache / "downloads")
    other = hashlib.sha256(b"another file").hexdigest()
    assert refused.value.args[0] == (
        f"demo-1.0.0.tgz: sha256 {other} is not the pinned {package.sha256}: check what changed before updating"
        " tests/corpus/packages.toml"
    )
    assert (cache / "downloads" / package.file).read_bytes() == b"tampered"  # nothing unverified is kept


def test_pip_downloads_the_pinned_form_of_the_package(tmp_path: Path) -> None:
    wheel = corpus_fetch.Package("pypi", "a-b", "1.0", "a_b-1.0-py3-none-any.whl", "0", "MIT", "", {})
    sdist = corpus_fetch.Package("pypi", "a-b", "1.0", "a_b-1.0.tar.gz", "0", "MIT", "", {})
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    into = ["-d", str(tmp_path), "a-b==1.0"]
    # The wheel as a wheel; the source distribution as one, while pip's build tools may still be wheels.
    assert corpus_fetch._client_command(wheel, tmp_path) == [*pip, "--only-binary", ":all:", *into]
    assert corpus_fetch._client_command(sdist, tmp_path) == [*pip, "--no-binary", "a-b", *into]


def test_a_file_the_archive_lacks_or_a_bad_manifest_is_one_line(cache_with_downloads: tuple[Path, Path]) -> None:
    cache, manifest = cache_with_downloads
    with pytest.raises(CorpusError, match=r"^demo-1\.0\.0\.tgz has no package/README\.md: fix tests/corpus/"):
        corpus_fetch.read_members(cache / "downloads" / "demo-1.0.0.tgz", {"package/README.md"})
    manifest.write_text('[[package]]\nname = "x"\nregistry = "cargo"\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"package 1 lacks version, file, sha256, licence, files: add them$"):
        corpus_fetch.load_manifest(manifest)


def test_sources_md_is_written_from_the_manifest() -> None:
    expected = corpus_fetch.sources_markdown(corpus_fetch.load_manifest())
    assert corpus_fetch.SOURCES.read_text(encoding="utf-8") == expected, (
        "tests/corpus/SOURCES.md is stale: run `python -m tests.support.corpus_fetch --sources`"
    )
    packages = corpus_fetch.load_manifest()
    assert {p.licence for p in packages} == {"MIT"}
    assert all(path.split("/")[0] in corpus_fetch.CORPUS_DIRECTORIES for p in packages for path in p.files)
