"""chat-copilot's unmodified web app, as a person uses it in a real headless Chromium (Playwright), against one
server on the scripted model: a new chat, a message whose reply streams into the page, a plan approved from
its card, an uploaded document and an answer that cites it, then a reload that finds all of it again.

The model streams its words 0.4 s apart (``Typing``), so the page is seen with half an answer. One server
for the module; each test makes its own chat with the web app's "+" button. A failing test leaves a
screenshot and the page's HTML in ``test-artifacts/`` (tests/support/playwright_browser.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.interfaces.server.app import create_app
from memories import HashingEmbedder
from tests.support import playwright_browser as pw
from tests.support.server import running
from tests.support.tool_scripted import Typing, tools
from tests.support.webapp import web_app

browser = pw.browser  # Playwright's fixtures, by name (tests/support/playwright_browser.py)
page = pw.page

pytestmark = [pytest.mark.e2e, pw.needs_chromium]  # a uvicorn server, the web app's server and a browser

GREETING = "Hello! I am Kernel App"
CHAT_ITEMS = "[aria-label^='Chat list item:']"  # the chats in the list on the left
WAIT_MS = 30_000
NOTES = "# Opening hours\n\nThe Lyon bakery opens at seven every morning and closes at noon on Sunday.\n"


class Served:
    def __init__(self, origin: str, url: str, service: Typing, folder: Path) -> None:
        self.origin, self.url, self.service, self.folder = origin, url, service, folder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("webapp")
    service = Typing(default="(nothing scripted)")
    with web_app() as (origin, point_at):
        settings = Settings(memory_dir=folder / "memory")
        # The page's origin as `serve --cors-origin` gives it.
        app: Any = create_app(
            settings, chat_service=service, embedder=HashingEmbedder(64), cors_origins=[origin], mcp=False
        )
        with running(app) as url:
            point_at(f"{url}/copilot/")
            yield Served(origin, url, service, folder)
        app.state.kernel_app.store.close()


def open_new_chat(page: Any, served: Served) -> None:
    """Open the web app, wait for its hub connection, and start a chat of its own with the "+" button."""
    with page.expect_console_message(lambda m: "connection established" in m.text, timeout=60_000):
        page.goto(served.origin + "/")
    page.get_by_text(GREETING).first.wait_for(timeout=WAIT_MS)
    before = page.locator(CHAT_ITEMS).count()
    page.get_by_test_id("createNewConversationButton").click()
    page.get_by_test_id("addNewBotMenuItem").click()
    page.wait_for_function(
        f"() => document.querySelectorAll({CHAT_ITEMS!r}).length > {before}",
        timeout=WAIT_MS,
    )
    page.get_by_text(GREETING).first.wait_for(timeout=WAIT_MS)


def send(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.keyboard.press("Enter")


def in_order(text: str, *parts: str) -> list[int]:
    """Where each part is in the page's text (each after the one before), so a test can say they are in order."""
    places: list[int] = []
    start = 0
    for part in parts:
        found = text.find(part, start)
        assert found >= 0, f"{part!r} not after {parts[len(places) - 1]!r}" if places else f"{part!r} not shown"
        places.append(found)
        start = found + len(part)
    return places


def below(page: Any, upper: str, lower: str) -> bool:
    """Whether the last element showing ``lower`` is drawn below the one showing ``upper``."""
    top = page.get_by_text(upper, exact=True).last.bounding_box()
    bottom = page.get_by_text(lower, exact=True).last.bounding_box()
    return top is not None and bottom is not None and bottom["y"] > top["y"]


def saved_notes(served: Served) -> list[str]:
    answer = httpx.get(f"{served.url}/v1/memory/notes/records", timeout=10)
    return [record["text"] for record in answer.json()["data"]] if answer.status_code == 200 else []


def test_a_chat_from_its_first_message_to_a_reload(page: Any, served: Served) -> None:
    service = served.service
    open_new_chat(page, served)

    # A message, and its reply streamed into the page word by word.
    service.queue("The first loaves are out by six.")
    send(page, "When is the bread ready?")
    page.wait_for_function(
        "() => document.body.innerText.includes('The first loaves')"
        " && !document.body.innerText.includes('out by six.')",
        timeout=WAIT_MS,
    )  # half of the answer on screen: it streams
    page.get_by_text("The first loaves are out by six.").wait_for(timeout=WAIT_MS)

    # The model's call of a function with an effect waits for approval on a card; approved there, it runs.
    service.queue(tools(("memory-save", {"input": "Opens at seven", "collection": "notes"})), "Saved it.")
    send(page, "Remember that we open at seven")
    proceed = page.get_by_test_id("proceedWithPlanButton")
    proceed.wait_for(timeout=WAIT_MS)
    assert page.get_by_text("memory.save").first.is_visible()
    calls_before = len(service.requests)
    proceed.click()
    page.get_by_text("Plan Executed").wait_for(timeout=WAIT_MS)
    page.get_by_text("Saved it.", exact=True).wait_for(timeout=WAIT_MS)
    assert len(service.requests) == calls_before + 1 and "Opens at seven" in saved_notes(served)  # it ran
    assert below(page, "Plan Executed", "Saved it.")  # the answer below its card, not in a bubble above

    # A document uploaded with the paper clip; the answer from it shows its citation at once, no reload.
    notes = served.folder / "hours.md"
    notes.write_text(NOTES, encoding="utf-8")
    page.set_input_files("input[type=file]", str(notes))
    page.get_by_text("hours.md").first.wait_for(timeout=WAIT_MS)

    def cite(request: Any) -> str:  # the model answers from the note it was given, citing its id
        record_id = re.search(r"\[([^\[\]]+#0)\]", request.prompt).group(1)  # type: ignore[union-attr]
        return f"The bakery opens at seven [{record_id}]."

    service.queue(cite)
    send(page, "When does the Lyon bakery open every morning?")
    page.get_by_text("1 citation").wait_for(timeout=WAIT_MS)
    page.get_by_text("The bakery opens at seven [1].").wait_for(timeout=WAIT_MS)  # the record id, numbered
    assert "#0]" not in page.inner_text("body")
    page.get_by_text("1 citation").click()  # its card: the document's name and the relevance, then the snippet
    card = page.locator(".fui-CardHeader").filter(has_text="Relevance score")
    card.wait_for(timeout=WAIT_MS)
    assert "hours.md" in card.inner_text()
    card.get_by_role("button").click()
    page.get_by_text("opens at seven every morning").first.wait_for(timeout=WAIT_MS)

    # A reload finds the chat and everything in it, in the order it happened.
    page.reload()
    page.get_by_label("Chat list item: When is the bread ready?").click()
    page.get_by_text("The bakery opens at seven [1].").wait_for(timeout=WAIT_MS)
    in_order(
        page.inner_text("body"),
        "When is the bread ready?",
        "The first loaves are out by six.",
        "Remember that we open at seven",
        "Plan Executed",
        "Saved it.",
        "hours.md",
        "When does the Lyon bakery open every morning?",
        "The bakery opens at seven [1].",
        "1 citation",
    )
    assert below(page, "Plan Executed", "Saved it.")
    assert page.get_by_test_id("proceedWithPlanButton").count() == 0  # an approved card stays approved


def test_a_plan_cancelled_from_its_card_runs_nothing(page: Any, served: Served) -> None:
    service = served.service
    open_new_chat(page, served)
    service.queue(tools(("memory-save", {"input": "Closes at noon", "collection": "notes"})), "(never said)")
    send(page, "Remember that we close at noon on Sunday")
    page.get_by_test_id("cancelPlanButton").click(timeout=WAIT_MS)
    page.get_by_text("Plan Cancelled").wait_for(timeout=WAIT_MS)
    page.get_by_text("No, cancel", exact=True).wait_for(timeout=WAIT_MS)  # the web app's answer for the person
    assert page.get_by_test_id("proceedWithPlanButton").count() == 0
    assert "Closes at noon" not in saved_notes(served)  # the function never ran
