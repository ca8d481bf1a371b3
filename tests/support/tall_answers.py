"""Long streamed answers for the REPL's screen tests, and what a terminal must not show after them."""

from __future__ import annotations

import re
from collections import Counter

QUADRANTS = ("Strengths", "Weaknesses", "Opportunities", "Threats")


def tall_swot(points: int) -> str:
    """Four markdown tables of ``points`` rows, with reasons long enough to wrap in 80 columns."""
    blocks = []
    for quadrant in QUADRANTS:
        rows = [
            f"| {quadrant[:4]} point {n} | a reason that is long enough to need more than one line in a narrow "
            f"window, number {n} |"
            for n in range(1, points + 1)
        ]
        blocks.append(f"### {quadrant}\n\n| Point | Why it matters |\n|---|---|\n" + "\n".join(rows))
    return "\n\n".join(blocks)


def raw_markdown(lines: list[str]) -> list[str]:
    """Lines of the streamed draft left on the terminal: markdown source, not its rendering."""
    return [line for line in lines if line.lstrip().startswith(("|", "### ")) or "---|" in line]


def words(text: str) -> Counter[str]:
    """The words of ``text`` and how often each comes, without markdown's or a table's marks: an answer's
    rendering has the words of its markdown, each as often; a piece of the draft left behind adds some."""
    return Counter(re.findall(r"\w+", text))
