"""A program in a tmux window: tmux is the terminal (it answers cursor-position requests, re-wraps lines
when the window is resized, keeps a scrollback), and ``capture-pane`` shows what a person would see.

Each :class:`TmuxWindow` runs its own tmux server on a socket under the test's tmp_path, without the
user's configuration, and kills it when closed.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def tmux_missing() -> str | None:
    """Why tmux tests cannot run here, or None."""
    if shutil.which("tmux") is None:
        return "tmux is not installed (.ci/run installs it from apt)"
    return None


class TmuxWindow:
    """``command`` (argv) running in a ``columns`` x ``rows`` tmux window, in ``cwd`` with ``env``."""

    def __init__(
        self, command: list[str], *, columns: int, rows: int, env: dict[str, str], cwd: Path, socket: Path
    ) -> None:
        self._socket = socket
        # The server started by new-session inherits env: the program's environment, TERM set by tmux.
        self._tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "chat", "-x", str(columns), "-y", str(rows),
            "-c", str(cwd), "--", *command,
            env=env,
        )  # fmt: skip
        self._tmux("set-option", "-t", "chat", "history-limit", "10000")

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(self._socket), *args], capture_output=True, text=True, timeout=30, env=env, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args[:3])}: {done.stderr.strip()}")
        return done.stdout

    def send(self, line: str) -> None:
        """Type ``line`` and Enter."""
        self._tmux("send-keys", "-t", "chat", "-l", line)
        self._tmux("send-keys", "-t", "chat", "Enter")

    def resize(self, columns: int, rows: int) -> None:
        self._tmux("resize-window", "-t", "chat", "-x", str(columns), "-y", str(rows))

    def lines(self, *, joined: bool = False) -> list[str]:
        """The scrollback then the screen, without trailing blanks, the empty screen end cut. ``joined``: a
        line the terminal wrapped (or re-wrapped on a resize) is one line, as the program wrote it."""
        capture = ["capture-pane", "-p", "-t", "chat", "-S", "-", "-E", "-", *(["-J"] if joined else [])]
        lines = [line.rstrip() for line in self._tmux(*capture).split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def wait_for(self, done: Callable[[list[str]], bool], timeout: float = 120) -> list[str]:
        deadline = time.monotonic() + timeout
        while not done(lines := self.lines()):
            if time.monotonic() > deadline:
                raise AssertionError(f"tmux did not show what was awaited in {timeout} s:\n" + "\n".join(lines))
            time.sleep(0.2)
        return lines

    def close(self) -> None:
        subprocess.run(["tmux", "-S", str(self._socket), "kill-server"], capture_output=True, timeout=30, check=False)
