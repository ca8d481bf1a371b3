"""The embedder's files are checked by sha256 before they are loaded, and a verified file is not rehashed.

Damage is tried on small files made here (a KnownFile of their own bytes) and on a damaged copy of the
shipped tokenizer put where the default is looked for; the real model and tokenizer are checked too.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_app.base.errors import ConfigError, DependencyMissingError
from kernel_app.providers.embedder import files
from kernel_app.providers.embedder.files import MODEL, TOKENIZER, KnownFile, verify
from kernel_app.providers.embedder.minilm import resolve_paths
from tests.support.cli import ROOT, cli_env

DATA = b"all-MiniLM-L6-v2 stand-in bytes\n" * 1000


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts as a new process would: nothing verified yet, records in its own cache."""
    monkeypatch.setattr(files, "_VERIFIED", set())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def known_file(tmp_path: Path) -> tuple[Path, KnownFile]:
    path = tmp_path / "site" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(DATA)
    known = KnownFile("model.onnx", len(DATA), hashlib.sha256(DATA).hexdigest(), "pip install --force-reinstall x")
    return path, known


def _damage_one_byte(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _no_hashing(*args: object, **kwargs: object) -> str:
    raise AssertionError("a file with a matching record was hashed again")


def test_the_shipped_tokenizer_and_the_installed_model_are_the_recorded_bytes() -> None:
    model, tokenizer = resolve_paths(None, None)
    assert tokenizer == files.DATA_DIR / "tokenizer.json" and model.name == "model.onnx"
    assert hashlib.sha256(tokenizer.read_bytes()).hexdigest() == TOKENIZER.sha256
    assert hashlib.sha256(model.read_bytes()).hexdigest() == MODEL.sha256
    assert (files.DATA_DIR / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_a_damaged_file_of_the_right_size_is_refused_naming_it_and_the_fix(known_file: tuple[Path, KnownFile]) -> None:
    path, known = known_file
    _damage_one_byte(path)
    with pytest.raises(DependencyMissingError) as caught:
        verify(path, known)
    message = str(caught.value)
    assert "\n" not in message
    assert f"the embedder's model.onnx is damaged ({path}: sha256 " in message
    assert message.endswith(
        f"expected sha256 {known.sha256[:12]}…, {len(DATA)} bytes): pip install --force-reinstall x"
    )


def test_a_truncated_file_is_refused_by_its_size_without_hashing(
    known_file: tuple[Path, KnownFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, known = known_file
    path.write_bytes(DATA[:-1])
    monkeypatch.setattr(files, "file_sha256", _no_hashing)
    with pytest.raises(DependencyMissingError, match=rf"model.onnx is damaged \(.*: {len(DATA) - 1} bytes, expected"):
        verify(path, known)


def test_a_missing_file_says_what_to_run(known_file: tuple[Path, KnownFile]) -> None:
    path, known = known_file
    path.unlink()
    with pytest.raises(DependencyMissingError, match=r"model.onnx is missing \(.*\): pip install --force-reinstall x$"):
        verify(path, known)


def test_a_later_start_trusts_the_record_instead_of_rehashing(
    known_file: tuple[Path, KnownFile], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path, known = known_file
    verify(path, known)
    assert len(list((tmp_path / "cache" / "kernel-app" / "verified").glob("embedder-model.onnx-*.json"))) == 1
    monkeypatch.setattr(files, "_VERIFIED", set())  # a new process
    monkeypatch.setattr(files, "file_sha256", _no_hashing)
    verify(path, known)


def test_a_file_changed_after_its_record_is_hashed_again_and_refused(known_file: tuple[Path, KnownFile]) -> None:
    path, known = known_file
    verify(path, known)
    stat = path.stat()
    _damage_one_byte(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # size and mtime as recorded; ctime is not
    files._VERIFIED.clear()
    with pytest.raises(DependencyMissingError, match="is damaged"):
        verify(path, known)


def test_a_cache_that_cannot_be_written_only_costs_the_rehash(
    known_file: tuple[Path, KnownFile], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # records below a plain file cannot be written, even by root
    verify(path=known_file[0], known=known_file[1], records=blocker / "verified")
    assert blocker.is_file()


def test_the_default_tokenizer_damaged_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    damaged = tmp_path / "data"
    damaged.mkdir()
    (damaged / "tokenizer.json").write_bytes((files.DATA_DIR / "tokenizer.json").read_bytes())
    _damage_one_byte(damaged / "tokenizer.json")
    monkeypatch.setattr(files, "DATA_DIR", damaged)
    with pytest.raises(DependencyMissingError, match=r"the embedder's tokenizer.json is damaged .*: reinstall Kernel"):
        resolve_paths(None, None)


def test_files_a_caller_names_must_exist_but_are_theirs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothing.onnx is missing: give an existing model.onnx"):
        resolve_paths(str(tmp_path / "nothing.onnx"), None)
    own = tmp_path / "own-tokenizer.json"
    own.write_text("{}")
    assert resolve_paths(None, str(own))[1] == own  # not the recorded bytes, and not refused for it


@pytest.mark.e2e  # a kernel-app subprocess
def test_the_memory_cli_reports_a_damaged_tokenizer_on_one_line(tmp_path: Path) -> None:
    """As a user meets it: a copy of the package whose tokenizer.json lost a byte."""
    script = (
        "import sys; from kernel_app.providers.embedder import files; "
        f"files.DATA_DIR = __import__('pathlib').Path({str(tmp_path / 'data')!r}); "
        "from kernel_app.interfaces.cli.main import main; main(sys.argv[1:])"
    )
    (tmp_path / "data").mkdir()
    damaged = tmp_path / "data" / "tokenizer.json"
    damaged.write_bytes((files.DATA_DIR / "tokenizer.json").read_bytes()[:-10])
    result = subprocess.run(
        [sys.executable, "-c", script, "--memory-dir", str(tmp_path / "memory"), "memory", "save", "notes", "a text"],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(XDG_CACHE_HOME=str(tmp_path / "cache")),
        cwd=ROOT,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: the embedder's tokenizer.json is damaged (")
