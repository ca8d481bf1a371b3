"""Markdown to HTML for the web page, on the server: what the model wrote becomes safe HTML.

markdown-it-py (which rich already brings) with ``html=False``: raw HTML in an answer (``<script>``,
``<img onerror>``) is shown as text, never as markup. Tables, headings, lists, code and emphasis render
as CommonMark and GFM do. Links keep only http(s) targets (a ``javascript:`` or ``data:`` link stays
text) and open without the page's referrer; images are not rendered, since an image in an answer would
make the browser fetch from wherever the model pointed it. A table column's alignment becomes a class
(``align-right``), not a ``style`` attribute, which the page's content security policy would refuse.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt

SAFE_SCHEMES = ("http://", "https://")
LINK_REL = "noopener noreferrer nofollow"


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    md = MarkdownIt("js-default", {"html": False, "linkify": False, "typographer": False})
    md.disable("image")  # ![alt](url) reads as "!" and a link: nothing is fetched by showing an answer
    md.validateLink = _is_safe_link  # pyright: ignore[reportAttributeAccessIssue]  # markdown-it's documented hook
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("th_open", _cell_open)
    md.add_render_rule("td_open", _cell_open)
    return md


def _is_safe_link(url: str) -> bool:
    return url.strip().lower().startswith(SAFE_SCHEMES)


def _link_open(renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    tokens[index].attrSet("rel", LINK_REL)
    return renderer.renderToken(tokens, index, options, env)


def _cell_open(renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    token = tokens[index]
    style = token.attrGet("style") or ""
    if style.startswith("text-align:"):
        token.attrs.pop("style")
        token.attrSet("class", f"align-{style.removeprefix('text-align:')}")
    return renderer.renderToken(tokens, index, options, env)


def render_markdown(text: str) -> str:
    """``text`` (markdown from a model, a function or a user) as HTML safe to put in the page."""
    return _renderer().render(text)
