"""plugins/BusinessThinking/_markdown_tables.py: a markdown text read as its tables and the text around
them, and written back with new rows (ChangeAudience row by row, ShiftDomain table by table)."""

from __future__ import annotations

import pytest

from plugins.BusinessThinking._markdown_tables import (
    Kept,
    Prose,
    Table,
    fitted_rows,
    parse,
    parts,
    render,
    render_plain,
    render_segment,
    rest_from_table,
    with_rows,
)

SWOT = """### Strengths
| Point | Why it matters |
| --- | --- |
| Trained crews | Offices get the same careful team each week. |
| Eco products | Families with children ask for them. |

### Threats
| Point | Why it matters |
| :--- | ---: |
| Rising wages | Cleaners' pay grows faster than what clients will pay. |"""


def test_a_text_with_tables_renders_back_as_it_was() -> None:
    text = "# Plan\n\nAn intro, on\ntwo lines.\n\n" + SWOT + "\n\n- a list\n- after it\n\n---\nThe end."
    document = parse(text)
    assert render(document) == text
    assert "".join(parts(document)) == text
    kinds = [type(segment).__name__ for segment in document.segments]
    assert kinds.count("Table") == 2 and kinds.count("Prose") == 3  # the intro, the list, the last line
    first, second = document.tables
    assert first.heading == "Strengths" and second.heading == "Threats"
    assert first.line_above == "### Strengths" and second.line_above == "### Threats"
    assert first.columns == ["Point", "Why it matters"] and second.separator_line == "| :--- | ---: |"
    assert first.rows[1] == ["Eco products", "Families with children ask for them."]


def test_table_rows_without_outer_pipes_and_with_escaped_pipes() -> None:
    document = parse("a | b\n--- | ---\n| x \\| y | z |")
    assert isinstance(document.segments[0], Prose)  # GitHub's rows without a leading pipe: read as text
    (table,) = parse("| a | b |\n|---|---|\n| x \\| y | z |\nafter").tables
    assert table.rows == [["x \\| y", "z"]]
    assert render_segment(Table("| a |", "| --- |", [["one | two\u200b"]])).endswith("| one \\| two |")


def test_lines_that_only_look_like_a_table_are_prose() -> None:
    document = parse("| not a table |\nno separator under it")
    assert [type(s) for s in document.segments] == [Prose] and not document.tables
    assert [type(s) for s in parse("\n### Heading").segments] == [Kept, Kept]
    assert parse("| a swot |").tables == []


def test_new_rows_keep_the_headings_header_rows_and_text_around_the_tables() -> None:
    text = "Our SWOT:\n\n**Strengths**\n| Point | Why |\n|:--|--:|\n| a | b |\n| c | d |\n\nThat is all."
    document = parse(text)
    (table,) = document.tables
    assert table.rows == [["a", "b"], ["c", "d"]] and table.line_above == "**Strengths**" and table.heading == ""
    shifted = render(with_rows(document, [[("x | y", "z\nw"), ("e", "f")]]))
    assert shifted == (
        "Our SWOT:\n\n**Strengths**\n| Point | Why |\n|:--|--:|\n| x \\| y | z w |\n| e | f |\n\nThat is all."
    )
    with pytest.raises(ValueError, match="2 row lists for 1 tables"):
        with_rows(document, [[], []])


def test_ragged_rows_fit_the_columns_and_render_plainly() -> None:
    (table,) = parse("|A|B|C|\n| :- | - | - |\n| 1 |\n| 1 | 2 | 3 | 4 |").tables
    assert fitted_rows(table) == [("1", "", ""), ("1", "2", "3 / 4")]
    assert render_plain(table) == "| A | B | C |\n| --- | --- | --- |\n| 1 |  |  |\n| 1 | 2 | 3 / 4 |"


def test_each_part_ends_with_a_table_and_the_rest_from_a_table_starts_at_its_heading() -> None:
    text = "Intro.\n\n" + SWOT + "\n\nThe end."
    document = parse(text)
    pieces = parts(document)
    assert len(pieces) == 3 and pieces[0].startswith("Intro.") and pieces[0].endswith("ask for them. |")
    assert pieces[1].startswith("\n\n### Threats") and pieces[2] == "\n\nThe end."
    assert rest_from_table(document, 1) == "\n" + SWOT.split("\n\n")[1] + "\n\nThe end."
    assert rest_from_table(document, 0) == text and rest_from_table(document, 2) == ""
