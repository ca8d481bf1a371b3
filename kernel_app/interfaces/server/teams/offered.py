"""What Teams offers of the REPL's commands: the one list its ``/help`` and its app manifest's command
menu both come from (:data:`kernel_app.commands.listing.HELP`, filtered to :data:`COMMANDS`), so the
menu a user opens in Teams and ``/help`` name the same commands in the same words.
"""

from __future__ import annotations

from kernel_app.commands.listing import HELP
from kernel_app.interfaces.server.chat_surface import Offered

# The REPL's commands a Teams user may use. Not: /export (writes a file on the server), /history and
# /resume (they reach every stored conversation, other users' too), /set (it changes the engine every
# user shares), /save, /exit.
COMMANDS = frozenset({"/run", "/plan", "/ask", "/reset", "/new", "/help", "/functions", "/results"})
OFFERED = Offered(
    COMMANDS,
    unavailable="{command} is not available in Teams: type /help for the commands here.",
    no_vars="--vars reads a file on the server: in Teams give name=value or --var-json.",
)


def command_menu() -> list[dict[str, str]]:
    """The manifest's command menu: each command /help lists in Teams, its title the command, its
    description /help's words (with the first example)."""
    return [{"title": command.name, "description": command.summary} for command in HELP.offered(COMMANDS).commands]
