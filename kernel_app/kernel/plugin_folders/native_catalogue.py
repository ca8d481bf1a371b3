"""The native functions every kernel has, recorded, so ``plugins list`` and ``lint`` need not import
semantic-kernel to know them: the built-in plugins' Python files (Math, Text, Time, BusinessThinking.SWOT,
DesignThinking.Ideate) and the kernel's own plugins (memory, ConversationSummaryPlugin, http).

The record (``native_catalogue.json``) is what semantic-kernel makes of those classes, written by
``python -m kernel_app.kernel.records regenerate`` (kernel_app/kernel/records.py). It is used for a built-in
file only while that file's sha256 and semantic-kernel's version are the recorded ones; otherwise the file is
imported as before (slower, never wrong). ``tests/kernel/plugin_folders/test_plugin_lint_light.py`` fails
when the record is stale.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from kernel_app.kernel.plugin_folders.specs import FunctionSpec

DATA_FILE = Path(__file__).with_name("native_catalogue.json")
# The kernel's own plugins (kernel_builder adds them; "http" only with http_plugin = true).
KERNEL_PLUGINS = ("memory", "TextMemoryPlugin", "ConversationSummaryPlugin", "http")


@functools.cache
def _data() -> dict[str, Any]:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


@functools.cache
def _sk_version() -> str | None:
    from kernel_app.kernel.records import installed_version

    return installed_version("semantic_kernel", "semantic-kernel")


def builtin_natives(path: Path, builtin_dir: Path) -> list[FunctionSpec] | None:
    """The recorded functions of a built-in plugin's Python file, or None when it is not recorded as it is."""
    try:
        relative = path.resolve().relative_to(builtin_dir.resolve()).as_posix()
    except ValueError:
        return None
    data = _data()
    entry = data["files"].get(relative)
    if entry is None or entry["sha256"] != _sha256(path) or data["semantic_kernel"] != _sk_version():
        return None
    return [FunctionSpec.from_dict(item) for item in entry["functions"]]


def kernel_natives(http_plugin: bool) -> list[FunctionSpec]:
    """The functions of the plugins the kernel adds besides plugin folders."""
    plugins = _data()["kernel"]
    names = [name for name in KERNEL_PLUGINS if http_plugin or name != "http"]
    return [FunctionSpec.from_dict(item) for name in names for item in plugins.get(name, [])]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# region writing the record (imports semantic-kernel)


def generate() -> dict[str, Any]:
    """What semantic-kernel makes of the built-in Python files and the kernel's plugins, now."""
    from semantic_kernel.functions import KernelPlugin

    from kernel_app.base.config import Settings
    from kernel_app.base.paths import builtin_plugins_dir
    from kernel_app.kernel.builder import build_kernel

    builtin = builtin_plugins_dir()
    files: dict[str, Any] = {}
    for path in sorted(builtin.glob("*/*.py")):
        if path.name.startswith(("_", ".")) or path.parent.name.startswith(("_", ".")):
            continue
        plugin = KernelPlugin.from_python_file(plugin_name=path.parent.name, py_file=str(path))
        files[path.relative_to(builtin).as_posix()] = {
            "sha256": _sha256(path),
            "functions": [FunctionSpec.from_metadata(f.metadata).to_dict() for f in plugin.functions.values()],
        }
    # The HttpPlugin warns (a log record) that a kernel without allowed domains blocks every request: true of
    # a kernel nobody runs, built here only to describe its functions, so it would be noise in the output.
    http_logger = logging.getLogger("semantic_kernel.core_plugins.http_plugin")
    level = http_logger.level
    http_logger.setLevel(logging.ERROR)
    try:
        kernel = build_kernel(Settings(http_plugin=True), with_service=False).kernel
    finally:
        http_logger.setLevel(level)
    plugins = {
        name: [FunctionSpec.from_metadata(f.metadata).to_dict() for f in kernel.get_plugin(name).functions.values()]
        for name in KERNEL_PLUGINS
    }
    return {"semantic_kernel": _sk_version(), "files": files, "kernel": plugins}


def render_record() -> str:
    """The record's text as it would be written now."""
    return json.dumps(generate(), indent=1, sort_keys=True, default=str) + "\n"


# endregion
