"""Which errors mean "the database is away" (a 503), the log line that repeats at most once per interval, and
the settings of several servers (workers, the turn lease)."""

from __future__ import annotations

import psycopg
import pytest

from kernel_app.base.errors import ConfigError, UsageError
from kernel_app.interfaces.cli.serve_cmd import check_workers
from kernel_app.interfaces.server.app import DEFAULT_TURN_LEASE, turn_lease
from kernel_app.interfaces.server.errors import RepeatLimiter, database_unavailable
from kernel_app.providers.postgres import DatabaseUnavailableError


def test_database_errors_are_recognised_through_their_causes() -> None:
    assert database_unavailable(DatabaseUnavailableError("cannot connect"))
    assert database_unavailable(psycopg.OperationalError("server closed the connection unexpectedly"))
    try:
        try:
            raise psycopg.OperationalError("consuming input failed")
        except psycopg.OperationalError as error:
            raise RuntimeError("the store failed") from error
    except RuntimeError as wrapped:
        assert database_unavailable(wrapped)
    assert not database_unavailable(psycopg.errors.UniqueViolation("duplicate key"))  # the data, not the server
    assert not database_unavailable(ValueError("bad"))


def test_a_repeating_failure_is_logged_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("kernel_app.interfaces.server.errors.time.monotonic", lambda: now[0])
    limiter = RepeatLimiter(30.0)
    assert limiter.should_log()
    assert not limiter.should_log() and not limiter.should_log()
    assert limiter.suppressed == 2
    now[0] += 30.0
    assert limiter.should_log()


def test_several_workers_need_the_database_url() -> None:
    check_workers("postgresql://db/app", 4)
    with pytest.raises(UsageError, match=r"^--workers 3 needs database_url \(--database-url or KERNEL_APP_DATAB"):
        check_workers(None, 3)


def test_the_turn_lease_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERNEL_APP_TURN_LEASE_S", raising=False)
    assert turn_lease() == DEFAULT_TURN_LEASE
    monkeypatch.setenv("KERNEL_APP_TURN_LEASE_S", "2.5")
    assert turn_lease() == 2.5
    for bad in ("soon", "0", "-3", "nan"):
        monkeypatch.setenv("KERNEL_APP_TURN_LEASE_S", bad)
        with pytest.raises(ConfigError, match=r"^KERNEL_APP_TURN_LEASE_S=.*: expected a number of seconds above 0"):
            turn_lease()
