"""Where Kernel App's own files live."""

import os
from pathlib import Path

CALL_LOG_FILE = "calls.sqlite3"


def builtin_plugins_dir() -> Path:
    # `plugins/` sits beside `kernel_app/` both in a checkout and in site-packages.
    return Path(__file__).resolve().parents[2] / "plugins"


def data_dir(memory_dir: Path | None = None) -> Path:
    """The folder of this user's local state (memory, conversations, input history, the eval cache):
    the ``memory_dir`` setting, else ``$XDG_DATA_HOME/kernel-app/memory`` (``~/.local/share/...``)."""
    if memory_dir is not None:
        return Path(memory_dir).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "kernel-app" / "memory"


def call_log_path(memory_dir: Path | None = None) -> Path:
    """The call log's SQLite file (``kernel-app logs``), used when no ``database_url`` is set."""
    return data_dir(memory_dir) / CALL_LOG_FILE
