"""The web page's markdown, rendered on the server: tables, headings, lists and code as HTML; raw HTML
from a model as text; only http(s) links; no images."""

from __future__ import annotations

import pytest

from kernel_app.interfaces.server.web.render import render_markdown


def test_tables_headings_lists_code_and_emphasis_render() -> None:
    html = render_markdown(
        "### Strengths\n\n| Point | Why it matters |\n|---|---|\n| Fresh bread | Queues at 8 |\n\n"
        "- one\n- two\n\n1. first\n\n```python\nprint('hi')\n```\n\nSome **bold**, *italic* and `code`."
    )
    assert "<h3>Strengths</h3>" in html
    assert "<th>Point</th>" in html and "<td>Fresh bread</td>" in html
    assert "<ul>\n<li>one</li>" in html and "<ol>\n<li>first</li>" in html
    assert "<pre><code class=\"language-python\">print('hi')\n</code></pre>" in html.replace("&#x27;", "'")
    assert "<strong>bold</strong>" in html and "<em>italic</em>" in html and "<code>code</code>" in html


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "<iframe src='https://example.com'></iframe>",
        '<a href="javascript:alert(1)">x</a>',
        "| a |\n|---|\n| <svg onload=alert(1)> |",
        "<div>\n\n*inside*\n\n</div>",
    ],
)
def test_raw_html_is_shown_as_text(hostile: str) -> None:
    html = render_markdown(hostile)
    assert "<script" not in html and "<img" not in html and "<iframe" not in html and "<svg" not in html
    assert "<div" not in html and '<a href="javascript' not in html
    assert "&lt;" in html  # what the model wrote is still there, as text


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:x",
        "file:///etc/passwd",
        "/v1/conversations",
        "ftp://host/file",
    ],
)
def test_only_http_links_become_links(link: str) -> None:
    html = render_markdown(f"[click]({link}) <{link}>")
    assert "<a " not in html


def test_http_links_open_without_the_referrer() -> None:
    html = render_markdown("[docs](https://example.com/a?b=1) and <http://example.org>")
    assert '<a href="https://example.com/a?b=1" rel="noopener noreferrer nofollow">docs</a>' in html
    assert '<a href="http://example.org" rel="noopener noreferrer nofollow">http://example.org</a>' in html


def test_images_are_not_rendered_so_nothing_is_fetched() -> None:
    html = render_markdown("![tracker](https://198.51.100.1/pixel.png)")
    assert "<img" not in html
    assert '<a href="https://198.51.100.1/pixel.png"' in html  # a link the user may follow, not a fetch


def test_a_column_is_aligned_by_class_not_by_style() -> None:
    html = render_markdown("| item | price |\n|:--|--:|\n| bread | 1.20 |")
    assert '<th class="align-left">item</th>' in html and '<td class="align-right">1.20</td>' in html
    assert "style=" not in html  # the page's content security policy refuses inline styles
