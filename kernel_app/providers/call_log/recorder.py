"""The recorder: writes model calls to the call log on a thread of its own, redacted, in batches.

A write that fails is a warning and never breaks the call: the answer is returned either way. What a
call was (its request and answer) is made into a record by ``service_calls``, which wraps the services.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernel_app.providers.call_log.records import CallLog, CallRecord
from kernel_app.providers.call_log.redact import Redactor

log = logging.getLogger(__name__)

MAX_QUEUED = 1000  # calls waiting for the writer thread; more are dropped (with a warning), never waited for
BATCH = 200  # calls written in one transaction at most
GATHER_S = 0.05  # the writer waits this long after a wake-up, so calls made meanwhile share its transaction
EXIT_FLUSH_S = 5.0  # how long a process that exits waits for its queued calls to be written


@dataclass(frozen=True)
class RootResult:
    """What an outermost function returned, for the calls made inside it (queued after them)."""

    invocation: str
    text: str


Pending = CallRecord | Callable[[], CallRecord] | RootResult

# Recorders whose writer thread runs: their queues are written out when the process exits.
_open_recorders: weakref.WeakSet[CallRecorder] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for recorder in list(_open_recorders):
        recorder.flush(EXIT_FLUSH_S)


class CallRecorder:
    """Writes the calls of the services it records to a call log, on a thread of its own.

    A turn only copies its request and answer and appends them to a queue (``write``); redaction and the
    write itself happen on the recorder's writer thread, so neither a slow disk nor a distant database
    holds up the event loop. The writer is woken once per batch, not per call: waking a thread for each
    call hands it the GIL while the turn still runs, which cost a scripted turn more than the write.
    ``open_log`` is called there on the first write (a PostgreSQL pool is opened only once a call is
    made). A failure to open or write is one warning, later ones are debug lines; a full queue drops the
    call (with the same warning) rather than make a turn wait. ``flush`` waits for what is queued; queues
    are flushed when the process exits, so a ``kernel-app run`` leaves its calls behind.
    """

    def __init__(
        self,
        open_log: Callable[[], CallLog],
        redactor: Redactor | None = None,
        where: str = "",
        *,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._open_log = open_log
        self._log: CallLog | None = None
        self.redactor = redactor or Redactor()
        self.where = where
        self.max_queued = max_queued
        self._lock = threading.Lock()
        self._warned = False
        self._pending: deque[Pending] = deque()  # append and popleft are atomic: no lock on the turn's side
        self._wake = threading.Event()
        self._queued = 0  # calls appended (by the event loop's thread: one writer of this count)
        self._done = 0  # calls the writer finished with, written or not
        self._done_changed = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closing = False

    @property
    def log(self) -> CallLog:
        with self._lock:
            if self._log is None:
                self._log = self._open_log()
            return self._log

    def write(self, record: Pending) -> None:
        """Queue ``record`` (or a function that builds it from what the call copied) for the writer thread."""
        if len(self._pending) >= self.max_queued:
            self.failed(RuntimeError(f"{self.max_queued} calls are waiting to be written already"))
            return
        self._start_writer()
        self._pending.append(record)
        self._queued += 1
        if not self._wake.is_set():
            self._wake.set()

    def write_result(self, invocation: str, text: str) -> None:
        """Queue the result of the outermost function ``invocation``: it goes on the calls made inside it."""
        self.write(RootResult(invocation, text))

    def write_now(self, record: Pending) -> None:
        """Build, redact and write ``record`` on this thread; any failure is a warning, never an exception."""
        self._write_batch([record])

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued call is written (True), or ``timeout`` seconds passed (False)."""
        if self._writer is None:
            return True
        target = self._queued
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done_changed:
            while self._done < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._done_changed.wait(left)
        return True

    def failed(self, exc: BaseException) -> None:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if not self._warned:
            self._warned = True
            log.warning(
                "call log: a model call was not logged%s: %s (turn the log off with --no-call-log or "
                "KERNEL_APP_CALL_LOG=0)",
                f" to {self.where}" if self.where else "",
                reason,
            )
        else:
            log.debug("call log: a model call was not logged: %s", reason)

    def close(self) -> None:
        """Write what is queued (for up to EXIT_FLUSH_S), stop the writer and close the log."""
        self.flush(EXIT_FLUSH_S)
        writer, self._writer = self._writer, None
        if writer is not None:
            self._closing = True
            self._wake.set()
            writer.join(EXIT_FLUSH_S)
        with self._lock:
            if self._log is not None:
                with contextlib.suppress(Exception):
                    self._log.close()
                self._log = None

    def _start_writer(self) -> None:
        if self._writer is not None:
            return
        with self._lock:
            if self._writer is None:
                self._closing = False
                self._writer = threading.Thread(target=self._drain, name="kernel-app-call-log", daemon=True)
                self._writer.start()
                _open_recorders.add(self)

    def _drain(self) -> None:
        while not self._closing:
            self._wake.wait()
            time.sleep(GATHER_S)
            self._wake.clear()  # before taking the calls: one appended from now on wakes the writer again
            while self._pending:
                batch: list[Pending] = []
                while self._pending and len(batch) < BATCH:
                    batch.append(self._pending.popleft())
                try:
                    self._write_batch(batch)
                finally:
                    with self._done_changed:
                        self._done += len(batch)
                        self._done_changed.notify_all()

    def _write_batch(self, items: list[Pending]) -> None:
        records: list[CallRecord] = []
        results: list[RootResult] = []
        for item in items:
            try:
                if isinstance(item, RootResult):
                    results.append(RootResult(item.invocation, self.redactor.text(item.text)))
                else:
                    records.append(self._redacted(item() if callable(item) else item))
            except Exception as exc:  # one call that cannot be read does not lose the others
                self.failed(exc)
        try:
            if records:
                self.log.write_many(records)
            for result in results:  # after the calls: a result is queued after the calls it goes on
                self.log.set_root_result(result.invocation, result.text)
        except Exception as exc:
            self.failed(exc)

    def _redacted(self, record: CallRecord) -> CallRecord:
        r = self.redactor
        # Messages are ours ({role, content, name, tool_calls}): only their text and calls can hold a secret.
        record.messages = [_redacted_message(r, m) for m in record.messages]
        record.settings = r.value(record.settings)
        record.answer = r.text(record.answer)
        record.tool_calls = r.value(record.tool_calls)
        record.functions = r.value(record.functions)
        if record.error is not None:
            record.error = r.text(record.error)
        return record


def _redacted_message(redactor: Redactor, message: dict[str, Any]) -> dict[str, Any]:
    clean = dict(message, content=redactor.text(message.get("content") or ""))
    if "tool_calls" in message:
        clean["tool_calls"] = redactor.value(message["tool_calls"])
    return clean
