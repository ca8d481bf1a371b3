"""A headless Chromium driven over the DevTools protocol, for checks of the chat-copilot web app in a browser.

Chromium: Debian's ``chromium-headless-shell`` (``.ci/run`` installs it with ``apt-get install
--no-install-recommends chromium-headless-shell``), or the one ``KERNEL_APP_CHROMIUM`` names. Driven with the
``websockets`` package over the DevTools protocol: Playwright and Puppeteer fetch their own browser builds
from a CDN this machine cannot reach, while a Chromium from Debian's packages installs as usual.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT = "/usr/bin/chromium-headless-shell"
INSTALL = "apt-get install --no-install-recommends chromium-headless-shell"


def chromium() -> str | None:
    """The Chromium to run: KERNEL_APP_CHROMIUM, else Debian's headless shell, else a chromium on PATH."""
    named = os.environ.get("KERNEL_APP_CHROMIUM")
    if named:
        return named
    if Path(DEFAULT).exists():
        return DEFAULT
    return shutil.which("chromium-headless-shell") or shutil.which("chromium")


class Browser:
    """A headless Chromium and one page of it, driven over the DevTools protocol."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
                "--disable-gpu",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.endpoint = self._endpoint()
        from websockets.sync.client import connect

        self.socket = connect(self.endpoint, max_size=None, ping_interval=None)  # DevTools answers no pings
        self.ids = itertools.count(1)
        self.session = ""
        self.console: list[str] = []

    def _endpoint(self) -> str:
        assert self.process.stderr is not None
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line and self.process.poll() is not None:
                break
            seen.append(line)
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                # Keep reading stderr, or Chromium blocks once the pipe is full.
                threading.Thread(target=self.process.stderr.read, daemon=True).start()
                return found.group(1)
        raise SystemExit("Chromium did not start:\n" + "".join(seen[-20:]))

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        message_id = next(self.ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        while True:
            answer = json.loads(self.socket.recv(timeout=30))
            if answer.get("method") == "Runtime.consoleAPICalled":
                args = answer["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            if answer.get("id") == message_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)[
            "sessionId"
        ]
        self.call("Runtime.enable")
        self.call("Page.navigate", {"url": url})

    def text(self) -> str:
        """The page's visible text now."""
        result = self.call("Runtime.evaluate", {"expression": "document.body ? document.body.innerText : ''"})
        return str(result.get("result", {}).get("value", ""))

    def logged(self, text: str) -> bool:
        """Whether the page's console has shown ``text`` (console events arrive with the answers to calls)."""
        self.call("Runtime.evaluate", {"expression": "0"})
        return any(text in line for line in self.console)

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def wait_for(what: str, check: Callable[[], bool], within: float, every: float = 0.2) -> float:
    """Poll ``check()`` until it is true; returns the seconds it took, or raises TimeoutError naming ``what``."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic() - started
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {within:.0f} s")
