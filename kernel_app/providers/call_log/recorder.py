"""Log every call a chat service makes, whichever surface made it.

semantic-kernel 1.45 has no filter that sees a chat service's requests (its filters see function
invocations, prompt rendering and auto function calls; the conversation engine and the planners call
the service directly). So ``record_calls`` wraps the service's two request methods on the instance,
``_inner_get_chat_message_contents`` and ``_inner_get_streaming_chat_message_contents``: every public
method (plain, streaming, the function-calling loop, which makes one request per round) goes through
them, and the service keeps its own class, so ``isinstance`` checks and profiles still see it.

A write that fails is a warning and never breaks the call: the answer is returned either way. The
request is copied when it is sent; the record is built, redacted and written on the recorder's thread.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from kernel_app.providers.call_log.context import current_conversation, current_functions
from kernel_app.providers.call_log.records import CallLog, CallRecord
from kernel_app.providers.call_log.redact import Redactor

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
    from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings
    from semantic_kernel.contents import ChatHistory, ChatMessageContent, StreamingChatMessageContent

log = logging.getLogger(__name__)

RECORDER_ATTRIBUTE = "_kernel_app_call_recorder"  # marks a service already recorded
MAX_QUEUED = 1000  # calls waiting for the writer thread; more are dropped (with a warning), never waited for
BATCH = 200  # calls written in one transaction at most
GATHER_S = 0.05  # the writer waits this long after a wake-up, so calls made meanwhile share its transaction
EXIT_FLUSH_S = 5.0  # how long a process that exits waits for its queued calls to be written

Pending = CallRecord | Callable[[], CallRecord]

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
        for item in items:
            try:
                records.append(self._redacted(item() if callable(item) else item))
            except Exception as exc:  # one call that cannot be read does not lose the others
                self.failed(exc)
        if not records:
            return
        try:
            self.log.write_many(records)
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


def record_calls(service: ChatCompletionClientBase, recorder: CallRecorder) -> ChatCompletionClientBase:
    """``service``, its requests now written to ``recorder``'s log (once: recording twice is a no-op)."""
    if getattr(service, RECORDER_ATTRIBUTE, None) is not None:
        return service
    inner = service._inner_get_chat_message_contents
    inner_stream = service._inner_get_streaming_chat_message_contents

    async def recorded(chat_history: ChatHistory, settings: PromptExecutionSettings) -> list[ChatMessageContent]:
        call = _start(recorder, service, chat_history, settings, streamed=False)
        try:
            completions = await inner(chat_history, settings)
        except BaseException as exc:
            if call is not None:
                call.stop()
                recorder.write(partial(call.failed, exc))
            raise
        if call is not None:
            call.stop()
            recorder.write(partial(call.answered, completions[0] if completions else None))
        return completions

    async def recorded_stream(
        chat_history: ChatHistory, settings: PromptExecutionSettings, function_invoke_attempt: int = 0
    ) -> AsyncGenerator[list[StreamingChatMessageContent], Any]:
        call = _start(recorder, service, chat_history, settings, streamed=True)
        chunks: list[StreamingChatMessageContent] = []
        try:
            async for messages in inner_stream(chat_history, settings, function_invoke_attempt):
                chunks.extend(m for m in messages if m is not None and getattr(m, "choice_index", 0) == 0)
                yield messages
        except BaseException as exc:  # a failed stream, or one its reader stopped: what came is logged
            if call is not None:
                call.stop()
                recorder.write(partial(call.stream_record, chunks, error=_stopped(exc)))
            raise
        if call is not None:
            call.stop()
            recorder.write(partial(call.stream_record, chunks))

    # Instance attributes shadow the class's methods; pydantic stores an undeclared `_name` on the instance.
    service._inner_get_chat_message_contents = recorded  # pyright: ignore[reportAttributeAccessIssue]  # SK's method, shadowed per instance
    service._inner_get_streaming_chat_message_contents = recorded_stream  # pyright: ignore[reportAttributeAccessIssue]  # as above
    object.__setattr__(service, RECORDER_ATTRIBUTE, recorder)
    return service


def recorder_of(service: Any) -> CallRecorder | None:
    return getattr(service, RECORDER_ATTRIBUTE, None)


def _redacted_message(redactor: Redactor, message: dict[str, Any]) -> dict[str, Any]:
    clean = dict(message, content=redactor.text(message.get("content") or ""))
    if "tool_calls" in message:
        clean["tool_calls"] = redactor.value(message["tool_calls"])
    return clean


def _start(recorder: CallRecorder, service: Any, chat_history: Any, settings: Any, *, streamed: bool) -> _Call | None:
    """The request, copied before it is sent; None (and a warning) if it cannot be read: the call goes on."""
    try:
        return _Call(service, chat_history, settings, streamed=streamed)
    except Exception as exc:
        recorder.failed(exc)
        return None


def _stopped(exc: BaseException) -> str:
    if isinstance(exc, GeneratorExit):
        return "the caller stopped reading the stream"
    return f"{type(exc).__name__}: {exc}".strip()


class _Call:
    """A request as sent (copied before the model answers: the history grows afterwards), then its answer."""

    def __init__(self, service: Any, chat_history: Any, settings: Any, *, streamed: bool) -> None:
        self.started_at = time.time()
        self.clock = time.perf_counter()
        self.ended = self.clock
        self.service = str(getattr(service, "service_id", "") or "")
        self.model = str(getattr(settings, "ai_model_id", None) or getattr(service, "ai_model_id", "") or "")
        # The history grows after this request (answers, function results): its messages as they are now. They
        # are read into the record on the writer thread; a message already in a history is not changed.
        self.history = list(getattr(chat_history, "messages", []))
        self.settings = _settings(settings)
        self.streamed = streamed
        self.functions = [{"name": f.name, "arguments": f.arguments} for f in current_functions()]
        self.conversation = current_conversation()

    def stop(self) -> None:
        """The answer is in (the record itself is built later, on the writer thread)."""
        self.ended = time.perf_counter()

    def _record(self, answer: str, **fields: Any) -> CallRecord:
        return CallRecord(
            started_at=self.started_at,
            service=self.service,
            model=self.model,
            messages=_messages(self.history),
            settings=self.settings,
            answer=answer,
            latency_ms=(self.ended - self.clock) * 1000,
            streamed=self.streamed,
            functions=self.functions,
            conversation=self.conversation,
            **fields,
        )

    def answered(self, message: Any) -> CallRecord:
        if message is None:
            return self._record("", error="the service returned no answer")
        prompt_tokens, completion_tokens = _usage(getattr(message, "metadata", None))
        return self._record(
            str(getattr(message, "content", "") or ""),
            tool_calls=_tool_calls(getattr(message, "items", [])),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=_finish(message),
        )

    def failed(self, exc: BaseException) -> CallRecord:
        return self._record("", error=f"{type(exc).__name__}: {exc}".strip())

    def _joined(self, chunks: list[Any]) -> Any:
        """The chunks added up as semantic-kernel adds them (function-call arguments joined), or None."""
        from functools import reduce

        if not chunks:
            return None
        try:
            return reduce(lambda a, b: a + b, chunks)
        except Exception:  # chunks semantic-kernel will not add (mixed models): the text is still there
            return None

    def stream_record(self, chunks: list[Any], error: str | None = None) -> CallRecord:
        whole = self._joined(chunks)
        text = "".join(str(getattr(c, "content", "") or "") for c in chunks)
        prompt_tokens = completion_tokens = None
        finish = None
        for chunk in chunks:
            found = _usage(getattr(chunk, "metadata", None))
            if found != (None, None):
                prompt_tokens, completion_tokens = found
            finish = _finish(chunk) or finish
        items = getattr(whole, "items", []) if whole is not None else []
        return self._record(
            text,
            tool_calls=_tool_calls(items),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish,
            error=error,
        )


def _messages(history: list[Any]) -> list[dict[str, Any]]:
    from semantic_kernel.contents import FunctionCallContent, FunctionResultContent

    messages: list[dict[str, Any]] = []
    for message in history:
        entry: dict[str, Any] = {"role": str(getattr(message.role, "value", message.role)), "content": ""}
        entry["content"] = str(message.content or "")
        calls = [i for i in message.items if isinstance(i, FunctionCallContent)]
        if calls:
            entry["tool_calls"] = _tool_calls(calls)
        results = [i for i in message.items if isinstance(i, FunctionResultContent)]
        if results:
            entry["name"] = results[0].name.replace("-", ".") if results[0].name else None
            entry["content"] = entry["content"] or "\n".join(str(r.result) for r in results)
        messages.append(entry)
    return messages


def _tool_calls(items: Any) -> list[dict[str, Any]]:
    from semantic_kernel.contents import FunctionCallContent

    return [
        {"name": (item.name or "").replace("-", "."), "arguments": item.arguments}
        for item in items or []
        if isinstance(item, FunctionCallContent)
    ]


SETTINGS_LEFT_OUT = {"function_choice_behavior", "extension_data", "service_id"}


def _settings(settings: Any) -> dict[str, Any]:
    """The request's settings as JSON: the typed fields that are set, the config's extras, the functions offered."""
    from kernel_app.providers.call_log.context import json_ready

    try:
        fields = settings.model_dump(exclude_none=True, exclude=SETTINGS_LEFT_OUT)
        values: dict[str, Any] = {**json_ready(getattr(settings, "extension_data", {}) or {}), **json_ready(fields)}
        behavior = getattr(settings, "function_choice_behavior", None)
        if behavior is not None:
            offered = (getattr(behavior, "filters", None) or {}).get("included_functions")
            values["function_choice"] = str(getattr(behavior, "type_", "") or "auto")
            if offered:
                values["functions_offered"] = [str(name).replace("-", ".") for name in offered]
        values.pop("tools", None)  # the full schemas of the functions offered: their names above say enough
        return values
    except Exception as exc:  # settings of an unusual type: say so rather than fail the call
        return {"unreadable": f"{type(exc).__name__}: {exc}"}


def _usage(metadata: Any) -> tuple[int | None, int | None]:
    usage = metadata.get("usage") if isinstance(metadata, dict) else None
    if usage is None:
        return None, None
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    return (int(prompt) if prompt is not None else None, int(completion) if completion is not None else None)


def _finish(message: Any) -> str | None:
    reason = getattr(message, "finish_reason", None)
    return str(getattr(reason, "value", reason)) if reason is not None else None
