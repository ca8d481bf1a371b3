"""Where Kernel App's own files live."""

from pathlib import Path


def builtin_plugins_dir() -> Path:
    # `plugins/` sits beside `kernel_app/` both in a checkout and in site-packages.
    return Path(__file__).resolve().parents[2] / "plugins"
