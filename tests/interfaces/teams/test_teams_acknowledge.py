"""Teams in production (issue 21): a message is acknowledged at once and answered after, once; never silent.

Teams' connector waits 15 seconds for its 202, then delivers the activity again, and the default model
takes a minute a turn. Here the scale is shrunk: the scripted model is slowed to a few seconds a turn and
the client gives up after one second, so a request held for the turn would fail the client's timeout.
What the agent sends arrives at a fake connector on 127.0.0.1 (the activities' ``serviceUrl``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server import create_app
from kernel_app.interfaces.server.teams import teams_config, turns
from kernel_app.interfaces.server.teams.seen import PgSeenActivities, SeenActivities, open_seen
from memories.embedders import HashingEmbedder
from tests.support import postgres as pg_support
from tests.support.server import SUM_PLAN, running
from tests.support.teams import Sent, activity, fake_connector, post, settled, teams_app
from tests.support.tool_scripted import Blocking, Slow, ToolScripted

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

pytestmark = pytest.mark.e2e  # uvicorn on loopback, a fake connector, PostgreSQL for the two-server test

# Scale: Teams' 15 s connector timeout is CLIENT_TIMEOUT here, the default model's minute a turn is MODEL_TURN.
CLIENT_TIMEOUT = 1.0
MODEL_TURN = 5.0


def _messages(sent: list[Sent]) -> list[str]:
    return [s.text for s in sent if s.type == "message"]


def test_a_slow_turn_is_acknowledged_within_the_clients_timeout_and_answered_once(tmp_path: Path) -> None:
    service = Slow(delay=MODEL_TURN)
    service.queue("A bakery near a college does well with late opening hours.")
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        incoming = activity(connector, "How should a bakery in a college town open?")
        began = time.monotonic()
        response = httpx.post(f"{url}/api/messages", json=incoming, timeout=CLIENT_TIMEOUT)  # raises if held
        assert response.status_code == 202 and time.monotonic() - began < CLIENT_TIMEOUT
        # Never silent: the first activity sent is an informative update, within a second.
        first = connector.wait_for(lambda s: True, timeout=CLIENT_TIMEOUT)[0]
        assert first.type == "typing" and (first.stream or {}).get("streamType") == "informative"
        assert first.text == "Thinking…" and first.at - began < 1.0
        connector.wait_for(lambda s: s.type == "message", timeout=MODEL_TURN + 15)
        settled(url)
        sent = connector.take()
    assert _messages(sent) == ["A bakery near a college does well with late opening hours."]
    final = sent[-1]
    assert (final.stream or {}).get("streamType") == "final" and final.path.endswith(f"/activities/{incoming['id']}")
    assert len(service.requests) == 1


def test_the_same_activity_posted_twice_is_answered_once(tmp_path: Path) -> None:
    service = ToolScripted(default="Once.")
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        incoming = activity(connector, "hello", channel="test")
        assert post(url, incoming).status_code == 202
        assert post(url, incoming).status_code == 202  # Teams' retry: acknowledged, not answered
        # The same id in another conversation is another activity (ids are per conversation).
        assert post(url, {**incoming, "conversation": {**incoming["conversation"], "id": "conv-2"}}).status_code == 202
        sent = connector.take()
    assert _messages(sent) == ["Once.", "Once."] and len(service.requests) == 2
    assert [s.path.split("/")[3] for s in sent if s.type == "message"] == ["conv-1", "conv-2"]


def test_a_redelivery_after_a_restart_is_not_answered_again(tmp_path: Path) -> None:
    incoming: dict[str, Any] = {}
    with fake_connector() as connector:
        incoming.update(activity(connector, "hello", channel="test"))
        first = ToolScripted(default="Once.")
        with running(teams_app(tmp_path, first)) as url:
            assert post(url, incoming).status_code == 202
        second = ToolScripted(default="Twice.")
        with running(teams_app(tmp_path, second)) as url:
            assert post(url, incoming).status_code == 202
            assert post(url, {**incoming, "id": "msg-new", "text": "and now?"}).status_code == 202
        sent = connector.take()
    assert _messages(sent) == ["Once.", "Twice."]  # the second server answered only the new message
    assert [r.messages[-1]["content"] for r in second.requests] == ["and now?"]


def test_a_resent_plan_gives_one_plan_card_opened_by_thinking(tmp_path: Path) -> None:
    service = Slow([SUM_PLAN], delay=1.0)
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        incoming = activity(connector, "/plan What is 110 plus 990?")
        began = time.monotonic()
        assert post(url, incoming, settle=False).status_code == 202
        assert post(url, incoming).status_code == 202  # resent after a client timeout
        settled(url)
        sent = connector.take()
    assert sent[0].type == "typing" and sent[0].text == "Thinking…" and sent[0].at - began < 1.0
    assert len([s for s in sent if s.card is not None]) == 1 and len(service.requests) == 1


def test_a_turn_waiting_for_the_models_queue_says_thinking_at_once(tmp_path: Path) -> None:
    service = Blocking(default="Answered.")
    with fake_connector() as connector, running(teams_app(tmp_path, service, concurrency=1, queue=1)) as url:
        assert post(url, activity(connector, "first", channel="test"), settle=False).status_code == 202
        assert service.entered.wait(10)  # the other chat's turn holds the model's one place
        began = time.monotonic()
        assert post(url, activity(connector, "second", conversation="conv-2"), settle=False).status_code == 202
        sent = connector.wait_for(lambda s: "/conv-2/" in s.path, timeout=2.0)
        first = next(s for s in sent if "/conv-2/" in s.path)
        assert first.text == "Thinking…" and first.at - began < 1.0
        service.release.set()
        settled(url)
        sent = connector.take()
    assert sorted(_messages(sent)) == ["Answered.", "Answered."]


def test_a_group_chat_sees_typing_until_its_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turns, "TYPING_EVERY", 0.3)  # Teams' 3 s, shrunk with the model's turn
    service = Slow(["Hello, team."], delay=1.5)
    mention = {"type": "mention", "mentioned": {"id": "28:kernel-app", "name": "Kernel App"}, "text": "<at>Bot</at>"}
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        said = activity(
            connector, "<at>Bot</at> hi", conversation="19:g@thread.v2", kind="groupChat", entities=[mention]
        )
        assert post(url, said).status_code == 202
        time.sleep(1.0)  # nothing more once the answer is sent
        sent = connector.take()
    kinds = [s.type for s in sent]
    assert kinds[-1] == "message" and set(kinds[:-1]) == {"typing"} and len(kinds) >= 4, kinds
    assert sent[0].at < sent[-1].at - 1.0  # the first indicator came well before the answer
    assert all(s.stream is None for s in sent)


def test_a_clean_shutdown_answers_what_it_acknowledged(tmp_path: Path) -> None:
    service = Slow(["Finished before the server stopped."], delay=2.0)
    with fake_connector() as connector:
        with running(teams_app(tmp_path, service)) as url:
            assert post(url, activity(connector, "hello", channel="test"), settle=False).status_code == 202
        # The server is stopped: its lifespan waited for the acknowledged turn.
        assert _messages(connector.take()) == ["Finished before the server stopped."]


def test_a_turn_longer_than_the_shutdown_grace_says_it_was_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kernel_app.interfaces.server.teams import agent

    monkeypatch.setattr(agent, "SHUTDOWN_GRACE", 0.5)  # without a request timeout, the grace is this
    service = Slow(["Never said."], delay=30.0)
    with fake_connector() as connector:
        with running(teams_app(tmp_path, service, request_timeout=None)) as url:
            assert post(url, activity(connector, "hello", channel="test"), settle=False).status_code == 202
            time.sleep(1.0)  # the model has the question (it records it only once it answers)
        assert _messages(connector.take()) == ["Sorry, that was stopped before it finished."]


def test_taken_activities_in_sqlite_hold_across_a_reopen(tmp_path: Path) -> None:
    seen = SeenActivities.beside(tmp_path / "conversations.sqlite3")
    assert seen.first("conv-1", "a") and not seen.first("conv-1", "a") and seen.first("conv-2", "a")
    seen.close()
    again = SeenActivities.beside(tmp_path / "conversations.sqlite3")
    assert not again.first("conv-1", "a") and again.first("conv-1", "b")
    again.close()
    assert isinstance(open_seen(":memory:"), SeenActivities)  # without database_url, SQLite as before


def _take(go: threading.Barrier, won: list[bool], seen: PgSeenActivities, activity_id: str) -> None:
    go.wait()
    won.append(seen.first("conv-1", activity_id))


def test_racing_takes_on_two_postgres_pools_have_one_winner(postgres_url: str) -> None:
    first, second = PgSeenActivities(postgres_url), PgSeenActivities(postgres_url)  # as two servers
    try:
        for round_ in range(20):
            go, won = threading.Barrier(2), []
            threads = [
                threading.Thread(target=_take, args=(go, won, seen, f"msg-{round_}")) for seen in (first, second)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert sorted(won) == [False, True]
    finally:
        first.close()
        second.close()


@contextmanager
def _teams_server(folder: Path, database_url: str, service: ToolScripted) -> Iterator[str]:
    settings = Settings(memory_dir=folder, database_url=database_url)
    app: Any = create_app(
        settings, chat_service=service, embedder=HashingEmbedder(64), teams=teams_config({}, anonymous=True)
    )
    try:
        with running(app) as url:
            yield url
    finally:
        app.state.kernel_app.store.close()


def test_one_activity_delivered_to_two_servers_on_one_postgres_is_answered_once(
    tmp_path: Path, postgres_url: str
) -> None:
    service_a, service_b = ToolScripted(default="From A."), ToolScripted(default="From B.")
    with (
        fake_connector() as connector,
        _teams_server(tmp_path / "a", postgres_url, service_a) as a,
        _teams_server(tmp_path / "b", postgres_url, service_b) as b,
    ):
        for round_ in range(3):
            incoming = activity(connector, f"hello {round_}", channel="test", conversation=f"chat-{round_}")
            go, codes = threading.Barrier(2), []

            def deliver(
                url: str, body: dict[str, Any] = incoming, go: threading.Barrier = go, codes: list[int] = codes
            ) -> None:
                go.wait()
                codes.append(post(url, body).status_code)

            threads = [threading.Thread(target=deliver, args=(url,)) for url in (a, b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert codes == [202, 202]
            assert len(_messages(connector.take())) == 1  # answered once, by whichever server took it
    assert len(service_a.requests) + len(service_b.requests) == 3


class _TeamsLikeClient:
    """Posts as Teams' connector does: gives up after its timeout and delivers the activity once more."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self.answers: list[tuple[int, float]] = []  # per delivery: the status, and how long it took
        self.retries = 0

    def deliver(self, body: dict[str, Any]) -> None:
        for attempt in range(2):
            began = time.monotonic()
            try:
                response = httpx.post(f"{self.url}/api/messages", json=body, timeout=self.timeout)
            except httpx.TimeoutException:
                self.retries += attempt == 0
                continue
            self.answers.append((response.status_code, time.monotonic() - began))
            return


def test_done_when_a_teams_like_client_gets_one_202_thinking_at_once_and_one_answer_each(tmp_path: Path) -> None:
    """The issue's "Done when", scaled down ten times: the model takes 6 s a turn (a minute), the client
    gives up after 1.5 s (Teams' 15 s) and retries once. A free-text question, /run of
    BusinessThinking.SWOT and a /plan each get one 202 at once (no retry), an informative update within a
    second, and one answer (one plan card for the /plan)."""
    service = Slow(["Open late: students study at night.", "S: ... W: ... O: ... T: ...", SUM_PLAN], delay=6.0)
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        client = _TeamsLikeClient(url, timeout=1.5)
        asks = [
            ("How should my bakery open?", "Thinking…"),
            ("/run BusinessThinking.SWOT a bakery in a college town", "Running BusinessThinking.SWOT…"),
            ("/plan What is 110 plus 990?", "Thinking…"),
        ]
        for text, informative in asks:
            incoming = activity(connector, text)
            began = time.monotonic()
            client.deliver(incoming)
            first = connector.wait_for(lambda s: True, timeout=1.5)[0]
            assert first.text == informative and first.at - began < 1.0, first.body
            connector.wait_for(lambda s: s.type == "message", timeout=30)
            settled(url)
            sent = connector.take()
            replies = [s for s in sent if s.type == "message"]
            assert len(replies) == 1 and all(s.path.endswith(f"/activities/{incoming['id']}") for s in sent)
            if text.startswith("/plan"):
                assert replies[0].card is not None and "Math.add" in str(replies[0].card["body"])
        assert client.retries == 0 and [status for status, _ in client.answers] == [202, 202, 202]
        assert all(seconds < 1.0 for _, seconds in client.answers), client.answers
    assert len(service.requests) == 3
