"""The prompt first, the kernel and the model meanwhile.

Building the kernel (semantic-kernel's import, the plugin folders, the chat service) takes seconds,
and the embedded model's load more: :class:`StartingSession` does both on a thread while the person
already types, and the first line that needs them waits for them. llama.cpp's load holds the GIL for
its whole length (measured: 1.4 s for the tiny tier, 3.4 s for the default, with the file in the page
cache), which would freeze the prompt, so it starts only once nobody has typed for a moment; a line
sent before that loads the model itself, as the first answer always did. For the same reason the
REPL starts the thread only once the prompt is drawn (``start=False``, then :meth:`start`): imports on
two threads share one GIL, and the prompt's own imports would take twice as long.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kernel_app.base.usage import Usage

if TYPE_CHECKING:
    from kernel_app.commands.dispatch import ChatSession, Reply

# Lines that need no kernel: answered at once even while it is being built.
_AT_ONCE = ("/exit", "/quit")
_WAITING = "model to load (when you pause typing)"
IDLE_SECONDS = 1.0  # no key for this long: the person reads or thinks, and a short freeze goes unseen


class StartingSession:
    """A :class:`ChatSession` built on a thread; ``handle`` waits for it (and raises what building raised).

    ``build``: makes the session (imports, plugins, service); ``idle(seconds)``: whether the person has
    not typed for that long (None: load the model at once); ``warn``: one line about a failed start;
    ``start``: begin at once (else at :meth:`start`, e.g. once the prompt is drawn)."""

    def __init__(
        self,
        build: Callable[[], ChatSession],
        *,
        idle: Callable[[float], bool] | None = None,
        warn: Callable[[str], None] | None = None,
        start: bool = True,
    ) -> None:
        self._build = build
        self._idle = idle
        self._warn = warn
        self._session: ChatSession | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._stage = "starting: loading plugins"
        self._model_loading: Callable[[], bool] = lambda: False
        self._answered = False
        self._thread = threading.Thread(target=self._start, name="kernel-app-start", daemon=True)
        self._started = threading.Lock()
        if start:
            self.start()

    def start(self) -> None:
        """Begin building (once; later calls do nothing). A line that needs the session starts it too."""
        if self._started.acquire(blocking=False):
            self._thread.start()

    def _start(self) -> None:
        try:
            self._session = self._build()
        except BaseException as error:  # shown above the prompt now; the next line ends the session with it
            self._error = error
            self._stage = ""
            self._ready.set()
            if self._warn is not None:
                self._warn(f"error: {error}")
            return
        self._ready.set()
        if not self._session.has_model_to_load():  # a hosted service: nothing to wait for, nothing to say
            self._stage = ""
            return
        self._stage = _WAITING
        while self._idle is not None and not self._idle(IDLE_SECONDS):
            time.sleep(0.1)
        self._stage = ""
        self._model_loading = self._session.load_in_background()

    def status(self) -> str:
        """What is still starting, for the line under the prompt ("" once the model is loaded)."""
        if self._stage == _WAITING and self._answered:  # a line got an answer: it loaded the model
            return ""
        if self._stage:
            return self._stage + "..."
        return "loading the model (typing shows when it is done)..." if self._model_loading() else ""

    def loading(self) -> str:
        """What the first answer waits for ("" when nothing), for the status line while it waits."""
        if not self._ready.is_set():
            return "starting: loading plugins and the chat service..."
        if self._session is not None and self._model_loading():
            return "loading the model (once per session)..."
        return ""

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def session(self) -> ChatSession:
        """The built session (blocking until it is); raises what building raised."""
        self.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._session is not None  # nosec: set before _ready
        return self._session

    async def handle(self, line: str, **options: Any) -> Reply:
        if line.strip().lower() in _AT_ONCE:
            from kernel_app.commands.dispatch import Reply

            return Reply("", "exit")
        if not self._ready.is_set():
            import asyncio

            self.start()
            await asyncio.to_thread(self._ready.wait)
        reply = await self.session().handle(line, **options)
        self._answered = True
        return reply

    # What the REPL and the completer read: the built session's, or nothing yet.

    @property
    def usage(self) -> Usage:
        return self._session.usage if self._session is not None else Usage()

    @property
    def results(self) -> dict[str, str]:
        return self._session.results if self._session is not None else {}

    @property
    def kernel(self) -> Any:
        return self._session.kernel if self._session is not None else None

    @property
    def engine(self) -> Any:
        return self.session().engine
