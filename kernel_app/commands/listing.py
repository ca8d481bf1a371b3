"""What ``/help``, ``/functions`` and ``/results`` list, as data; each surface renders it its own way.

The command layer answers ``/help``, ``/functions`` and ``/results`` with a :class:`HelpListing`, a
:class:`FunctionListing` or a :class:`ResultsListing` on the reply (``Reply.listing``). Its ``text()``
is the terminal's form, aligned columns (the reply's ``text``, which the REPL prints); the chat
surfaces render the same data as markdown lists (:mod:`kernel_app.interfaces.server.markdown`), as
Teams and chat-copilot show markdown and turn single newlines and space-aligned columns into one run-on
paragraph. Teams' app manifest takes its command menu from :data:`HELP` too
(:mod:`kernel_app.interfaces.server.teams.offered`), so the menu and ``/help`` list the same commands
in the same words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from semantic_kernel import Kernel

ABOUT_COLUMN = 33  # where the terminal's command descriptions start


@dataclass(frozen=True)
class Command:
    """One slash command as /help lists it.

    ``syntax`` follows the name (the arguments); ``examples`` are whole command lines; ``aliases`` are
    other names that run the same command; ``terminal_only`` are parts of ``syntax`` or ``about`` that
    only a terminal has (``[--vars FILE]`` reads a local file, ``(or Ctrl-D)``), left out elsewhere."""

    name: str
    about: str
    syntax: str = ""
    examples: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    terminal_only: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """The description with its first example, capitalised: a command menu's one line."""
        text = self.about + (f" (e.g. {self.examples[0]})" if self.examples else "")
        return text[:1].upper() + text[1:]

    def without_terminal(self) -> Command:
        syntax, about = self.syntax, self.about
        for part in self.terminal_only:
            syntax = " ".join(syntax.replace(part, " ").split())
            about = " ".join(about.replace(part, " ").split())
        return replace(self, syntax=syntax, about=about, terminal_only=())

    def text(self) -> str:
        """The terminal's lines: the name and syntax, the description in a column (on the next line when
        the syntax reaches it), each further example on a line of its own."""
        head = f"  {self.name} {self.syntax}".rstrip()
        about = self.about
        if self.examples:
            about += " (e.g. " + ",\n".join(self.examples) + ")"
        first, *more = about.split("\n")
        indent = " " * ABOUT_COLUMN
        fits = len(head) <= ABOUT_COLUMN - 2  # else the description starts on the next line
        lines = [head.ljust(ABOUT_COLUMN) + first] if fits else [head, indent + first]
        return "\n".join([*lines, *(indent + line for line in more)])


@dataclass(frozen=True)
class HelpListing:
    """What /help says: a first line, the commands, and a note with example lines after them."""

    intro: str
    commands: tuple[Command, ...]
    note: str = ""  # prose: the terminal wraps it, markdown keeps it one paragraph
    note_examples: tuple[str, ...] = ()

    def offered(self, names: Iterable[str]) -> HelpListing:
        """The listing a surface shows: only the commands (and aliases) in ``names``, without the
        terminal's own parts."""
        wanted = frozenset(names)
        kept = tuple(
            replace(command.without_terminal(), aliases=tuple(a for a in command.aliases if a in wanted))
            for command in self.commands
            if command.name in wanted
        )
        return replace(self, commands=kept)

    def text(self, width: int = 100) -> str:
        """The terminal's form: aligned columns, the note wrapped to ``width``."""
        import textwrap

        lines = [self.intro, *(command.text() for command in self.commands)]
        if self.note:
            lines.extend(textwrap.wrap(self.note, width, break_long_words=False, break_on_hyphens=False))
        lines.extend(f"  {example}" for example in self.note_examples)
        return "\n".join(lines)


@dataclass(frozen=True)
class Function:
    name: str  # Plugin.Function, as /run takes it
    about: str  # the first line of its description ("" when it has none)


@dataclass(frozen=True)
class PluginFunctions:
    plugin: str
    functions: tuple[Function, ...]


@dataclass(frozen=True)
class FunctionListing:
    """What /functions says: the kernel's functions, grouped by plugin, in name order."""

    plugins: tuple[PluginFunctions, ...]

    def text(self) -> str:
        """The terminal's form: one function a line, its description after two spaces."""
        return "\n".join(
            f"  {function.name}  {function.about}".rstrip() for group in self.plugins for function in group.functions
        )


@dataclass(frozen=True)
class Result:
    name: str  # $last, $swot
    preview: str  # its text, shortened to one line


@dataclass(frozen=True)
class ResultsListing:
    """What /results says: the session's named results, each with the start of its text."""

    results: tuple[Result, ...]

    EMPTY = "no results yet: `/run ... > NAME` names one; $last is the latest"

    def text(self) -> str:
        if not self.results:
            return self.EMPTY
        return "\n".join(f"  {result.name}  {result.preview}" for result in self.results)


Listing = HelpListing | FunctionListing | ResultsListing  # what a reply may carry as data


def function_listing(kernel: Kernel) -> FunctionListing:
    """The functions ``kernel`` has, grouped by plugin."""
    groups: dict[str, list[Function]] = {}
    for metadata in sorted(kernel.get_full_list_of_function_metadata(), key=lambda m: (m.plugin_name or "", m.name)):
        about = (metadata.description or "").strip().splitlines()[0:1]
        plugin = metadata.plugin_name or ""
        groups.setdefault(plugin, []).append(Function(f"{plugin}.{metadata.name}", about[0].strip() if about else ""))
    return FunctionListing(tuple(PluginFunctions(plugin, tuple(functions)) for plugin, functions in groups.items()))


HELP = HelpListing(
    "Type a message to talk to the model. Commands:",
    (
        Command(
            "/run",
            "run a function",
            "Plugin.Function [name=value ...] [--var-json NAME='JSON'] [--vars FILE] [text] [> NAME]",
            ("/run BusinessThinking.SWOT a bakery > swot", "/run Writer.Translate language=French Good morning"),
            terminal_only=("[--vars FILE]",),
        ),
        Command(
            "/plan",
            "plan the goal with the plugins, show the numbered plan, ask, then run it",
            "[--planner P] [--exclude PLUGIN[.FUNCTION],...] [--max-functions N] GOAL [> NAME]",
        ),
        Command("/ask", "answer from saved memory, citing record ids", "COLLECTION QUESTION [> NAME]"),
        Command("/save", "keep a result (default: $last) in memory, for /ask later", "COLLECTION [text|$NAME]"),
        Command("/export", "write this conversation as markdown", "FILE.md"),
        Command("/results", "show the named results ($last and those named with > NAME)"),
        Command("/history", "the stored conversations"),
        Command("/resume", "continue a stored conversation (by its /history number or id)", "[N|ID]"),
        Command("/new", "start a new conversation (the old one stays in the store)", aliases=("/reset",)),
        Command("/set", "show or change a setting: max_tokens N, service local|openai|azure", "[NAME VALUE]"),
        Command("/functions", "list the functions you can run"),
        Command("/help", "list the commands"),
        Command("/exit", "leave (or Ctrl-D)", aliases=("/quit",), terminal_only=("(or Ctrl-D)",)),
    ),
    "Results flow: $last is the latest result; `> NAME` after a command keeps it as $NAME, and $NAME in "
    "/run's text or a name=$NAME value passes it on, e.g.",
    (
        '/run BusinessThinking.ShiftDomain domain="cleaning services" $swot > cleaning',
        "/run BusinessThinking.ChangeAudience level=child $cleaning",
    ),
)
