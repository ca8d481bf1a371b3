"""A conversation store whose ``start_turn`` can be held, to show what the event loop does meanwhile.

``HeldStore(store)`` passes every call through to ``store``. ``hold(conversation_id)`` makes the next
``start_turn`` of that conversation wait (in whatever thread calls it) until :meth:`HeldStore.release`;
``entered`` is set once it waits. ``as_postgresql=True`` makes a SQLite store say it is PostgreSQL's
(``backend``), so that the engine and the server call it as they call PostgreSQL's, off the event loop
(kernel_app.conversation.off_loop), without starting a database. ``ended`` lists the turns ended.

Nothing is timed: a test waits on events. The hold gives up after ``HOLD_S`` only so that code which calls
the store on the event loop (the loop then waits with it) fails the test instead of hanging it; ``gave_up``
says it did.
"""

from __future__ import annotations

import threading
from typing import Any

HOLD_S = 20.0


class HeldStore:
    def __init__(self, store: Any, *, as_postgresql: bool = False) -> None:
        self._store = store
        self._as_postgresql = as_postgresql
        self._held: str | None = None
        self.entered = threading.Event()
        self._released = threading.Event()
        self.gave_up = False
        self.started: list[str] = []  # the turn ids start_turn returned
        self.ended: list[str] = []

    @property
    def backend(self) -> str:
        return "postgresql" if self._as_postgresql else str(self._store.backend)

    def hold(self, conversation_id: str) -> None:
        self._held = conversation_id
        self.entered.clear()
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def start_turn(self, conversation_id: str, said: str, *, owner: str | None = None) -> Any:
        if conversation_id == self._held:
            self._held = None
            self.entered.set()
            self.gave_up = not self._released.wait(HOLD_S)
        started = self._store.start_turn(conversation_id, said, owner=owner)
        self.started.append(started.id)
        return started

    def end_turn(self, turn_id: str) -> None:
        self._store.end_turn(turn_id)
        self.ended.append(turn_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
