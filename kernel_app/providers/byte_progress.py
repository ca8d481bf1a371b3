"""A progress bar for long byte copies (joining or verifying a model file), on stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_MB = 1024 * 1024


class ByteProgress:
    """Redraws one line at a terminal (at most 10 times a second); elsewhere prints a start and an end
    line only, so logs and CI output are not flooded with carriage returns."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._drawn = 0.0
        if not self.tty:
            self._write(f"{label}: {total / _MB:,.0f} MB...\n")

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.tty and (now - self._drawn >= 0.1 or self.done >= self.total):
            self._drawn = now
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            self._write(f"\r{self.label} [{bar:<30}] {share:4.0%} {self.done / _MB:,.0f}/{self.total / _MB:,.0f} MB")

    def finish(self, outcome: str = "done") -> None:
        seconds = time.monotonic() - self._started
        prefix = "\r\033[K" if self.tty else ""
        self._write(f"{prefix}{self.label}: {outcome} ({self.done / _MB:,.0f} MB in {seconds:.1f} s)\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
