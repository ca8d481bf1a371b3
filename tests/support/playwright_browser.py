"""Playwright for Python on Debian's Chromium: the browser tests' ``page`` fixture.

Playwright downloads its own browser builds by default; here it launches the ``chromium-headless-shell``
that ``.ci/run`` installs from Debian's packages (or the one ``KERNEL_APP_CHROMIUM`` names), so no browser
is ever fetched. A test that fails leaves a full-page screenshot and the page's HTML in
``KERNEL_APP_TEST_ARTIFACTS`` (default ``test-artifacts/`` at the project root, ignored by git) for CI to keep.

Use: take the fixtures by name in a test module (``from tests.support import playwright_browser as pw``,
then ``browser = pw.browser`` and ``page = pw.page``), mark the module ``e2e`` and ``pw.needs_chromium``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT = "/usr/bin/chromium-headless-shell"
INSTALL = "apt-get install --no-install-recommends chromium-headless-shell"


def chromium() -> str | None:
    """The Chromium to run: KERNEL_APP_CHROMIUM, else Debian's headless shell, else a chromium on PATH."""
    named = os.environ.get("KERNEL_APP_CHROMIUM")
    if named:
        return named
    if Path(DEFAULT).exists():
        return DEFAULT
    return shutil.which("chromium-headless-shell") or shutil.which("chromium")


ARTIFACTS = Path(os.environ.get("KERNEL_APP_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")

needs_chromium = pytest.mark.skipif(chromium() is None, reason=f"needs a Chromium: {INSTALL} (.ci/run installs it)")


@pytest.fixture
def browser() -> Iterator[object]:
    """A headless Chromium from Debian's packages, driven by Playwright (one per test: tests run in parallel)."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    assert executable is not None, f"needs a Chromium: {INSTALL}"
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page (its own context: no cookies or storage shared between tests), kept on failure."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    opened = context.new_page()
    try:
        yield opened
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            keep_failure(opened, request.node.nodeid)
        context.close()


def keep_failure(page: object, nodeid: str) -> None:
    """Save a screenshot and the HTML of ``page`` under ARTIFACTS, named after the test."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-150:]
    try:
        page.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)  # type: ignore[attr-defined]
        (ARTIFACTS / f"{stem}.html").write_text(page.content(), encoding="utf-8")  # type: ignore[attr-defined]
    except Exception as error:  # a crashed page: say so rather than hide the test's own failure
        (ARTIFACTS / f"{stem}.txt").write_text(f"no screenshot: {error}\n", encoding="utf-8")
