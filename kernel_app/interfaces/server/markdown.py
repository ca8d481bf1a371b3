"""The command layer's listings and errors as markdown, for the chat surfaces (Teams, chat-copilot).

Both show markdown: a single newline is no line break there and space-aligned columns collapse, so the
terminal's ``/help``, ``/functions`` and ``/results`` (their listings' ``text()``) read as one run-on
paragraph. Here each command, each function under its plugin and each result is a list item, and
command syntax is inline code.
Words with markdown's emphasis characters (``max_tokens``, ``my_plugin.do_it``) become inline code too,
so an error or a description reads as it was written, not half in italics.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kernel_app.commands.listing import Command, FunctionListing, HelpListing, Listing, ResultsListing

# A word (up to brackets and punctuation that end it) holding a character markdown would act on.
_ACTIVE_WORD = re.compile(r"[^\s()\[\],;:!?\"]*[*_~<][^\s()\[\],;:!?\"]*")
_CODE_SPAN = re.compile(r"(`[^`]*`)")


def code(text: str) -> str:
    """``text`` as inline code (a backtick inside takes a double-backtick span)."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def inline(text: str) -> str:
    """``text`` safe to show as markdown: words with emphasis or tag characters as inline code; code
    spans it already has are kept."""
    parts = _CODE_SPAN.split(text)
    return "".join(
        part if index % 2 else _ACTIVE_WORD.sub(lambda word: code(word.group()), part)
        for index, part in enumerate(parts)
    )


def _command(command: Command) -> str:
    aliases = f" (or {', '.join(f'**{alias}**' for alias in command.aliases)})" if command.aliases else ""
    syntax = f" {code(command.syntax)}" if command.syntax else ""
    examples = ", e.g. " + ", ".join(code(example) for example in command.examples) if command.examples else ""
    return f"- **{command.name}**{aliases}{syntax}: {inline(command.about)}{examples}"


def help_markdown(listing: HelpListing) -> str:
    """/help as paragraphs and a list: one item per command, its syntax and examples as code."""
    parts = [inline(listing.intro), "\n".join(_command(command) for command in listing.commands)]
    if listing.note:
        parts.append(inline(listing.note))
    if listing.note_examples:
        parts.append("\n".join(f"- {code(example)}" for example in listing.note_examples))
    return "\n\n".join(parts)


def functions_markdown(listing: FunctionListing) -> str:
    """/functions as one list per plugin, under the plugin's name."""
    if not listing.plugins:
        return "No functions are loaded."
    parts = [f"The functions {code('/run Plugin.Function')} takes, by plugin:"]
    for group in listing.plugins:
        parts.append(f"**{group.plugin}**")
        parts.append(
            "\n".join(
                f"- {code(function.name)}" + (f": {inline(function.about)}" if function.about else "")
                for function in group.functions
            )
        )
    return "\n\n".join(parts)


def results_markdown(listing: ResultsListing) -> str:
    """/results as a list: each name as code, the start of its text after it."""
    if not listing.results:
        return inline(listing.EMPTY)
    return "\n".join(f"- {code(result.name)}: {inline(result.preview)}" for result in listing.results)


def listing_markdown(listing: Listing) -> str:
    from kernel_app.commands.listing import FunctionListing, HelpListing

    if isinstance(listing, HelpListing):
        return help_markdown(listing)
    if isinstance(listing, FunctionListing):
        return functions_markdown(listing)
    return results_markdown(listing)
