"""``kernel-app chat``: the REPL (kernel_app.interfaces.repl) over :class:`kernel_app.commands.dispatch.ChatSession`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kernel_app.interfaces.cli.context import AppContext, report_problems
from kernel_app.interfaces.cli.extras import require

if TYPE_CHECKING:
    from kernel_app.commands.dispatch import ChatSession


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--no-stream", is_flag=True, help="Print each answer whole instead of as it is generated.")
@click.option("--plain", is_flag=True, help="Plain text, no markdown rendering or status line (as when piped).")
@click.option(
    "--max-tokens",
    type=click.IntRange(16, 1_000_000),
    default=None,
    help="The longest answer, in tokens [default: a quarter of the model's context, 256 to 4096].",
)
@click.option(
    "--resume",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[ID]",
    help="Continue a stored conversation (the latest without an ID).",
)
@click.option("--list", "list_conversations", is_flag=True, help="List the stored conversations and exit.")
@click.pass_obj
def chat(
    app: AppContext,
    no_stream: bool,
    plain: bool,
    max_tokens: int | None,
    resume: str | None,
    list_conversations: bool,
) -> None:
    """Talk to the model, and run functions, plans and memory questions, in one conversation.

    \b
    Type /help inside for the commands. Lines can also be piped in (the exit code is 1 when a line failed):
      printf '/run Math.add a=2 b=3\\nWhat did I just add?\\n' | kernel-app chat
    Conversations are stored beside the memory store: `--list` shows them, `--resume [ID]` continues one.
    """
    # The conversation store is opened on the kernel's thread (its package imports the engine, ~0.1 s
    # before the prompt), unless it is needed first: to list, or to check the id to resume.
    store: Any = None
    if list_conversations or resume is not None:
        store = _open_store(app)
    if list_conversations:
        _list(store)
        store.close()
        return
    conversation_id = None
    if resume is not None:
        latest = store.latest()
        if not resume and latest is None:
            raise click.UsageError("no stored conversation to resume: start one with `kernel-app chat`")
        conversation_id = resume or (latest.id if latest else None)
        store.get(conversation_id or "")  # an unknown id fails before the model loads

    interactive = sys.stdin.isatty()
    plain = plain or not sys.stdout.isatty()
    # At a terminal the [chat] extra draws the prompt and the answers; checked now, not on the loading thread.
    require("chat", *(["prompt_toolkit"] if interactive else []), *([] if plain else ["rich"]))

    def build() -> ChatSession:
        nonlocal store
        from kernel_app.commands.dispatch import ChatSession
        from kernel_app.providers import create_chat_service

        if store is None:
            store = _open_store(app)

        built = app.build_kernel(with_service=False)
        report_problems(built.report.problems, quiet_warnings=True)
        built.kernel.add_service(create_chat_service(app.settings))  # a bad key fails now, not at the first line

        def service_named(name: str) -> Any:
            from kernel_app.base.constants import SERVICES
            from kernel_app.base.errors import UsageError

            if name not in SERVICES:
                raise UsageError(f"unknown service {name!r}: use one of {', '.join(SERVICES)}")
            # The model setting named the old service's model: the new one takes its own default.
            return create_chat_service(app.settings.replace(service=name, model=None))

        session = ChatSession(built.kernel, store=store, conversation_id=conversation_id, services=service_named)
        if max_tokens is not None:
            session.set_max_tokens(max_tokens)
        return session

    renderer = _renderer(plain)
    if interactive:
        # The prompt first (within a second); semantic-kernel, the plugins and the model load meanwhile,
        # on a thread started once the prompt is drawn (before, it would halve the prompt's share of the
        # GIL). The thread also imports rich, which the first answer renders with.
        from kernel_app.interfaces.repl.startup import StartingSession

        def build_and_warm() -> ChatSession:
            built = build()
            renderer.warm()
            return built

        reader: Any = None
        starting = StartingSession(
            build_and_warm,
            idle=lambda seconds: reader is not None and reader.idle(seconds),
            warn=lambda line: click.echo(line),
            start=False,
        )
        session: Any = starting
        reader = _reader(session, app, interactive, status=starting.status, on_drawn=starting.start)
        renderer.loading = starting.loading
        renderer.info(f"Kernel App chat on {app.settings.service}. /help for commands, /exit or Ctrl-D to leave.")
    else:
        session = build()
        reader = _reader(session, app, interactive)
    if conversation_id is not None:
        click.echo(f"(continuing conversation {conversation_id}: {store.get(conversation_id).message_count} messages)")

    from kernel_app.interfaces.repl.loop import run_repl

    try:
        outcome = run_repl(session, reader, renderer, interactive=interactive, stream=not no_stream)
    finally:
        if store is not None:  # None: /exit came before the kernel's thread opened it
            store.close()
    if interactive:
        renderer.info(f"Bye. {session.usage.total_tokens} tokens in {session.usage.calls} model call(s).")
    if outcome.failed and not interactive:  # a script must be able to tell; a person has seen each error
        lines = ", ".join(str(number) for number, _ in outcome.failed)
        click.echo(f"error: {len(outcome.failed)} line(s) failed: line {lines}", err=True)
        sys.exit(outcome.exit_code)


def _open_store(app: AppContext) -> Any:
    from kernel_app.conversation.store import open_conversation_store

    return open_conversation_store(app.settings.memory_dir, database_url=app.settings.database_url)


def _data_dir(app: AppContext) -> Path:
    """Where the conversation store and the input history live: the memory store's folder."""
    from memories.db import default_store_dir  # not from memories.store, which imports numpy (~0.3 s)

    return Path(app.settings.memory_dir or default_store_dir()).expanduser()


def _reader(session: Any, app: AppContext, interactive: bool, status: Any = None, on_drawn: Any = None) -> Any:
    from kernel_app.interfaces.repl.reader import PipeReader

    if not interactive:
        return PipeReader()
    from kernel_app.interfaces.repl.reader import ChatCompleter, TerminalReader, history_path

    return TerminalReader(
        history_path(_data_dir(app)),
        ChatCompleter(lambda: _functions(session.kernel), lambda: _collections(app), lambda: session.results),
        status=status,
        on_drawn=on_drawn,
    )


def _renderer(plain: bool) -> Any:
    from kernel_app.interfaces.repl.render import PlainRenderer, RichRenderer

    return PlainRenderer() if plain else RichRenderer()


def _functions(kernel: Any) -> dict[str, list[str]]:
    """``Plugin.Function`` → its parameter names (those a person gives: not the injected kernel)."""
    if kernel is None:  # still starting: nothing to complete yet
        return {}
    return {
        f"{m.plugin_name}.{m.name}": [p.name for p in m.parameters if p.include_in_function_choices and p.name]
        for m in kernel.get_full_list_of_function_metadata()
    }


def _collections(app: AppContext) -> list[str]:
    try:
        from memories.backend import open_store

        store = open_store(app.settings.memory_dir, database_url=app.settings.database_url)
        try:
            return [info.name for info in store.collections()]
        finally:
            store.close()
    except Exception:  # completion must never break typing: no store yet, a busy store...
        return []


def _list(store: Any) -> None:
    import datetime

    conversations = store.list(limit=100)
    if not conversations:
        click.echo("no stored conversations yet: start one with `kernel-app chat`")
    for conversation in conversations:
        when = datetime.datetime.fromtimestamp(conversation.updated_at).strftime("%Y-%m-%d %H:%M")
        title = conversation.title or "(untitled)"
        click.echo(f"{conversation.id}  {when}  {conversation.message_count:>4} msgs  {title}")
