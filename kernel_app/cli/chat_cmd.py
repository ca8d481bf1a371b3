"""``kernel-app chat``: the REPL over :class:`kernel_app.chat_session.ChatSession`."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from kernel_app.cli.context import AppContext, report_problems

PROMPT = "you> "


def _read_line(prompt: str, interactive: bool) -> str | None:
    """One line from the user; None at end of input (Ctrl-D, or the end of piped input)."""
    try:
        if interactive:
            return input(prompt)
        line = sys.stdin.readline()
        return line.rstrip("\n") if line else None
    except EOFError:
        return None


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what Ctrl-C left half-run, so the model stops generating (and is free for the next line)
    and the unanswered question leaves the conversation."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--no-stream", is_flag=True, help="Print each answer whole instead of as it is generated.")
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
def chat(app: AppContext, no_stream: bool, resume: str | None, list_conversations: bool) -> None:
    """Talk to the model, and run functions, plans and memory questions, in one conversation.

    \b
    Type /help inside for the commands. Lines can also be piped in:
      printf '/run Math.add 2\\nWhat did I just add?\\n' | kernel-app chat
    Conversations are stored beside the memory store: `--list` shows them, `--resume [ID]` continues one.
    """
    from kernel_app.chat_session import ChatSession
    from kernel_app.conversation.store import ConversationStore, default_store_path

    store = ConversationStore(default_store_path(app.settings.memory_dir))
    if list_conversations:
        _list(store)
        return
    conversation_id = None
    if resume is not None:
        latest = store.latest()
        if not resume and latest is None:
            raise click.UsageError("no stored conversation to resume: start one with `kernel-app chat`")
        conversation_id = resume or (latest.id if latest else None)
        store.get(conversation_id or "")  # an unknown id fails before the model loads

    from kernel_app.services import create_chat_service

    interactive = sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())
    built = app.build_kernel(with_service=False)
    report_problems(built.report.problems, quiet_warnings=True)
    built.kernel.add_service(create_chat_service(app.settings))  # a bad key fails now, not at the first line
    session = ChatSession(built.kernel, store=store, conversation_id=conversation_id)
    if interactive:
        click.echo(f"Kernel App chat on {app.settings.service}. /help for commands, /exit or Ctrl-D to leave.")
    if conversation_id is not None:
        click.echo(f"(continuing conversation {conversation_id}: {store.get(conversation_id).message_count} messages)")

    def confirm(plan_text: str) -> bool:
        click.echo(plan_text)
        answer = _read_line("Run this plan? [y/N] ", interactive)
        if not interactive and answer is not None:
            click.echo(f"Run this plan? [y/N] {answer}")
        return (answer or "").strip().lower() in ("y", "yes")

    def approve(request: Any) -> bool:
        answer = _read_line(f"Allow {request.describe()} ({request.effect})? [y/N] ", interactive)
        if not interactive and answer is not None:
            click.echo(f"Allow {request.describe()} ({request.effect})? [y/N] {answer}")
        return (answer or "").strip().lower() in ("y", "yes")

    def on_event(event: Any) -> None:
        from kernel_app.conversation.events import FunctionCallFinished, FunctionCallStarted

        if isinstance(event, FunctionCallStarted):
            click.echo(f"[running {event.function}]", err=True)
        elif isinstance(event, FunctionCallFinished) and not event.ok:
            click.echo(f"[{event.function}: {event.result}]", err=True)

    def on_chunk(piece: str) -> None:
        click.echo(piece, nl=False)
        sys.stdout.flush()

    loop = asyncio.new_event_loop()
    try:
        while True:
            line = _read_line(PROMPT, interactive)
            if line is None:
                break
            if not interactive:
                click.echo(f"{PROMPT}{line}")
            try:
                reply: Any = loop.run_until_complete(
                    session.handle(
                        line,
                        on_chunk=None if no_stream else on_chunk,
                        confirm=confirm,
                        approve=approve,
                        on_event=on_event,
                    )
                )
            except KeyboardInterrupt:  # Ctrl-C stops this answer, not the session
                _cancel_pending(loop)
                click.echo("\n(interrupted)", err=True)
                continue
            if reply.kind == "exit":
                break
            if reply.is_error:
                click.echo(f"error: {reply.text}", err=True)
            elif reply.streamed:
                click.echo()
            elif reply.text:
                click.echo(reply.text)
    finally:
        loop.close()
        store.close()
    if interactive:
        click.echo(f"Bye. {session.usage.total_tokens} tokens in {session.usage.calls} model call(s).")


def _list(store: Any) -> None:
    import datetime

    conversations = store.list(limit=100)
    if not conversations:
        click.echo("no stored conversations yet: start one with `kernel-app chat`")
    for conversation in conversations:
        when = datetime.datetime.fromtimestamp(conversation.updated_at).strftime("%Y-%m-%d %H:%M")
        title = conversation.title or "(untitled)"
        click.echo(f"{conversation.id}  {when}  {conversation.message_count:>4} msgs  {title}")
