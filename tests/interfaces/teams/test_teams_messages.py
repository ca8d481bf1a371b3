"""Teams at POST /api/messages on a real uvicorn server on 127.0.0.1, through the Agents SDK.

Real activities go in over HTTP; a fake connector on 127.0.0.1 (the activities' ``serviceUrl``)
records what the agent sends back. The model is the scripted service; the kernel, engine, store and
the SDK's adapter, JWT check and streaming all run for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.conversation import ConversationStore
from kernel_app.interfaces.server.teams import check_teams_bind, teams_config
from kernel_app.interfaces.server.teams.links import TeamsLinks
from tests.support.server import make_app, running
from tests.support.teams import FakeConnector, activity, card_click, fake_connector, post, teams_app
from tests.support.tool_scripted import ToolScripted, Typing, tools


@pytest.fixture
def connector() -> Iterator[FakeConnector]:
    with fake_connector() as connector:
        yield connector


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted]]:
    service = ToolScripted()
    with running(teams_app(tmp_path, service)) as url:
        yield url, service


def test_a_personal_message_streams_an_informative_update_the_text_and_a_final_message(
    tmp_path: Path, connector: FakeConnector
) -> None:
    service = Typing()
    service.queue(tools(("Math-add", {"a": 110, "b": 990})), "The sum of them is 1100.")
    incoming = activity(connector, "What is 110 plus 990?")
    with running(teams_app(tmp_path, service)) as url:
        response = post(url, incoming)
    assert response.status_code == 202
    sent = connector.take()
    kinds = [(s.type, (s.stream or {}).get("streamType")) for s in sent]
    # Never silent: the first thing sent is "Thinking…", then what runs.
    assert kinds[0] == ("typing", "informative") and sent[0].text == "Thinking…"
    informative = [s.text for s in sent if (s.stream or {}).get("streamType") == "informative"]
    assert informative == ["Thinking…", "Running Math.add…"]
    assert ("typing", "streaming") in kinds and kinds[-1] == ("message", "final")
    assert sent[-1].text == "The sum of them is 1100."
    # The first send opens the stream; every later one carries its id; all reply to the user's message.
    stream_id = "sent-1"
    assert all((s.stream or {}).get("streamId") == stream_id for s in sent[1:])
    assert all(s.method == "POST" and s.path.endswith(f"/conv-1/activities/{incoming['id']}") for s in sent)
    streamed = [s.text for s in sent if (s.stream or {}).get("streamType") == "streaming"]
    assert streamed and all("The sum of them is 1100.".startswith(text.strip()) for text in streamed)  # cumulative
    assert service.tool_results[-1] == ["1100"]  # the function really ran, through the engine


def test_a_group_chat_answers_only_when_mentioned_in_one_message_without_the_mention(
    served: tuple[str, ToolScripted], connector: FakeConnector
) -> None:
    url, service = served
    group: dict[str, Any] = {"conversation": "19:group@thread.v2", "kind": "groupChat"}
    assert post(url, activity(connector, "lunch at noon?", **group)).status_code == 202
    assert connector.take() == [] and service.requests == []  # not for us: no answer, no model call
    service.queue("Hello, team.")
    mention = {
        "type": "mention",
        "mentioned": {"id": "28:kernel-app", "name": "Kernel App"},
        "text": "<at>Kernel App</at>",
    }
    said = activity(connector, "<at>Kernel App</at> say hello", entities=[mention], **group)
    assert post(url, said).status_code == 202
    sent = connector.take()
    messages = [s for s in sent if s.type == "message"]
    assert len(messages) == 1 and messages[0].text == "Hello, team." and messages[0].stream is None
    assert all(s.stream is None for s in sent)  # no streaming in groups
    assert service.requests[-1].messages[-1]["content"] == "say hello"  # the mention was stripped


def test_expect_replies_answers_in_the_body_and_sends_nothing(
    served: tuple[str, ToolScripted], connector: FakeConnector
) -> None:
    url, service = served
    service.queue("Buffered answer.")
    response = post(url, activity(connector, "hello", deliveryMode="expectReplies"))
    assert response.status_code == 200
    replies = response.json()["activities"]
    assert [r["text"] for r in replies if r["type"] == "message"] == ["Buffered answer."]
    assert connector.take() == []


def test_a_malformed_activity_is_a_400_and_stores_nothing(
    tmp_path: Path, connector: FakeConnector, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    service = ToolScripted(default="never asked")
    good = activity(connector, "hello")
    unanswerable = [  # valid to the SDK, but a reply has nowhere to go or no one asked
        {k: v for k, v in good.items() if k != "serviceUrl"},
        {**good, "serviceUrl": "not a url"},
        {k: v for k, v in good.items() if k != "from"},
        {k: v for k, v in good.items() if k != "recipient"},
    ]
    bodies = [
        b"{not json",
        b"[1, 2]",
        b'{"type": "message", "text": "no conversation"}',
        b'{"type": 5, "conversation": {"id": "conv-x"}}',
        json.dumps({**good, "conversation": {"conversationType": "personal"}}).encode(),
        *(json.dumps(body).encode() for body in unanswerable),
    ]
    with running(teams_app(tmp_path, service)) as url:
        for body in bodies:
            response = httpx.post(
                f"{url}/api/messages", content=body, headers={"content-type": "application/json"}, timeout=30
            )
            assert response.status_code == 400, body
            error = response.json()["error"]
            assert error.startswith(("the body is not an activity", "the activity")) and "\n" not in error
        # A button of a card that is not ours (an old one, another app's): a short answer, not a 501.
        foreign = card_click(connector, "orderPizza", "plan_x", "sent-1")
        response = post(url, foreign)
        assert response.status_code == 200 and "not one I know" in response.json()["value"]
    # The client's mistake is its 400, not an error with a traceback in the server's log.
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info], caplog.text
    assert ConversationStore(tmp_path / "memory" / "conversations.sqlite3").list() == []
    assert service.requests == [] and connector.take() == []


def test_a_bogus_bearer_token_is_a_401(served: tuple[str, ToolScripted], connector: FakeConnector) -> None:
    url, service = served
    response = post(url, activity(connector, "hello"), Authorization="Bearer not-a-real-token")
    assert response.status_code == 401
    assert service.requests == [] and connector.take() == []


def test_with_credentials_a_request_without_a_token_is_a_401_and_other_routes_keep_their_keys(
    tmp_path: Path, connector: FakeConnector
) -> None:
    app_id = "00000000-aaaa-bbbb-cccc-000000000000"
    config = teams_config({"CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID": app_id})
    keys = ["k" * 20]
    with running(make_app(tmp_path, ToolScripted(), teams=config, api_keys=keys)) as url:
        assert post(url, activity(connector, "hello")).status_code == 401
        # The API key is not a Teams token, and the Teams route does not open the rest of the API.
        assert post(url, activity(connector, "hello"), Authorization=f"Bearer {keys[0]}").status_code == 401
        assert httpx.get(f"{url}/v1/functions").status_code == 401
        assert httpx.get(f"{url}/v1/functions", headers={"Authorization": f"Bearer {keys[0]}"}).status_code == 200
    assert connector.take() == []


def test_anonymous_mode_is_refused_beyond_loopback() -> None:
    from kernel_app.base.errors import ConfigError

    anonymous = teams_config({}, anonymous=True)
    check_teams_bind("127.0.0.1", anonymous)
    with pytest.raises(ConfigError, match=r"unauthenticated Teams requests on 0\.0\.0\.0"):
        check_teams_bind("0.0.0.0", anonymous)
    from_env = teams_config({"CONNECTIONS__SERVICE_CONNECTION__SETTINGS__ANONYMOUS_ALLOWED": "true"})
    with pytest.raises(ConfigError):
        check_teams_bind("10.1.2.3", from_env)
    assert teams_config({}) is None  # not configured: not served


def test_a_restart_keeps_the_teams_conversation(tmp_path: Path, connector: FakeConnector) -> None:
    first = ToolScripted()
    first.queue("Noted: your bakery is in Lyon.")
    with running(teams_app(tmp_path, first)) as url:
        assert post(url, activity(connector, "My bakery is in Lyon.", channel="test")).status_code == 202
    second = ToolScripted()
    second.queue("In Lyon.")
    with running(teams_app(tmp_path, second)) as url:
        assert post(url, activity(connector, "Where is my bakery?", channel="test")).status_code == 202
    assert "My bakery is in Lyon." in second.requests[-1].prompt
    assert "Noted: your bakery is in Lyon." in second.requests[-1].prompt
    sent = [s for s in connector.take() if s.type == "message"]
    assert [s.text for s in sent] == ["Noted: your bakery is in Lyon.", "In Lyon."]
    conversation = TeamsLinks.beside(tmp_path / "memory" / "conversations.sqlite3").get("conv-1")
    store = ConversationStore(tmp_path / "memory" / "conversations.sqlite3")
    assert [m.content for m in store.messages(conversation or "")][-1] == "In Lyon."


def test_a_model_failure_is_one_friendly_sentence_and_the_conversation_goes_on(
    served: tuple[str, ToolScripted], connector: FakeConnector
) -> None:
    url, service = served

    def broken(_request: Any) -> str:
        raise RuntimeError("upstream exploded\nTraceback (most recent call last): ...")

    service.queue(broken, "Fine again.")
    assert post(url, activity(connector, "hello", channel="test")).status_code == 202
    assert post(url, activity(connector, "hello again", channel="test")).status_code == 202
    texts = [s.text for s in connector.take() if s.type == "message"]
    assert len(texts) == 2 and texts[1] == "Fine again."
    assert texts[0].startswith("Sorry, that did not work: ") and "upstream exploded" in texts[0]
    assert "\n" not in texts[0] and "Traceback" not in texts[0]


def test_a_reply_that_cannot_be_delivered_does_not_stop_the_conversation(
    served: tuple[str, ToolScripted], connector: FakeConnector
) -> None:
    import socket

    url, service = served
    with socket.socket() as closed:  # a port nothing listens on once closed
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    service.queue("Lost answer.", "Delivered answer.")
    lost = post(url, activity(connector, "hello", channel="test", serviceUrl=dead))
    assert lost.status_code in (202, 500)
    assert post(url, activity(connector, "hello again", channel="test")).status_code == 202
    assert [s.text for s in connector.take() if s.type == "message"] == ["Delivered answer."]


def test_a_slow_answer_that_keeps_streaming_outlives_the_deadline(tmp_path: Path, connector: FakeConnector) -> None:
    service = Typing()  # a word every 0.4 s: 8 words take 3.2 s, three times the 1 s deadline
    answer = "A bakery that keeps writing is not stuck at all."
    service.queue(answer)
    with running(teams_app(tmp_path, service, request_timeout=1.0)) as url:
        assert post(url, activity(connector, "Tell me slowly")).status_code == 202
    final = [s for s in connector.take() if s.type == "message"]
    assert [s.text for s in final] == [answer]  # whole: the deadline restarts with each piece it renders
