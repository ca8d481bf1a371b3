"""``kernel-app memory ...``: an interface over the memories/ store."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from kernel_app.base.errors import UsageError
from kernel_app.interfaces.cli.context import AppContext


def _store(app: AppContext) -> Any:
    from memories.backend import open_store

    return open_store(app.settings.memory_dir, database_url=app.settings.database_url)


def _scalar(value: str) -> str | int | float | bool:
    """--meta/--where values: numbers and booleans are typed, so ranges and equality behave."""
    if value in ("true", "false"):
        return value == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _pairs(pairs: tuple[str, ...], option: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {pair!r}: expected KEY=VALUE, e.g. {option} source=notes.md")
        result[key.strip()] = _scalar(value)
    return result


@click.group()
def memory() -> None:
    """Save, search and ingest into the persistent memory store (--memory-dir / KERNEL_APP_MEMORY_DIR)."""


@memory.command("save")
@click.argument("collection")
@click.argument("text")
@click.option("--id", "record_id", default=None, help="Record id (default: generated); an existing id is replaced.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata; repeatable.")
@click.pass_obj
def save(app: AppContext, collection: str, text: str, record_id: str | None, meta: tuple[str, ...]) -> None:
    """Save TEXT (or - for stdin) into COLLECTION; prints the record id."""
    if text == "-":
        text = sys.stdin.read()
    with _store(app) as store:
        click.echo(store.save(collection, text, id=record_id, metadata=_pairs(meta, "--meta")))


@memory.command("search")
@click.argument("collection")
@click.argument("query")
@click.option("--limit", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--min-relevance", type=click.FloatRange(-1, 1), default=0.0, show_default=True)
@click.option("--where", multiple=True, metavar="KEY=VALUE", help="Metadata equality filter; repeatable.")
@click.option("--mmr", type=click.FloatRange(0, 1), default=None, help="Diversity weight (maximal marginal relevance).")
@click.option("--json", "as_json", is_flag=True, help='Print [{"id", "text", "relevance", "metadata"}], best first.')
@click.pass_obj
def search(
    app: AppContext,
    collection: str,
    query: str,
    limit: int,
    min_relevance: float,
    where: tuple[str, ...],
    mmr: float | None,
    as_json: bool,
) -> None:
    """Find the records of COLLECTION most similar to QUERY."""
    with _store(app) as store:
        hits = store.search(
            collection, query, limit=limit, min_relevance=min_relevance, where=_pairs(where, "--where") or None, mmr=mmr
        )
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": h.record.id,
                        "text": h.record.text,
                        "relevance": round(h.relevance, 4),
                        "metadata": h.record.metadata,
                    }
                    for h in hits
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    for hit in hits:
        click.echo(f"{hit.relevance:.3f}  {hit.record.id}  {hit.record.text[:100].replace(chr(10), ' ')}")
    if not hits:
        click.echo("no records pass the relevance floor", err=True)


@memory.command("ingest")
@click.argument("collection")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--chunk-size", type=click.IntRange(100, 20000), default=800, show_default=True)
@click.option("--overlap", type=click.IntRange(0, 5000), default=100, show_default=True)
@click.pass_obj
def ingest(app: AppContext, collection: str, paths: tuple[Path, ...], chunk_size: int, overlap: int) -> None:
    """Ingest .txt, .md and .pdf files (directories recursively); unchanged files are skipped.

    Each file passes the content screen first (content_safety): one with a flagged part is not ingested,
    and the reason is said."""
    from memories.ingest import ingest as ingest_files
    from memories.ingest import iter_files

    files = list(iter_files(paths))
    refused = asyncio.run(_refused(app, files, chunk_size, overlap))
    files = [path for path in files if path not in refused]
    with _store(app) as store, click.progressbar(length=len(files), label="ingesting", file=sys.stderr) as bar:
        report = ingest_files(
            store,
            collection,
            files,
            chunk_size=chunk_size,
            overlap=overlap,
            progress=lambda _path, done, _total: bar.update(done - bar.pos),
        )
    report.failed += [(path, f"refused by content safety ({v.category}): {v.reason}") for path, v in refused.items()]
    for path, why in report.failed:
        click.echo(f"{path}: not ingested: {why}", err=True)
    click.echo(
        f"{report.added} file(s) stored as {report.chunks} chunk(s), {report.skipped_unchanged} unchanged, "
        f"{len(report.failed)} failed"
    )
    if report.failed:
        raise SystemExit(1)


async def _refused(app: AppContext, files: list[Path], chunk_size: int, overlap: int) -> dict[Path, Any]:
    """The files the content screen refuses, with its verdicts."""
    from kernel_app.kernel.screening import flagged_document
    from kernel_app.providers.content_safety import create_screen

    screen = create_screen(app.settings)
    refused: dict[Path, Any] = {}
    try:
        for path in files:
            found = await flagged_document(screen, path, chunk_size=chunk_size, overlap=overlap)
            if found.flagged:
                refused[path] = found
    finally:
        if screen is not None:
            await screen.aclose()
    return refused


@memory.command("delete")
@click.argument("collection")
@click.argument("ids", nargs=-1, required=True)
@click.pass_obj
def delete(app: AppContext, collection: str, ids: tuple[str, ...]) -> None:
    """Delete records by id."""
    with _store(app) as store:
        click.echo(f"{store.delete(collection, list(ids))} record(s) deleted")


@memory.command("list")
@click.argument("collection", required=False)
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
@click.pass_obj
def list_records(app: AppContext, collection: str | None, limit: int) -> None:
    """List collections, or the records of COLLECTION."""
    with _store(app) as store:
        if collection is None:
            for info in store.collections():
                click.echo(f"{info.name}  {store.count(info.name)} record(s)")
            return
        for record in store.list(collection, limit=limit):
            click.echo(f"{record.id}  {record.text[:100].replace(chr(10), ' ')}")


@memory.command("stats")
@click.pass_obj
def stats(app: AppContext) -> None:
    """Backend (local or postgresql), location, collections, sizes and index kinds as JSON."""
    with _store(app) as store:
        click.echo(json.dumps(store.stats(), indent=2, default=str))


@memory.command("drop")
@click.argument("collection")
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.pass_obj
def drop(app: AppContext, collection: str, yes: bool) -> None:
    """Delete a whole collection."""
    if not yes and not click.confirm(f"Drop collection {collection}?", default=False, err=True):
        raise SystemExit(1)
    with _store(app) as store:
        click.echo(f"{store.drop(collection)} record(s) dropped")


@memory.command("repair")
@click.pass_obj
def repair(app: AppContext) -> None:
    """Rebuild indexes from the records; salvage a damaged database."""
    from memories.repair import repair_store
    from memories.store import default_store_dir

    if app.settings.database_url:
        with _store(app) as store:
            store.repair()  # a one-line error: repair is for the local files

    click.echo(str(repair_store(app.settings.memory_dir or default_store_dir())))


@memory.command("reembed")
@click.argument("collection")
@click.pass_obj
def reembed(app: AppContext, collection: str) -> None:
    """Re-embed COLLECTION with the current embedder."""
    with _store(app) as store:
        click.echo(f"{store.reembed(collection)} record(s) re-embedded")


@memory.command("ask")
@click.argument("collection")
@click.argument("question")
@click.option("--limit", type=click.IntRange(1, 50), default=5, show_default=True, help="Records to answer from.")
@click.option(
    "--min-relevance",
    type=click.FloatRange(-1, 1),
    default=0.2,
    show_default=True,
    help="Records below this relevance are not used; if none pass, no answer is made up.",
)
@click.option("--where", multiple=True, metavar="KEY=VALUE", help="Metadata equality filter; repeatable.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"answer", "grounded", "sources": [{"id", "text", "relevance", "metadata", "cited"}], ...}.',
)
@click.pass_obj
def ask(
    app: AppContext,
    collection: str,
    question: str,
    limit: int,
    min_relevance: float,
    where: tuple[str, ...],
    as_json: bool,
) -> None:
    """Answer QUESTION only from what COLLECTION holds, citing the record ids.

    When no record passes --min-relevance it says so and does not ask the model.

    \b
    Example:
      kernel-app memory ask SWOT "What are the easiest ways to make more money?"
    """
    import asyncio

    from semantic_kernel import Kernel

    from kernel_app.kernel.sourced_answer import answer_with_sources
    from kernel_app.providers import create_chat_service

    kernel = Kernel()
    kernel.add_service(create_chat_service(app.settings))  # a bad key or endpoint fails here, before the search
    if sys.stderr.isatty() and not as_json:
        click.echo(f"searching '{collection}' and answering on {app.settings.service}...", err=True)
    with _store(app) as store:
        result = asyncio.run(
            answer_with_sources(
                kernel,
                store,
                collection,
                question,
                limit=limit,
                min_relevance=min_relevance,
                where=_pairs(where, "--where") or None,
            )
        )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(result.answer)
    if not result.grounded:
        return
    click.echo("\nSources:")
    for hit in result.sources:
        mark = "*" if hit.record.id in result.cited else " "
        click.echo(f" {mark}[{hit.record.id}] {hit.relevance:.2f}  {hit.record.text[:90].replace(chr(10), ' ')}")
    if result.cited:
        click.echo("(* cited in the answer)")
    else:
        click.echo("(the answer cites none of them by id; these are the records it was given)")
    if result.unknown_citations:
        click.echo(
            f"warning: the answer cites {', '.join(result.unknown_citations)}, which are not among the "
            "sources: treat those parts as unsupported",
            err=True,
        )


@memory.command("migrate")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL|DIR",
    help="Where to copy: a postgresql:// URL, or a local store folder.",
)
@click.option("--collection", "collections", multiple=True, metavar="NAME", help="Only this one; repeatable.")
@click.pass_obj
def migrate(app: AppContext, target: str, collections: tuple[str, ...]) -> None:
    """Copy the memory store (the one the settings name) to --to, verifying it; the source is kept.

    \b
    Examples:
      kernel-app memory migrate --to postgresql://kernel@db.example/kernel
      kernel-app --database-url postgresql://kernel@db.example/kernel memory migrate --to ~/memory-backup

    Records already in the target are skipped, so an interrupted copy resumes when run again.
    """
    from memories.backend import open_store
    from memories.copy import copy_store

    is_url = target.split("://", 1)[0].lower() in ("postgresql", "postgres")
    if "://" in target and not is_url:
        raise UsageError(f"--to {target.split('://', 1)[0]}://...: give a postgresql:// URL or a folder")
    with _store(app) as source:
        if (is_url and source.backend == "postgresql" and source.database_url == target) or (
            not is_url and source.backend == "local" and Path(target).expanduser().resolve() == source.path.resolve()
        ):
            raise UsageError("--to names the store being copied: give another database or folder")
        opened = open_store(None, database_url=target) if is_url else open_store(Path(target))
        with opened as destination:

            def progress(name: str, done: int, total: int) -> None:
                click.echo(f"{name}: {done}/{total}", err=True)

            for report in copy_store(source, destination, collections=collections or None, progress=progress):
                click.echo(str(report))
