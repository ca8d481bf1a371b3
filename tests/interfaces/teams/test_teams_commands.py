"""The REPL's commands in Teams (/run, /ask, /reset, /help), through ChatSession, on loopback.

Same setup as test_teams_messages: a real uvicorn server, real activities over HTTP, a fake connector
as ``serviceUrl``, the scripted model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_app.conversation import ConversationStore
from kernel_app.interfaces.server.teams.links import TeamsLinks
from tests.support.server import running
from tests.support.teams import FakeConnector, activity, fake_connector, post, teams_app
from tests.support.tool_scripted import Blocking, ToolScripted

pytestmark = pytest.mark.e2e  # the app served by uvicorn on loopback


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted, FakeConnector]]:
    service = ToolScripted()
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        yield url, service, connector


def say(served: tuple[str, ToolScripted, FakeConnector], text: str, channel: str = "test") -> list[str]:
    url, _, connector = served
    assert post(url, activity(connector, text, channel=channel)).status_code == 202
    return [s.text for s in connector.take() if s.type == "message"]


def test_run_streams_its_progress_and_answers_with_the_result(
    served: tuple[str, ToolScripted, FakeConnector],
) -> None:
    url, service, connector = served
    assert post(url, activity(connector, "/run Math.add a=2 b=3")).status_code == 202
    sent = connector.take()
    assert (sent[0].type, sent[0].text, (sent[0].stream or {}).get("streamType")) == (
        "typing",
        "Running Math.add…",
        "informative",
    )
    assert (sent[-1].type, sent[-1].text, (sent[-1].stream or {}).get("streamType")) == ("message", "5", "final")
    assert service.requests == []  # a native function: no model call


def test_help_lists_the_commands_teams_offers_and_only_those(served: tuple[str, ToolScripted, FakeConnector]) -> None:
    (text,) = say(served, "/help")
    for command in ("/run", "/plan", "/ask", "/new", "/help", "/functions", "/results"):
        assert f"- **{command}**" in text
    assert "- **/new** (or **/reset**): " in text  # /reset is /new's other name
    for command in ("/export", "/resume", "/history", "/set", "/exit", "--vars"):
        assert command not in text


def test_help_in_teams_is_a_markdown_list_not_terminal_columns(
    served: tuple[str, ToolScripted, FakeConnector],
) -> None:
    """Teams renders markdown: a single newline is no line break and aligned columns collapse into one
    paragraph, so each command is a list item, paragraphs are apart, and nothing leans on spaces."""
    (text,) = say(served, "/help")
    blocks = text.split("\n\n")
    intro, commands = blocks[0], blocks[1].splitlines()
    assert intro == "Type a message to talk to the model. Commands:"
    assert len(commands) == 7 and all(line.startswith("- **/") for line in commands)
    run = next(line for line in commands if line.startswith("- **/run**"))
    assert run.startswith("- **/run** `Plugin.Function [name=value ...]")  # the syntax is code
    assert "e.g. `/run BusinessThinking.SWOT a bakery > swot`" in run
    # every line outside the list is its own paragraph: no terminal line wrapped into the next
    for block in blocks:
        lines = block.splitlines()
        assert len(lines) == 1 or all(line.startswith("- ") for line in lines), block
    assert not any(line.startswith(" ") or "   " in line for line in text.splitlines())


def test_functions_in_teams_are_listed_by_plugin(served: tuple[str, ToolScripted, FakeConnector]) -> None:
    (text,) = say(served, "/functions")
    blocks = text.split("\n\n")
    assert blocks[0] == "The functions `/run Plugin.Function` takes, by plugin:"
    headings = blocks[1::2]
    assert "**Math**" in headings and all(h.startswith("**") and h.endswith("**") for h in headings)
    math = blocks[blocks.index("**Math**") + 1].splitlines()
    assert all(line.startswith("- `Math.") for line in math)
    assert any(line.startswith("- `Math.add`: ") for line in math)
    assert not any(line.startswith("  ") for line in text.splitlines())


def test_commands_that_reach_the_server_or_other_conversations_are_refused(
    served: tuple[str, ToolScripted, FakeConnector], tmp_path: Path
) -> None:
    target = tmp_path / "leak.md"
    assert say(served, f"/export {target}") == ["/export is not available in Teams: type /help for the commands here."]
    assert not target.exists()
    assert say(served, "/resume 1")[0].startswith("/resume is not available in Teams")
    assert say(served, "/set max_tokens 20")[0].startswith("/set is not available in Teams")
    assert say(served, "/run Math.add --vars /etc/passwd")[0].startswith("--vars reads a file on the server")


def test_reset_starts_a_new_conversation_and_the_old_one_stays_stored(
    served: tuple[str, ToolScripted, FakeConnector], tmp_path: Path
) -> None:
    _, service, _ = served
    service.queue("Noted.", "I do not know your city.")
    links = TeamsLinks.beside(tmp_path / "memory" / "conversations.sqlite3")
    assert say(served, "I live in Lyon.") == ["Noted."]
    before = links.get("conv-1")
    assert say(served, "/reset") == ["A new conversation: the model no longer sees the old one."]
    after = links.get("conv-1")
    assert after and after != before
    assert say(served, "Where do I live?") == ["I do not know your city."]
    assert "Lyon" not in service.requests[-1].prompt
    store = ConversationStore(tmp_path / "memory" / "conversations.sqlite3")
    assert [m.content for m in store.messages(before or "")] == ["I live in Lyon.", "Noted."]


def test_ask_answers_from_memory_saved_with_run(served: tuple[str, ToolScripted, FakeConnector]) -> None:
    _, service, _ = served
    saved = say(served, '/run memory.save collection=SWOT id=opportunity-0 "Late-night delivery brings money"')
    assert len(saved) == 1 and not saved[0].startswith("Sorry")
    service.queue("Deliver late at night [opportunity-0].")
    (answer,) = say(served, "/ask SWOT How could we bring in more money late at night?")
    assert answer == "Deliver late at night [opportunity-0].\n\nSources: [opportunity-0]"
    assert "Late-night delivery" in service.requests[-1].prompt


def test_a_bad_command_is_one_friendly_sentence(served: tuple[str, ToolScripted, FakeConnector]) -> None:
    assert say(served, "/run") == [
        "Sorry, that did not work: usage: /run Plugin.Function [name=value ...] [text], e.g. /run Math.add a=2 b=3"
    ]
    (nowhere,) = say(served, "/run Nowhere.nothing")
    assert nowhere.startswith("Sorry, that did not work: ") and "\n" not in nowhere


def test_the_bot_says_hello_when_it_joins_and_not_when_someone_else_does(
    served: tuple[str, ToolScripted, FakeConnector],
) -> None:
    url, _, connector = served
    joined = activity(connector, type="conversationUpdate", membersAdded=[{"id": "28:kernel-app"}])
    assert post(url, joined).status_code == 202
    (hello,) = connector.take()
    assert hello.type == "message" and "/help" in hello.text
    other = activity(connector, type="conversationUpdate", membersAdded=[{"id": "29:user-2"}])
    assert post(url, other).status_code == 202
    assert connector.take() == []


def test_run_of_a_prompt_function_streams_its_text_in_a_personal_chat(tmp_path: Path) -> None:
    from tests.support.tool_scripted import Typing

    service = Typing()
    poem = "Bonjour, le pain est chaud."
    service.queue(poem)
    with fake_connector() as connector, running(teams_app(tmp_path, service)) as url:
        said = activity(connector, "/run Writer.Translate language=French Good morning, the bread is warm.")
        assert post(url, said).status_code == 202
        sent = connector.take()
    kinds = [(s.type, (s.stream or {}).get("streamType")) for s in sent]
    assert kinds[0] == ("typing", "informative") and sent[0].text == "Running Writer.Translate…"
    assert ("typing", "streaming") in kinds and kinds[-1] == ("message", "final")
    assert sent[-1].text == poem
    assert "Good morning, the bread is warm." in service.requests[0].prompt


def test_with_the_models_queue_full_commands_that_do_not_use_it_still_answer(tmp_path: Path) -> None:
    service = Blocking()
    service.queue("At last.")
    with fake_connector() as connector, running(teams_app(tmp_path, service, concurrency=1, queue=0)) as url:
        busy = threading.Thread(target=post, args=(url, activity(connector, "A long question", channel="test")))
        busy.start()
        try:
            assert service.entered.wait(10)  # the model's one place is taken and none may wait

            def answer(text: str) -> str:
                assert post(url, activity(connector, text, channel="test", conversation="conv-2")).status_code == 202
                (said,) = [s.text for s in connector.take() if s.type == "message" and "/conv-2/" in s.path]
                return said

            assert "- **/plan**" in answer("/help")
            assert "- `Math.add`" in answer("/functions")
            assert answer("/results").startswith("no results yet")
            assert answer("/reset") == "A new conversation: the model no longer sees the old one."
            assert answer("What is new?") == "Sorry, I am busy with other questions: try again in 5 seconds."
            # In the conversation whose turn holds the model, /help answers too: it does not wait for that turn.
            # (Its answer, not the held turn's: settle=False, as the held turn is this conversation's too.)
            assert post(url, activity(connector, "/help", channel="test"), settle=False).status_code == 202
            connector.wait_for(lambda s: s.type == "message" and s.text.startswith("Type a message"))
            (shown,) = [s.text for s in connector.take() if s.type == "message"]
            assert shown.startswith("Type a message")
        finally:
            service.release.set()
            busy.join(30)
        assert "At last." in [s.text for s in connector.take() if s.type == "message"]
    assert len(service.requests) == 1  # only the long question reached the model
