"""/help and /functions as data (kernel_app.commands.listing): the terminal's aligned text, unchanged in
shape, and the structure the chat surfaces render as markdown."""

from __future__ import annotations

import re
from pathlib import Path

from kernel_app.base.config import Settings
from kernel_app.commands.dispatch import ChatSession
from kernel_app.commands.listing import (
    ABOUT_COLUMN,
    HELP,
    Command,
    FunctionListing,
    HelpListing,
    Result,
    ResultsListing,
)
from kernel_app.conversation.store import ConversationStore
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion


def make(tmp_path: Path) -> ChatSession:
    kernel = build_kernel(Settings(memory_dir=tmp_path / "memory"), chat_service=ScriptedChatCompletion()).kernel
    return ChatSession(kernel, store=ConversationStore(tmp_path / "conversations.sqlite3"))


async def test_help_at_the_terminal_keeps_its_aligned_columns(tmp_path: Path) -> None:
    reply = await make(tmp_path).handle("/help")
    assert reply.kind == "help" and reply.listing is HELP and reply.text == HELP.text()
    lines = reply.text.splitlines()
    assert lines[0] == "Type a message to talk to the model. Commands:"
    named = [line.split()[0] for line in lines if line.startswith("  /") and not line.startswith(" " * 3)]
    assert named[: len(HELP.commands)] == [command.name for command in HELP.commands]
    for line in lines[1:]:
        if line.startswith("  /") and len(line.split("  ")) > 2:  # name, syntax and about on one line
            assert re.match(rf"^  /\S.{{{ABOUT_COLUMN - 4}}}\S", line) and line[ABOUT_COLUMN - 1] == " ", line
        elif line.startswith(" " * ABOUT_COLUMN):  # a description under a long syntax, or its next example
            assert line[ABOUT_COLUMN] != " ", line
    assert "  /save COLLECTION [text|$NAME]  keep a result" in reply.text  # the column is where it was
    assert " " * ABOUT_COLUMN + "run a function (e.g. /run BusinessThinking.SWOT a bakery > swot," in lines
    assert " " * ABOUT_COLUMN + "/run Writer.Translate language=French Good morning)" in lines
    assert lines[-2:] == [f"  {example}" for example in HELP.note_examples]


def test_a_surface_gets_its_commands_without_the_terminals_own_parts() -> None:
    shown = HELP.offered({"/run", "/new", "/reset", "/exit"})
    assert [command.name for command in shown.commands] == ["/run", "/new", "/exit"]
    run, new, leave = shown.commands
    assert "[--vars FILE]" not in run.syntax and "[--var-json NAME='JSON'] [text]" in run.syntax
    assert new.aliases == ("/reset",) and leave.about == "leave" and leave.aliases == ()  # /quit not offered
    assert HELP.offered({"/run"}).note == HELP.note  # the results note stays


def test_a_command_reads_the_same_in_a_menu_and_in_help() -> None:
    command = Command("/run", "run a function", "NAME", ("/run Math.add a=1 b=2", "/run Time.now"))
    assert command.summary == "Run a function (e.g. /run Math.add a=1 b=2)"
    assert command.text().splitlines() == [
        "  /run NAME                      run a function (e.g. /run Math.add a=1 b=2,",
        " " * ABOUT_COLUMN + "/run Time.now)",
    ]
    assert HelpListing("Hi:", (command,)).text().startswith("Hi:\n  /run NAME")


async def test_functions_are_grouped_by_plugin_in_name_order(tmp_path: Path) -> None:
    reply = await make(tmp_path).handle("/functions")
    listing = reply.listing
    assert isinstance(listing, FunctionListing) and reply.kind == "help"
    plugins = [group.plugin for group in listing.plugins]
    assert plugins == sorted(plugins) and len(plugins) == len(set(plugins)) and "Math" in plugins
    math = next(group for group in listing.plugins if group.plugin == "Math")
    names = [function.name for function in math.functions]
    assert names == sorted(names) and "Math.add" in names
    assert all("\n" not in function.about for group in listing.plugins for function in group.functions)
    # The terminal's form is what it always was: one function a line, its description after two spaces.
    add = next(function for function in math.functions if function.name == "Math.add")
    assert f"  Math.add  {add.about}".rstrip() in reply.text.splitlines()
    assert len(reply.text.splitlines()) == sum(len(group.functions) for group in listing.plugins)


async def test_results_keep_their_terminal_lines_and_carry_their_data(tmp_path: Path) -> None:
    session = make(tmp_path)
    empty = await session.handle("/results")
    assert isinstance(empty.listing, ResultsListing) and empty.listing.results == ()
    assert empty.text == "no results yet: `/run ... > NAME` names one; $last is the latest"
    await session.handle("/run Math.add a=2 b=3 > sum")
    reply = await session.handle("/results")
    assert isinstance(reply.listing, ResultsListing)
    assert reply.listing.results == (Result("$sum", "5"), Result("$last", "5"))  # in the order they were named
    assert reply.text.splitlines() == ["  $sum  5", "  $last  5"]
