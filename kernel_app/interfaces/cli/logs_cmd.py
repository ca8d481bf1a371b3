"""``kernel-app logs``: list, show, export as eval cases and clear the log of model calls."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kernel_app.base.errors import UsageError
from kernel_app.interfaces.cli.context import AppContext

if TYPE_CHECKING:
    from kernel_app.providers.call_log import CallLog, CallRecord

PREVIEW = 100  # characters of the prompt and the answer in the list
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, option: str) -> float:
    """A moment as epoch seconds: a date or date-time (ISO 8601, local time unless it says otherwise) or an
    age such as 30m, 2h, 7d, 1w (that long ago)."""
    text = value.strip()
    match = _RELATIVE.match(text.lower())
    if match:
        return time.time() - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}).total_seconds()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {value!r}: expected a date (2026-12-06), a date and time (2026-12-06T14:30) or an age "
            "(30m, 2h, 7d, 1w)"
        ) from None
    return moment.timestamp()  # a naive date-time is local time, as the list shows it


def _open(app: AppContext) -> CallLog:
    from kernel_app.providers.call_log import open_call_log

    return open_call_log(app.settings)


@click.group(invoke_without_command=True)
@click.option("--function", default=None, metavar="PLUGIN.FUNCTION", help="Calls made by this function (or inside it).")
@click.option("--conversation", default=None, metavar="ID", help="Calls of this conversation.")
@click.option(
    "--since", default=None, metavar="WHEN", help="Calls since a date, date-time or age (2026-12-06, 2h, 7d)."
)
@click.option("--model", default=None, metavar="NAME", help="Calls to this model.")
@click.option("-n", "--limit", type=click.IntRange(0), default=3, show_default=True, help="The newest N calls; 0: all.")
@click.option("--id", "ids", multiple=True, type=int, metavar="ID", help="This call; repeatable (instead of filters).")
@click.option("--json", "as_json", is_flag=True, help="Print the calls as JSON (a list, oldest first; full records).")
@click.option(
    "--to-eval",
    "to_eval",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Write the chosen calls as eval cases to FILE (what the function returned becomes `expected`, its "
    "arguments `vars`).",
)
@click.pass_context
def logs(
    ctx: click.Context,
    function: str | None,
    conversation: str | None,
    since: str | None,
    model: str | None,
    limit: int,
    ids: tuple[int, ...],
    as_json: bool,
    to_eval: Path | None,
) -> None:
    """List the logged model calls, newest last: every call any surface made (run, chat, serve, plan, eval).

    Each call keeps its prompt, settings, answer, tokens, latency, function and conversation; API keys,
    Authorization headers and the database password are never stored. The log is a SQLite file in the
    data folder (--memory-dir), or PostgreSQL when database_url is set. Logging is on by default: turn it
    off with --no-call-log, KERNEL_APP_CALL_LOG=0 or `call_log = false` in the config file.

    \b
    Retention: the log grows until you clear it:
      kernel-app logs clear                       delete every call
      kernel-app logs clear --before 2026-11-01   delete the calls before a date (or an age: --before 30d)

    \b
    Examples:
      kernel-app logs -n 10
      kernel-app logs --function BusinessThinking.SWOT --since 1d --json
      kernel-app logs show 42
      kernel-app logs --function BusinessThinking.SWOT -n 1 --to-eval my-swot.evals.yaml
      kernel-app eval my-swot.evals.yaml
    """
    if ctx.invoked_subcommand is not None:
        return
    from kernel_app.providers.call_log import CallQuery

    app: AppContext = ctx.obj
    query = CallQuery(
        function=function.replace("-", ".") if function else None,
        conversation=conversation,
        since=parse_when(since, "--since") if since else None,
        model=model,
        ids=list(ids) or None,
        limit=None if ids or limit == 0 else limit,
    )
    log = _open(app)
    try:
        records = list(reversed(log.query(query)))  # oldest first: the newest ends up next to the prompt
    finally:
        log.close()
    if ids:
        missing = sorted(set(ids) - {r.id for r in records})
        if missing:
            raise UsageError(f"no logged call #{missing[0]}: list the calls with `kernel-app logs`")
    if to_eval is not None:
        _write_eval(records, function, to_eval)
        return
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in records], indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo("no calls logged" + (" match" if any((function, conversation, since, model)) else ""), err=True)
        return
    for record in records:
        click.echo(_summary(record))


def _write_eval(records: list[CallRecord], function: str | None, path: Path) -> None:
    from kernel_app.kernel.evals.from_calls import eval_file_from_calls

    written = eval_file_from_calls(records, function.replace("-", ".") if function else None)
    try:
        path.write_text(written.text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the eval file: {exc.strerror or exc}") from None
    for reason in written.skipped:
        click.echo(f"left out call {reason}", err=True)
    plural = "s" if written.cases != 1 else ""
    if written.function:
        click.echo(f"wrote {written.cases} case{plural} of {written.function} to {path}: kernel-app eval {path}")
    else:
        click.echo(
            f"wrote {written.cases} case{plural} of several functions to {path}: run it with --function, or choose "
            "the calls of one function (kernel-app logs --function ...)"
        )


@logs.command("show")
@click.argument("call_id", type=int, metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the call as JSON.")
@click.pass_obj
def show(app: AppContext, call_id: int, as_json: bool) -> None:
    """Show call ID in full: the prompt as sent, the settings, the answer."""
    log = _open(app)
    try:
        record = log.get(call_id)
    finally:
        log.close()
    if record is None:
        raise UsageError(f"no logged call #{call_id}: list the calls with `kernel-app logs`")
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(_header(record))
    for frame in record.functions:
        click.echo(f"function: {frame['name']} {json.dumps(frame.get('arguments') or {}, ensure_ascii=False)}")
    click.echo(f"settings: {json.dumps(record.settings, ensure_ascii=False, sort_keys=True)}")
    click.echo("\n## Prompt\n")
    click.echo(record.prompt_text())
    click.echo("\n## Answer\n")
    click.echo(record.answer)
    for call in record.tool_calls:
        click.echo(f"function call: {call['name']} {call.get('arguments') or ''}")
    if record.root_result is not None and record.root_result != record.answer:
        click.echo(f"\n## Result of {record.root_function}\n")
        click.echo(record.root_result)
    if record.error:
        click.echo(f"\nerror: {record.error}")


@logs.command("clear")
@click.option("--before", default=None, metavar="WHEN", help="Only the calls before a date, date-time or age (30d).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting every call.")
@click.pass_obj
def clear(app: AppContext, before: str | None, yes: bool) -> None:
    """Delete logged calls: all of them, or those before --before."""
    moment = parse_when(before, "--before") if before else None
    if moment is None and not yes:
        click.confirm("delete every logged call?", abort=True, err=True)
    log = _open(app)
    try:
        deleted = log.clear(moment)
    finally:
        log.close()
    click.echo(f"deleted {deleted} call{'s' if deleted != 1 else ''}")


def _when(record: CallRecord) -> str:
    return datetime.fromtimestamp(record.started_at).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _header(record: CallRecord) -> str:
    parts = [f"#{record.id}", _when(record), f"{record.service}/{record.model}" if record.service else record.model]
    if record.functions:
        parts.append(" > ".join(f["name"] for f in record.functions))
    if record.conversation:
        parts.append(f"conversation {record.conversation}")
    if record.prompt_tokens is not None or record.completion_tokens is not None:
        parts.append(f"{record.prompt_tokens or 0}+{record.completion_tokens or 0} tokens")
    parts.append(f"{record.latency_ms / 1000:.2f} s" + (" streamed" if record.streamed else ""))
    return "  ".join(parts)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def _summary(record: CallRecord) -> str:
    last_user = next((m for m in reversed(record.messages) if m.get("role") == "user"), None)
    prompt = str((last_user or (record.messages[-1] if record.messages else {})).get("content", ""))
    lines = [_header(record), f"  prompt: {_one_line(prompt)}"]
    answer = record.answer or ", ".join(f"call {c['name']}" for c in record.tool_calls)
    lines.append(f"  answer: {_one_line(answer)}" if not record.error else f"  error: {_one_line(record.error)}")
    return "\n".join(lines)
