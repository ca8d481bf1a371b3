"""``--report FILE.html``: one self-contained page, parsed back, with everything a model wrote escaped."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from kernel_app.kernel.evals import load_eval_file
from kernel_app.kernel.evals.baseline import compare, load_baseline
from kernel_app.kernel.evals.html_report import html
from kernel_app.kernel.evals.report import to_json
from kernel_app.kernel.evals.runner import run_evals
from tests.support.evals import scripted_target, write_eval

EVAL = """function: Writer.Summarize
cases:
  - description: bread <b>bold</b>
    input: A long text about bread.
    expected: "Bread <em>is</em> good."
    assert:
      - {type: icontains, value: bread}
"""

HOSTILE = "<script>alert('x')</script> & bread"


class Page(HTMLParser):
    """The tags, attributes and text of a page, and the grid's cells by (row, column)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.grid: list[list[str]] = []
        self._in_grid = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table" and dict(attrs).get("id") == "grid":
            self._in_grid = True
        elif self._in_grid and tag == "tr":
            self.grid.append([])
        elif self._in_grid and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_grid = False
        elif self._in_grid and tag in ("td", "th") and self._cell is not None:
            self.grid[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


async def test_the_report_is_self_contained_and_escapes_what_the_model_wrote(tmp_path: Path) -> None:
    eval_file = load_eval_file(write_eval(tmp_path, EVAL))
    before, _ = scripted_target("good", "Cheese.")
    baseline = tmp_path / "before.json"
    baseline.write_text(to_json(await run_evals([eval_file], [before])), encoding="utf-8")
    good, _ = scripted_target("good", HOSTILE)
    bad, _ = scripted_target("bad", "<img src=x onerror=alert(1)> cheese")
    results = await run_evals([eval_file], [good, bad])
    page_text = html(results, comparison=compare(results, load_baseline(baseline), "before.json"))

    page = Page()
    page.feed(page_text)
    tags = [tag for tag, _ in page.tags]
    assert tags[0] == "html" and "style" in tags
    assert not {"script", "img", "b", "em"} & set(tags)  # all of it is text
    assert not [a for _, attrs in page.tags for a in attrs if a in ("src", "href") or a.startswith("on")]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; bread" in page_text
    text = "".join(page.text)
    assert "Bread <em>is</em> good." in text  # the expected answer, shown as written
    assert HOSTILE in text and "<img src=x onerror=alert(1)> cheese" in text  # shown as written

    assert page.grid == [
        ["Function", "Case", "good", "bad"],
        [
            "Writer.Summarize",
            "case-1: bread <b>bold</b>",
            "PASS 1.00",
            "FAIL 0.00 icontains: output does not contain (any case) 'bread'; it begins '<img src=x "
            "onerror=alert(1)> cheese'",
        ],
    ]
    cells = [attrs.get("class") or "" for tag, attrs in page.tags if tag == "td"]
    assert "pass improved" in cells and any(c.startswith("fail") for c in cells)
    assert "1 of 2 runs passed on good, bad." in text
    assert "Compared with before.json: 0 regressed, 1 improved, 1 new" in text
    assert "IMPROVED: Writer.Summarize case-1 on good: FAIL 0.00 -> PASS 1.00" in text
    assert "❌ icontains (0.00): output does not contain (any case) 'bread'" in " ".join(text.split())
