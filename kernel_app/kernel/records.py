"""The generated records, and the one command that rewrites them.

A record is a JSON file beside the module that reads it, shipped as package data: work done once, here,
so that a command does not redo it on every start. Each is keyed by what would make it wrong (a file's
sha256, the version of the library that made it), so a record that does not match is not used (slower,
never different). Today's records:

- ``kernel/pybars_grammars.json``: what PyMeta parses pybars' grammars into (``pybars_grammars.py``);
- ``kernel/plugin_folders/native_catalogue.json``: the native functions every kernel has, as semantic-kernel
  describes them (``plugin_folders/native_catalogue.py``).

Rewrite them after a change to a built-in plugin's Python file or an upgrade of semantic-kernel, pybars or
PyMeta, in a fresh interpreter::

    python -m kernel_app.kernel.records regenerate           # rewrite every record
    python -m kernel_app.kernel.records regenerate --check   # exit 1 naming each stale record (CI does this)

This module is imported by the readers (for ``installed_version``), so it imports nothing heavy.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Sequence
from pathlib import Path

REGENERATE = "python -m kernel_app.kernel.records regenerate"

# (module that reads and writes the record, what it holds). The module has DATA_FILE and render_record().
# The order matters: pybars' grammars are recorded while pybars is imported for the first time, and
# recording the native catalogue imports semantic-kernel, which imports pybars.
RECORDS: tuple[tuple[str, str], ...] = (
    ("kernel_app.kernel.pybars_grammars", "pybars' grammars as PyMeta parses them"),
    ("kernel_app.kernel.plugin_folders.native_catalogue", "the kernel's native functions as semantic-kernel sees them"),
)


def installed_version(import_name: str, distribution: str) -> str | None:
    """The installed version of ``distribution`` (whose top-level package is ``import_name``), or None.

    Read from the name of its dist-info folder beside the package: importlib.metadata would cost ~0.05 s (it
    imports csv, email and zipfile, then scans every distribution), importing the package itself far more.
    """
    spec = importlib.util.find_spec(import_name)
    if spec is None or spec.origin is None:
        return None
    wanted = _normalized(distribution)
    folders = Path(spec.origin).parent.parent.glob("*.dist-info")
    found = [f.name[: -len(".dist-info")] for f in folders if _normalized(f.name.split("-", 1)[0]) == wanted]
    if len(found) == 1 and "-" in found[0]:
        return found[0].split("-", 1)[1]
    from importlib.metadata import PackageNotFoundError, version  # an unusual install: ask the slow way

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _normalized(name: str) -> str:
    # PEP 503 names: "PyMeta3", "pymeta3" and "semantic-kernel" / "semantic_kernel" are the same project.
    return re.sub(r"[-_.]+", "_", name).lower()


def stale() -> list[str]:
    """One line per record whose file is not what would be written now (absent, edited or out of date)."""
    lines = []
    for module_name, what in RECORDS:
        module = importlib.import_module(module_name)
        path: Path = module.DATA_FILE
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != module.render_record():
            lines.append(f"stale record {_shown(path)} ({what}): run `{REGENERATE}`")
    return lines


def regenerate() -> list[str]:
    """Rewrite every record; one line per record written."""
    lines = []
    for module_name, what in RECORDS:
        module = importlib.import_module(module_name)
        path: Path = module.DATA_FILE
        path.write_text(module.render_record(), encoding="utf-8")
        lines.append(f"wrote {_shown(path)} ({what})")
    return lines


def _shown(path: Path) -> str:
    root = Path(__file__).resolve().parent.parent.parent  # the folder that holds the kernel_app package
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m kernel_app.kernel.records", description=summary)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("regenerate", help="rewrite every generated record (run in a fresh interpreter)")
    command.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each stale record")
    args = parser.parse_args(argv)
    from kernel_app.kernel.pybars_grammars import PyMetaAlreadyImported

    try:
        lines = stale() if args.check else regenerate()
    except PyMetaAlreadyImported:
        print(f"error: PyMeta is already imported: run `{REGENERATE}` in a fresh interpreter", file=sys.stderr)
        return 2
    for line in lines:
        print(line, file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and lines else 0


if __name__ == "__main__":
    sys.exit(main())
