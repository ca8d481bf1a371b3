"""The web page at / in a real browser (Playwright on Debian's Chromium) against the server on the
scripted model: chat streamed and rendered, an approval, a plan edited then approved, a function run
from its form, a document uploaded and cited, model HTML kept inert, API keys, and axe on every view."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support import playwright_browser
from tests.support.server import SUM_PLAN, make_app, running, saved_notes
from tests.support.tool_scripted import Stepwise, ToolScripted, tools

pytestmark = [pytest.mark.e2e, playwright_browser.needs_chromium]  # a browser and the app served on loopback
browser = playwright_browser.browser  # the fixtures, by name (tests/support/playwright_browser.py)
page = playwright_browser.page

SWOT_TABLE = (
    "### Strengths\n\n| Point | Why it matters |\n|---|---|\n| Fresh bread | People come every morning |\n"
    "| Old recipes | Nobody else has them |\n\nA **short** summary."
)


class Streaming(ToolScripted):
    """Streams its words a little apart, as a model does, so the page sees the answer arrive in pieces."""

    async def _inner_get_streaming_chat_message_contents(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        async for chunk in super()._inner_get_streaming_chat_message_contents(*args, **kwargs):
            await asyncio.sleep(0.05)
            yield chunk


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ToolScripted]]:
    service = Streaming()
    with running(make_app(tmp_path, service)) as url:
        yield url, service


def opened(tab: Any, url: str, fragment: str = "") -> Any:
    tab.goto(f"{url}/{fragment}")
    tab.wait_for_selector("body[data-ready='true']")
    return tab


def say(tab: Any, text: str) -> None:
    tab.get_by_label("Message", exact=True).fill(text)
    tab.get_by_label("Message", exact=True).press("Enter")


def console_errors(tab: Any) -> list[str]:
    """What the page logs as errors from now on (a script error, a refusal of the content policy)."""
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def answered(tab: Any) -> Any:
    """The last answer, once it is whole and rendered."""
    tab.wait_for_selector(".message.assistant[data-done='true']")
    return tab.locator(".message.assistant .rendered").last


def serious_violations(tab: Any) -> list[str]:
    """What axe-core finds serious or critical on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(tab)
    return [
        f"{violation['id']}: {violation['help']} ({len(violation['nodes'])} nodes)"
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


def test_a_chat_streams_and_renders_a_table_and_is_in_the_store(served: tuple[str, ToolScripted], page: Any) -> None:
    url, service = served
    service.queue(SWOT_TABLE.replace("|---|---|", "|:--|--:|"))  # aligned columns too
    errors = console_errors(page)
    opened(page, url)
    assert serious_violations(page) == []
    say(page, "SWOT of a bakery")
    answer = answered(page)
    assert answer.locator("th").all_inner_texts() == ["Point", "Why it matters"]
    assert answer.locator("td").first.inner_text() == "Fresh bread"
    assert answer.locator("h3").inner_text() == "Strengths" and answer.locator("strong").inner_text() == "short"
    assert "|" not in answer.inner_text() and "###" not in answer.inner_text()  # no raw markdown left
    assert service.requests[-1].streaming is True
    # The conversation is the engine's: REST lists it, and the page lists it with its title.
    listed = httpx.get(f"{url}/v1/conversations").json()["data"]
    assert [c["title"] for c in listed] == ["SWOT of a bakery"]
    page.get_by_role("link", name="SWOT of a bakery").wait_for()
    assert page.url.endswith(f"#chat/{listed[0]['id']}")
    # Saved to memory from the answer, and readable as a record.
    page.get_by_role("button", name="Save to memory").click()
    page.locator(".saved a").click()
    expect(page.locator("#record-text table")).to_contain_text("Fresh bread")
    assert serious_violations(page) == []
    # Resumed after a reload: the stored answer rendered again.
    opened(page, url, f"#chat/{listed[0]['id']}")
    assert answered(page).locator("table").count() == 1
    assert page.locator(".message.user .said").inner_text() == "SWOT of a bakery"
    assert errors == []


def test_the_answer_streams_in_before_it_is_done(served: tuple[str, ToolScripted], page: Any) -> None:
    url, service = served
    service.queue(" ".join(f"word{number}" for number in range(60)))
    opened(page, url)
    say(page, "Talk to me")
    expect(page.locator("#status")).to_have_text("Writing…")
    partial = page.locator(".message.assistant .rendered").inner_text()
    assert partial.startswith("word0") and "word59" not in partial
    assert answered(page).inner_text().strip().endswith("word58 word59")


def test_model_html_never_runs_nor_becomes_markup(served: tuple[str, ToolScripted], page: Any) -> None:
    url, service = served
    hostile = (
        'Look: <script>window.pwned = 1</script> <img src=x onerror="window.pwned = 2"> '
        "[click](javascript:window.pwned=3) ![x](http://198.51.100.1/track.png)\n\n| a |\n|---|\n| <b>bold?</b> |"
    )
    service.queue(hostile)
    errors = console_errors(page)
    opened(page, url)
    say(page, "Say something nasty")
    answer = answered(page)
    assert page.evaluate("window.pwned") is None
    assert answer.locator("script, img, b").count() == 0
    assert (
        answer.locator("a").count() == 1
        and answer.locator("a").get_attribute("href") == "http://198.51.100.1/track.png"
    )
    assert "<script>window.pwned = 1</script>" in answer.inner_text() and "<b>bold?</b>" in answer.inner_text()
    assert "[click](javascript:window.pwned=3)" in answer.inner_text()
    assert errors == []  # nothing tried to load or run and was refused


def test_an_approval_is_answered_with_its_button(served: tuple[str, ToolScripted], page: Any, tmp_path: Path) -> None:
    url, service = served
    save = tools(("memory-save", {"input": "We bake at night", "collection": "notes", "id": "n1"}))
    service.queue(save, "Saved it.")
    opened(page, url)
    say(page, "Remember that we bake at night")
    approve = page.get_by_role("button", name="Approve memory.save")
    approve.wait_for()
    assert page.locator("#status").inner_text() == "memory.save waits for your approval"
    assert 'memory.save(input="We bake at night"' in page.locator(".approval pre").inner_text()
    assert page.evaluate("document.activeElement.textContent") == "Approve memory.save"  # keyboard: Enter approves
    assert serious_violations(page) == []
    page.keyboard.press("Enter")
    page.get_by_text("memory.save finished", exact=True).first.wait_for()
    assert answered(page).inner_text().strip() == "Saved it."
    assert page.locator(".approval .outcome").inner_text() == "Approved."
    assert saved_notes(tmp_path) == ["We bake at night"]


def test_a_denied_call_does_not_run(served: tuple[str, ToolScripted], page: Any, tmp_path: Path) -> None:
    url, service = served
    service.queue(tools(("memory-save", {"input": "Secret", "collection": "notes"})), "I did not save it.")
    opened(page, url)
    say(page, "Save a secret")
    page.get_by_role("button", name="Deny").click()
    assert answered(page).inner_text().strip() == "I did not save it."
    assert page.locator(".note.failed").count() == 1
    assert saved_notes(tmp_path) == []


def test_a_plan_is_edited_then_approved(served: tuple[str, ToolScripted], page: Any) -> None:
    url, service = served
    service.queue(SUM_PLAN)
    opened(page, url)
    say(page, "/plan What is 110 plus 990?")
    b = page.get_by_label("Step 1, Math.add: b")
    b.wait_for()
    assert page.get_by_label("Step 1, Math.add: a").input_value() == "110" and b.input_value() == "990"
    assert serious_violations(page) == []
    b.fill("1000")
    page.get_by_role("button", name="Approve and run").click()
    expect(page.locator(".plan .outcome")).to_have_text("1110")
    plan_id = httpx.get(f"{url}/v1/conversations").json()["data"][0]["id"]
    stored = httpx.get(f"{url}/v1/conversations/{plan_id}").json()["messages"]
    assert [m["content"] for m in stored] == ["(planned and ran: What is 110 plus 990?)", "1110"]


SWOT_PLAN = json.dumps(
    {
        "steps": [
            {"function": "Writer.Summarize", "args": {"input": "We run a small bakery in Lyon."}, "output": "about"},
            {"function": "BusinessThinking.SWOT", "args": {"input": "$about"}, "output": "swot"},
            {
                "function": "BusinessThinking.BasicStrategies",
                "args": {"input": "$about", "strengths": "$swot"},
                "output": "strategies",
            },
        ]
    }
)
SWOT_DRAFT = "\n".join(
    f"{quadrant}:\n" + "\n".join(f"- Point {n} of {quadrant.lower()}: it matters every day." for n in range(3))
    for quadrant in ("Strengths", "Weaknesses", "Opportunities", "Threats")
)
STRATEGIES = "| Strategy | Why |\n|---|---|\n| Open at six | Commuters pass by |"


def test_an_approved_plan_shows_its_steps_one_by_one(tmp_path: Path, page: Any) -> None:
    service = Stepwise(free=1)  # the planning is answered at once; each step's model call when the test says
    service.queue(SWOT_PLAN, "A neighbourhood bakery in Lyon.", SWOT_DRAFT, STRATEGIES)
    with running(make_app(tmp_path, service)) as url:
        errors = console_errors(page)
        opened(page, url)
        say(page, "/plan SWOT and strategies for our bakery")
        first = page.get_by_label("Step 1, Writer.Summarize: input")
        expect(first).to_be_focused()  # the plan's first field: Enter approves it as it stands
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Steps")).to_be_focused()  # where the progress shows
        lines = page.locator(".plan .step-line")
        status = page.locator("#status")
        expect(status).to_have_text("Running step 1 of 3: Writer.Summarize…")
        expect(lines).to_have_count(1)
        expect(lines.nth(0)).to_have_text("Step 1 of 3: Writer.Summarize, running…")
        assert serious_violations(page) == []  # a running step's line, too
        service.allow()
        expect(status).to_have_text("Running step 2 of 3: BusinessThinking.SWOT…")
        expect(lines).to_have_count(2)  # step 3 reads step 2's output: not started yet
        expect(lines.nth(0).locator(".step-state")).to_contain_text("Step 1 of 3: Writer.Summarize, done in ")
        expect(lines.nth(0).locator(".step-output")).to_have_text("A neighbourhood bakery in Lyon.")
        expect(lines.nth(1)).to_have_text("Step 2 of 3: BusinessThinking.SWOT, running…")
        # Opened elsewhere (another tab, or this page reloaded) meanwhile: the steps so far, from the record.
        other = opened(page.context.new_page(), url, f"#chat/{page.url.split('#chat/')[1]}")
        elsewhere = other.locator(".plan .step-line")
        expect(elsewhere).to_have_count(2)
        expect(elsewhere.nth(1)).to_have_text("Step 2 of 3: BusinessThinking.SWOT, running…")
        expect(elsewhere.nth(0).locator(".step-output")).to_have_text("A neighbourhood bakery in Lyon.")
        expect(other.locator(".plan .outcome")).to_have_text("The plan is still running…")
        service.allow()
        expect(status).to_have_text("Running step 3 of 3: BusinessThinking.BasicStrategies…")
        expect(lines).to_have_count(3)
        expect(lines.nth(1).locator(".step-output table")).to_have_count(4)  # the SWOT rendered on the server
        assert "|" not in lines.nth(1).locator(".step-output").inner_text()  # no raw markdown
        service.allow()
        expect(status).to_have_text("The plan is done.")
        expect(page.get_by_label("Message", exact=True)).to_be_focused()  # ready for the next message
        expect(other.locator(".plan .outcome td").first).to_have_text("Open at six")  # it looked again
        expect(elsewhere).to_have_count(3)
        other.close()
        expect(page.locator(".plan .outcome td").first).to_have_text("Open at six")
        expect(lines.nth(2).locator(".step-state")).to_contain_text(", done in ")
        assert lines.nth(2).locator(".step-state").inner_text().endswith(": the result is below")  # shown once
        assert page.get_by_role("button", name="Approve and run").is_disabled()
        assert serious_violations(page) == []
        # Reloaded: the plan's card again, its steps and result from the plan's record.
        conversation = httpx.get(f"{url}/v1/conversations").json()["data"][0]
        assert page.url.endswith(f"#chat/{conversation['id']}")
        page.reload()
        page.wait_for_selector("body[data-ready='true']")
        expect(page.locator(".plan .outcome td").first).to_have_text("Open at six")
        expect(lines).to_have_count(3)
        assert lines.locator(".step-state").all_inner_texts()[1].startswith("Step 2 of 3: BusinessThinking.SWOT, done")
        expect(lines.nth(1).locator(".step-output table")).to_have_count(4)
        assert page.locator(".message").count() == 0  # its "(planned and ran: ...)" messages are the card
        assert serious_violations(page) == []
        assert errors == []


def test_a_failed_step_is_named_and_the_card_fits_a_phone(tmp_path: Path, browser: Any) -> None:
    failing = json.dumps(
        {
            "steps": [
                {"function": "Math.add", "args": {"a": 2, "b": 3}, "output": "sum"},
                {"function": "Math.divide", "args": {"a": "$sum", "b": 0}, "output": "quotient"},
                {"function": "Math.add", "args": {"a": "$quotient", "b": 1}, "output": "more"},
            ]
        }
    )
    context = browser.new_context(viewport={"width": 390, "height": 800}, is_mobile=True)
    with running(make_app(tmp_path, Streaming([failing]))) as url:
        try:
            phone = context.new_page()
            opened(phone, url)
            say(phone, "/plan Five divided by nothing, plus one")
            phone.get_by_role("button", name="Approve and run").click()
            expect(phone.locator("#status")).to_have_text("The plan did not finish.")
            lines = phone.locator(".plan .step-line")
            expect(lines).to_have_count(2)
            assert lines.nth(1).get_attribute("data-state") == "failed"
            assert lines.nth(1).inner_text() == "Step 2 of 3: Math.divide, failed: cannot divide by zero"
            assert "step 2 (Math.divide) failed" in phone.locator(".plan .outcome").inner_text()
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            assert serious_violations(phone) == []
        finally:
            context.close()


def test_a_plan_is_rejected_and_a_bad_edit_is_named(served: tuple[str, ToolScripted], page: Any) -> None:
    url, service = served
    service.queue(SUM_PLAN)
    opened(page, url)
    say(page, "/plan What is 110 plus 990?")
    page.get_by_label("Step 1, Math.add: a").fill("$nowhere")  # an output no step makes
    page.get_by_role("button", name="Approve and run").click()
    expect(page.locator("#notice")).to_contain_text("plan: ")
    assert "nowhere" in page.locator("#notice").inner_text()
    page.get_by_role("button", name="Reject").click()
    page.get_by_text("Plan rejected: nothing ran.").wait_for()
    conversation = httpx.get(f"{url}/v1/conversations").json()["data"][0]
    assert httpx.get(f"{url}/v1/conversations/{conversation['id']}").json()["messages"] == []  # nothing ran


def test_a_function_runs_from_its_generated_form(served: tuple[str, ToolScripted], page: Any) -> None:
    url, service = served
    opened(page, url, "#functions")
    page.get_by_label("Function", exact=True).select_option("Math.add")
    a = page.get_by_label("a (required)")
    a.fill("2")
    page.get_by_label("b (required)").fill("3")
    assert page.locator("#function-about").inner_text().endswith("(native function, effect read)")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Run").click()
    page.get_by_text("Math.add finished.").wait_for()
    assert page.locator("#function-output").inner_text().strip() == "5"
    # A prompt function, as a plugin author tries one: its answer streams and renders.
    service.queue("| Strategy | Why |\n|---|---|\n| Open earlier | Commuters |")
    opened(page, url, "#functions/BusinessThinking.BasicStrategies")
    assert page.get_by_label("threats", exact=True).get_attribute("aria-describedby") == "param-threats-hint"
    page.get_by_label("input (required)").fill("bakery")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#function-output table td").first).to_have_text("Open earlier")
    assert "bakery" in service.requests[-1].prompt
    opened(page, url, "#functions/memory.save")
    assert page.get_by_label("collection", exact=True).input_value() == "default"  # the parameter's default
    opened(page, url, "#functions/Math.divide")
    page.get_by_label("a (required)").fill("1")
    page.get_by_label("b (required)").fill("0")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#function-status")).to_contain_text("Math.divide failed")


def test_a_document_is_uploaded_then_cited(served: tuple[str, ToolScripted], page: Any, tmp_path: Path) -> None:
    url, service = served
    document = tmp_path / "bakery.md"
    document.write_text("# The bakery\n\nOur sourdough rises for 36 hours.\n", encoding="utf-8")
    opened(page, url, "#memory")
    page.get_by_label("Collection", exact=True).fill("docs")
    page.get_by_label("Documents (.txt, .md, .pdf)").set_input_files(str(document))
    assert serious_violations(page) == []
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_contain_text("Saved 1 passage(s) from 1 document(s) in docs")
    assert page.locator("#upload-progress").get_attribute("value") == "100"
    hit = httpx.post(f"{url}/v1/memory/docs/search", json={"query": "sourdough"}).json()["data"][0]
    service.queue(f"It rises for 36 hours [{hit['id']}].")
    page.get_by_label("Question").fill("Our sourdough rises for 36 hours.")
    page.get_by_label("Question").press("Enter")
    source = page.locator("#sources a")
    source.wait_for()
    assert "36 hours" in page.locator("#answer").inner_text()
    assert source.inner_text() == hit["id"] and "cited" in page.locator("#sources li").inner_text()
    assert "#" not in page.locator("#sources .source-about").inner_text()  # its start as words, not markdown
    source.click()
    expect(page.locator("#record-text")).to_contain_text("rises for 36 hours")
    assert "bakery.md" in page.locator("#record-meta").inner_text()
    assert serious_violations(page) == []


def test_a_server_with_api_keys_asks_for_one(tmp_path: Path, page: Any) -> None:
    key = "k" * 24
    service = Streaming(["Hello there."])
    with running(make_app(tmp_path, service, api_keys=[key])) as url:
        assert httpx.get(f"{url}/").status_code == 200 and httpx.get(f"{url}/v1/conversations").status_code == 401
        opened(page, url)
        assert "needs an API key" in page.locator("#sign-in-help").inner_text()
        page.locator("#notice").wait_for()  # the conversation list was refused
        page.get_by_label("API key").fill(key)
        page.get_by_label("API key").press("Enter")
        expect(page.locator("#notice")).to_be_hidden()
        say(page, "Hi")
        assert answered(page).inner_text().strip() == "Hello there."
        assert page.evaluate("sessionStorage.getItem('kernel-app-token')") == key


def test_the_page_fits_a_phone(served: tuple[str, ToolScripted], browser: Any) -> None:
    url, service = served
    service.queue(SWOT_TABLE)
    context = browser.new_context(viewport={"width": 390, "height": 800}, is_mobile=True)
    try:
        phone = context.new_page()
        opened(phone, url)
        say(phone, "SWOT of a bakery")
        answered(phone).locator("table").wait_for()
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert serious_violations(phone) == []
    finally:
        context.close()


def test_the_keyboard_reaches_everything_in_order(served: tuple[str, ToolScripted], page: Any) -> None:
    url, service = served
    service.queue("Hello.")
    opened(page, url)

    def focused() -> str:
        return page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")

    page.keyboard.press("Tab")
    assert focused() == "Skip to content"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # visible focus
    page.keyboard.press("Tab")
    assert focused() == "Chat"  # the views, then the page's own controls
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focused() == "new-conversation"
    page.keyboard.press("Tab")
    assert focused() == "message"
    page.keyboard.type("Hi")
    page.keyboard.press("Shift+Enter")  # a new line, not sent
    page.keyboard.type("there")
    assert page.get_by_label("Message", exact=True).input_value() == "Hi\nthere"
    page.keyboard.press("Enter")
    assert answered(page).inner_text().strip() == "Hello."
    assert focused() == "message"  # ready for the next question
