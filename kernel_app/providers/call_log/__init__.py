"""The call log: every model call (prompt, settings, answer, tokens, latency, function, conversation).

``create_recorder(settings)`` gives the recorder ``create_chat_service`` attaches to each service it
hands out (``record_calls``); ``open_call_log(settings)`` opens the log for ``kernel-app logs``: the
SQLite file in the data folder (``kernel_app.base.paths.call_log_path``), or PostgreSQL where
``database_url`` is set. On by default; ``call_log = false`` (KERNEL_APP_CALL_LOG=0, --no-call-log)
turns recording off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel_app.base.paths import call_log_path
from kernel_app.providers.call_log.context import (
    FunctionFrame,
    current_conversation,
    current_functions,
    frame,
    in_conversation,
    in_function,
    scoped_stream,
)
from kernel_app.providers.call_log.recorder import CallRecorder
from kernel_app.providers.call_log.records import CallLog, CallQuery, CallRecord
from kernel_app.providers.call_log.redact import REDACTED, Redactor
from kernel_app.providers.call_log.service_calls import record_calls, recorder_of

if TYPE_CHECKING:
    from kernel_app.base.config import Settings

__all__ = [
    "REDACTED",
    "CallLog",
    "CallQuery",
    "CallRecord",
    "CallRecorder",
    "FunctionFrame",
    "Redactor",
    "create_recorder",
    "current_conversation",
    "current_functions",
    "describe_call_log",
    "frame",
    "in_conversation",
    "in_function",
    "open_call_log",
    "record_calls",
    "recorder_of",
    "scoped_stream",
]


def open_call_log(settings: Settings) -> CallLog:
    """The call log the settings name: PostgreSQL with ``database_url``, else the data folder's SQLite file."""
    if settings.database_url:
        from kernel_app.providers.call_log.pg_log import PgCallLog  # psycopg loads only here

        return PgCallLog(settings.database_url)
    from kernel_app.providers.call_log.sqlite_log import SqliteCallLog

    return SqliteCallLog(call_log_path(settings.memory_dir))


def describe_call_log(settings: Settings) -> str:
    """Where the log is, for messages (never the database password)."""
    if settings.database_url:
        from kernel_app.providers.postgres import describe_url

        return f"PostgreSQL at {describe_url(settings.database_url)}"
    return str(call_log_path(settings.memory_dir))


def create_recorder(settings: Settings) -> CallRecorder:
    """A recorder writing to the settings' call log (opened on the first call), redacting this process's secrets."""
    return CallRecorder(
        lambda: open_call_log(settings),
        Redactor.from_environment(settings.database_url),
        where=describe_call_log(settings) if not settings.database_url else "PostgreSQL",
    )
