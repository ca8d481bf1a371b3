"""``kernel-app chat`` on a pseudo-terminal (pexpect) or in a tmux window, as a person's terminal runs it, on
the test server."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from tests.support.cli import cli_env


def spawn_chat(
    base_url: str,
    tmp_path: Path,
    *args: str,
    argv: list[str] | None = None,
    rows: int = 30,
    columns: int = 100,
    **env: str,
) -> Any:
    """A chat on the OpenAI-compatible test server at ``base_url`` with its memory under ``tmp_path``;
    ``argv``: run that instead of ``-m kernel_app chat ARGS``; ``env``: more variables (e.g. TERM)."""
    import pexpect

    variables = {"KERNEL_APP_SERVICE": "openai", "OPENAI_BASE_URL": base_url, "TERM": "xterm"}
    if "XDG_DATA_HOME" not in env:
        variables["KERNEL_APP_MEMORY_DIR"] = str(tmp_path / "memory")
    command = argv or ["-m", "kernel_app", "chat", *args]
    return pexpect.spawn(
        sys.executable,
        command,
        env=cli_env(**variables, **env),
        encoding="utf-8",
        timeout=60,
        dimensions=(rows, columns),
        cwd=os.getcwd(),
    )


def chat_in_tmux(base_url: str, tmp_path: Path, *, columns: int, rows: int) -> Any:
    """A chat on the test server at ``base_url`` in a tmux window (tests/support/tmux_terminal.py), at its
    prompt: a TmuxWindow, to close."""
    from tests.support.tmux_terminal import TmuxWindow

    env = cli_env(
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=base_url,
        KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"),
        COLUMNS="",  # COLUMNS/LINES would pin rich's idea of the size: the window's own must count
        LINES="",
    )
    window = TmuxWindow(
        [sys.executable, "-m", "kernel_app", "chat"],
        columns=columns,
        rows=rows,
        env=env,
        cwd=Path(os.getcwd()),
        socket=tmp_path / "tmux.sock",
    )
    try:
        window.wait_for(lambda lines: lines[-1:] == ["you>"])
    except BaseException:
        window.close()
        raise
    return window
