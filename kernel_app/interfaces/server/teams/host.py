"""What the Teams agent's parts need from the agent that holds them.

The plan cards (:mod:`.plans`) and the call cards (:mod:`.calls`) are objects of their own, each given
its store and a host: the server's state, the Agents SDK adapter (for proactive turns), each Teams
conversation's lock (a card's work waits for the conversation's turn in progress), the conversation's
chat session if one is live (its ``$last``), and a way to run work in the background.
:class:`kernel_app.interfaces.server.teams.agent.TeamsAgent` is the host.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio

    from kernel_app.commands.dispatch import ChatSession
    from kernel_app.interfaces.server.state import ServerState


class TeamsHost(Protocol):
    state: ServerState
    adapter: Any  # the SDK's CloudAdapter: continue_conversation_with_claims for proactive turns

    def lock(self, teams_id: str) -> asyncio.Lock:
        """The Teams conversation's lock: held by its turn in progress."""
        ...

    def live_session(self, teams_id: str) -> ChatSession | None:
        """The conversation's chat session if this server made one (None: nothing to update)."""
        ...

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background, kept referenced until it ends."""
        ...
