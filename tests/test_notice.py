"""NOTICE names the third-party files Kernel App ships, and the wheel carries them and their licences."""

from __future__ import annotations

import fnmatch
import re

from tests.support.cli import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as tomli (a dependency there)
    import tomli as tomllib

NOTICE = (ROOT / "NOTICE").read_text()
# Files that are not Kernel App's own work: licence texts, and data taken from other projects.
THIRD_PARTY = sorted(
    [
        *(ROOT / "kernel_app").rglob("LICENSE*"),
        # records derived from other packages (kernel_app/kernel/records.py lists them)
        ROOT / "kernel_app" / "kernel" / "pybars_grammars.json",
        ROOT / "kernel_app" / "kernel" / "plugin_folders" / "native_catalogue.json",
        ROOT / "kernel_app" / "providers" / "embedder" / "data" / "tokenizer.json",
        # the Teams app manifest's schema (kernel_app/interfaces/server/teams/manifest_schema/README.md)
        *(ROOT / "kernel_app" / "interfaces" / "server" / "teams" / "manifest_schema").rglob("*.schema.json"),
    ]
)


def _package_data() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["package-data"]["kernel_app"]


def test_every_path_the_notice_names_exists() -> None:
    named = re.findall(r"\b(?:kernel_app|plugins|memories|planners)/[\w./-]+\w", NOTICE)
    assert named
    missing = [path for path in named if not (ROOT / path).exists()]
    assert not missing


def test_every_third_party_file_and_licence_is_named_in_a_notice() -> None:
    notices = NOTICE + "".join(path.read_text() for path in (ROOT / "kernel_app").rglob("NOTICE"))
    unnamed = []
    for path in THIRD_PARTY:
        relative = path.relative_to(ROOT).as_posix()
        # A licence beside its own NOTICE may be named by that NOTICE as "LICENSE beside this file".
        beside = (path.parent / "NOTICE").exists() and path.name in (path.parent / "NOTICE").read_text()
        if relative not in notices and not beside:
            unnamed.append(relative)
    assert not unnamed


def test_the_wheel_carries_the_data_files_and_licences() -> None:
    """Non-Python files reach a wheel only through package-data: each must match one of its patterns."""
    patterns = _package_data()
    for path in THIRD_PARTY + sorted((ROOT / "kernel_app").rglob("NOTICE")):
        if path.suffix == ".py":
            continue
        relative = path.relative_to(ROOT / "kernel_app").as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
