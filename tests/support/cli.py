"""``kernel-app`` in a subprocess, as a user runs it, guarded against non-loopback network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
NETGUARD = TESTS / "netguard"  # its sitecustomize.py guards every subprocess we start
ROOT = TESTS.parent
ISOLATED_PREFIXES = ("KERNEL_APP_", "OPENAI_", "AZURE_OPENAI_")


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NETGUARD), str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def run_cli(*args: str, input: str | None = None, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``kernel-app`` as a user would, in a subprocess guarded against non-loopback network."""
    return subprocess.run(
        [sys.executable, "-m", "kernel_app", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**env),
        cwd=ROOT,
    )
