"""Ingestion: reading .txt/.md/.pdf, markdown-aware chunking with overlap, re-ingest skipping and replacing."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from memories import DocumentReadError, HashingEmbedder, MemoryStore, MemoryUsageError
from memories.ingest import chunk_markdown, ingest, iter_files, read_document

LONG_SECTION = " ".join(f"Sentence {i} explains how the dough rests overnight in the cold room." for i in range(40))

MARKDOWN = f"""Opening words before any heading.

# Kitchen

The oven is wood fired.

## Dough

{LONG_SECTION}

## Sauce

San Marzano tomatoes, salt, basil.

```python
# a comment in code, not a heading

print("hello")
```

# Front of house

Orders are taken at the counter.

Deliveries
----------

Bikes within three kilometres.
"""


def write_pdf(path: Path, pages: list[str]) -> None:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    for text in pages:
        page = writer.add_blank_page(612, 792)
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
        content = DecodedStreamObject()
        content.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(content)
    with open(path, "wb") as handle:
        writer.write(handle)


def test_chunks_respect_headings_paragraphs_and_size() -> None:
    chunks = chunk_markdown(MARKDOWN, chunk_size=300, overlap=60)
    headings = [c.heading for c in chunks]
    assert headings[0] == "" and chunks[0].text == "Opening words before any heading."
    assert "Kitchen" in headings and "Kitchen > Sauce" in headings and "Front of house" in headings
    assert headings[-1] == "Front of house > Deliveries"  # a setext (underlined) level-2 heading
    assert headings.count("Kitchen > Dough") >= 8  # the long section is cut into several chunks
    assert all(len(c.text) <= 300 for c in chunks)
    for chunk in chunks:  # positions point into the document
        assert MARKDOWN[chunk.position : chunk.position + len(chunk.text)] == chunk.text
    sauce = next(c for c in chunks if c.heading == "Kitchen > Sauce")
    assert sauce.text.startswith("## Sauce") and "# a comment in code, not a heading" in sauce.text
    assert not any("Orders are taken" in c.text and "San Marzano" in c.text for c in chunks)  # never across headings
    dough = [c for c in chunks if c.heading == "Kitchen > Dough"]
    assert all(c.text.rstrip().endswith(".") for c in dough)  # long paragraphs are cut at sentence ends


def test_consecutive_chunks_overlap_by_whole_words() -> None:
    chunks = [c for c in chunk_markdown(MARKDOWN, chunk_size=300, overlap=60) if c.heading == "Kitchen > Dough"]
    for before, after in itertools.pairwise(chunks):
        shared = MARKDOWN[after.position : before.position + len(before.text)]
        assert 20 <= len(shared) <= 60 and before.text.endswith(shared) and after.text.startswith(shared)
        assert MARKDOWN[after.position - 1].isspace()  # starts on a word boundary
    no_overlap = [c for c in chunk_markdown(MARKDOWN, chunk_size=300, overlap=0) if c.heading == "Kitchen > Dough"]
    for before, after in itertools.pairwise(no_overlap):
        assert after.position >= before.position + len(before.text)


def test_plain_text_keeps_hash_lines_and_bad_sizes_are_refused() -> None:
    [chunk] = chunk_markdown("# not a heading in a .txt\nplain words", headings=False)
    assert chunk.heading == "" and chunk.text.startswith("# not a heading")
    assert chunk_markdown("") == [] and chunk_markdown("\n\n  \n") == []
    with pytest.raises(MemoryUsageError):
        chunk_markdown("x", chunk_size=100, overlap=60)


def test_read_document_kinds_and_failures(tmp_path: Path) -> None:
    write_pdf(tmp_path / "menu.pdf", ["Margherita and marinara.", "Tiramisu for dessert."])
    assert read_document(tmp_path / "menu.pdf") == "Margherita and marinara.\n\nTiramisu for dessert."
    (tmp_path / "notes.txt").write_bytes(b"\xef\xbb\xbfline one\r\nline two")
    assert read_document(tmp_path / "notes.txt") == "line one\nline two"
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    for name, reason in [
        ("latin.txt", "not UTF-8"),
        ("broken.pdf", "unreadable PDF"),
        ("image.png", "unsupported file type"),
        ("missing.md", "No such file"),
    ]:
        with pytest.raises(DocumentReadError, match=reason) as caught:
            read_document(tmp_path / name)
        assert caught.value.path == tmp_path / name


def test_iter_files_recurses_and_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    (tmp_path / "docs" / ".git").mkdir()
    for name in ("docs/a.md", "docs/deep/b.txt", "docs/deep/c.pdf", "docs/skip.png", "docs/.git/d.md", "e.txt"):
        (tmp_path / name).write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path / "docs", tmp_path / "e.txt"])]
    assert found == ["docs/a.md", "docs/deep/b.txt", "docs/deep/c.pdf", "e.txt"]
    assert list(iter_files([tmp_path / "e.txt", tmp_path / "e.txt"])) == [tmp_path / "e.txt"]


def test_ingest_reports_skips_unchanged_and_replaces_changed(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kitchen.md").write_text(MARKDOWN)
    (docs / "hours.txt").write_text("Open every day from noon to eleven.\n\nClosed on the first of January.")
    write_pdf(docs / "menu.pdf", ["Margherita pizza with fresh basil.", "Tiramisu for dessert."])
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    unreadable = docs / "secret.txt"
    unreadable.write_text("no access")
    os.chmod(unreadable, 0)
    progress: list[tuple[str, int, int]] = []
    with MemoryStore(tmp_path / "mem", HashingEmbedder(128)) as store:
        report = ingest(
            store, "docs", [docs], chunk_size=300, overlap=60, progress=lambda p, i, n: progress.append((p.name, i, n))
        )
        failed = {path.name: reason for path, reason in report.failed}
        assert "broken.pdf" in failed
        if os.geteuid() != 0:  # root reads anything
            assert "secret.txt" in failed
        assert report.added == 5 - len(failed) and report.skipped_unchanged == 0
        assert [p[1:] for p in progress] == [(i, 5) for i in range(1, 6)]
        total = store.count("docs")
        assert total == report.chunks > 10

        [hit] = store.search(
            "docs", "margherita pizza basil", limit=1, where={"source": str((docs / "menu.pdf").resolve())}
        )
        assert hit.record.metadata["chunk"] == 0 and hit.record.text.startswith("Margherita pizza")
        sauce = store.search("docs", "San Marzano tomatoes", limit=1)[0].record
        assert sauce.metadata["heading"] == sauce.description == "Kitchen > Sauce"
        assert sauce.id == f"{(docs / 'kitchen.md').resolve()}#{sauce.metadata['chunk']}"
        assert len(sauce.metadata["sha256"]) == 64 and isinstance(sauce.metadata["offset"], int)

        again = ingest(store, "docs", [docs], chunk_size=300, overlap=60)
        assert again.added == 0 and again.skipped_unchanged == 5 - len(failed) and store.count("docs") == total

        (docs / "kitchen.md").write_text("# Kitchen\n\nWe bought a new electric oven.\n")
        changed = ingest(store, "docs", [docs / "kitchen.md"])
        assert changed.added == 1 and changed.chunks == 1
        kitchen = store.list("docs", limit=None, where={"source": str((docs / "kitchen.md").resolve())})
        assert [r.text for r in kitchen] == ["# Kitchen\n\nWe bought a new electric oven."]
        assert store.search("docs", "San Marzano tomatoes", limit=1)[0].record.metadata["source"] != str(
            (docs / "kitchen.md").resolve()
        )
    os.chmod(unreadable, 0o644)
