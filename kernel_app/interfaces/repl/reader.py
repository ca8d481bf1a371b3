"""Reading the user's lines: prompt_toolkit on a terminal, plain lines from a pipe.

Both readers join an explicit multi-line block (a line of three double quotes, the lines, another
such line) into one message; on a terminal a paste arrives as one message too (bracketed paste),
and Esc then Enter starts a new line. History persists in the data dir, but answers to
confirmations and lines that look like secrets are never written there.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from prompt_toolkit.completion import Completion
    from prompt_toolkit.document import Document

FENCE = '"""'
HISTORY_FILE = "chat_history"
COMMANDS = (
    "/run", "/plan", "/ask", "/save", "/export", "/results", "/history", "/resume", "/new",
    "/set", "/functions", "/help", "/exit",
)  # fmt: skip
# Keys and passwords typed or pasted by mistake must not land in a file on disk.
_SECRET = re.compile(
    r"(sk-[A-Za-z0-9_-]{16,}|\b(api[_-]?key|password|passwd|secret|token)\b\s*[=:]|Bearer\s+\S{12,})", re.IGNORECASE
)


# What /help adds at a terminal or pipe: typing is this adapter's, not the session's (Teams has its own).
TYPING_HELP = (
    f"Several lines as one message: a line of {FENCE}, the lines, another line of {FENCE} (at a terminal\n"
    "also Esc then Enter for a new line; a paste is one message). Tab completes commands, functions, their\n"
    "parameters, memory collections and $results; Up recalls earlier lines (kept across sessions)."
)


def looks_secret(line: str) -> bool:
    return bool(_SECRET.search(line))


class Reader(Protocol):
    def read(self, prompt: str) -> str | None:
        """The next message (None at the end of input)."""
        ...

    async def ask(self, question: str) -> str | None:
        """An answer to a question (a confirmation), asked while a command runs: not kept in the history."""
        ...

    @property
    def line_number(self) -> int:
        """The input line the last message started on (for "line 3 failed")."""
        ...


class PipeReader:
    """Lines from a pipe or file; a ``\"\"\"`` block is one message."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdin
        self._read = 0
        self.line_number = 0

    def _line(self) -> str | None:
        line = self.stream.readline()
        if not line:
            return None
        self._read += 1
        return line.rstrip("\n").rstrip("\r")

    def read(self, prompt: str) -> str | None:
        line = self._line()
        self.line_number = self._read
        if line is None or line.strip() != FENCE:
            return line
        block: list[str] = []
        while (more := self._line()) is not None and more.strip() != FENCE:
            block.append(more)
        return "\n".join(block)

    async def ask(self, question: str) -> str | None:
        return self._line()


def history_path(data_dir: Path) -> Path:
    return data_dir / HISTORY_FILE


def _history(path: Path) -> Any:
    from prompt_toolkit.history import FileHistory

    class _KeptHistory(FileHistory):
        """FileHistory that leaves secrets out of the file."""

        def store_string(self, string: str) -> None:
            if not looks_secret(string):
                super().store_string(string)

    path.parent.mkdir(parents=True, exist_ok=True)
    return _KeptHistory(str(path))


class TerminalReader:
    """prompt_toolkit line editing: history, completion, bracketed paste, multi-line blocks.

    ``input``/``output``: prompt_toolkit's, for tests (``create_pipe_input``, ``DummyOutput``).
    ``status``: what is starting in the background ("" when nothing), shown under the prompt (above it
    in a terminal that does not report the cursor's position).
    ``on_drawn``: called once, when the first prompt is on the screen."""

    def __init__(
        self,
        history_file: Path | None,
        completer: Any = None,
        *,
        input: Any = None,
        output: Any = None,
        status: Callable[[], str] | None = None,
        on_drawn: Callable[[], None] | None = None,
    ) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory

        history = _history(history_file) if history_file is not None else InMemoryHistory()
        self.line_number = 0
        self._status = status
        self._last_key = 0.0
        self._io = {"input": input, "output": output}
        self._session: Any = PromptSession(
            history=history,
            completer=completer,
            complete_while_typing=False,  # Tab completes; typing stays undisturbed
            key_bindings=_bindings(),
            multiline=False,
            **self._io,
        )
        self._session.default_buffer.on_text_changed += self._typed
        self._on_drawn = on_drawn
        if on_drawn is not None:
            self._session.app.after_render += self._drawn
        # Confirmations get their own session (made at the first question: the prompt need not wait for
        # it): no history, so "y" never comes back with the Up key.
        self._asker: Any = None

    def _drawn(self, _: Any) -> None:
        # Left attached (removing a handler while the event fires would skip the next one): once is enough.
        callback, self._on_drawn = self._on_drawn, None
        if callback is not None:
            callback()

    def _typed(self, _: Any) -> None:
        self._last_key = time.monotonic()

    def idle(self, seconds: float) -> bool:
        """Nothing typed at the prompt for ``seconds`` (and the line is empty): a good time to hold the GIL."""
        return not self._session.default_buffer.text and time.monotonic() - self._last_key >= seconds

    def _toolbar(self) -> Any:
        text = self._status() if self._status is not None else ""
        return [("class:starting", f" {text}")] if text else ""

    def _message(self, prompt: str) -> Callable[[], Any]:
        """The prompt, with the status on a line above it where the toolbar cannot be shown."""

        def message() -> Any:
            text = self._status() if self._status is not None and _no_room_below() else ""
            return [("class:starting", f" {text}\n"), ("", prompt)] if text else prompt

        return message

    def read(self, prompt: str) -> str | None:
        from prompt_toolkit.patch_stdout import patch_stdout
        from prompt_toolkit.styles import Style

        starting = self._status is not None and bool(self._status())
        try:
            # While something starts in the background, a line under the prompt says what; what that
            # thread prints (a plugin problem, a bad key) goes above the prompt instead of through it.
            with patch_stdout(raw=True):
                text = self._session.prompt(
                    self._message(prompt) if starting else prompt,
                    bottom_toolbar=self._toolbar if starting else None,
                    refresh_interval=0.5 if starting else 0,
                    style=Style.from_dict({"bottom-toolbar": "noreverse", "starting": "italic ansibrightblack"}),
                )
        except EOFError:
            return None
        except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line, as in a shell
            return ""
        self.line_number += 1
        stripped = text.strip()
        if stripped.startswith(FENCE) and stripped.endswith(FENCE) and len(stripped) >= 2 * len(FENCE):
            return stripped[len(FENCE) : -len(FENCE)].strip("\n")
        return text

    async def ask(self, question: str) -> str | None:
        # Asked from inside a running command (its event loop is running): the async prompt.
        if self._asker is None:
            from prompt_toolkit import PromptSession

            self._asker = PromptSession(**self._io)
        try:
            return await self._asker.prompt_async(question)
        except EOFError:
            return None


def _no_room_below() -> bool:
    """Whether prompt_toolkit leaves out the bottom toolbar: it draws it only once it knows how many rows
    are under the cursor, which a terminal that never answers the cursor-position request (CPR) never
    tells it. While it still waits for the answer (2 s at most) the toolbar may yet come: not yet."""
    from prompt_toolkit.application import get_app
    from prompt_toolkit.renderer import CPR_Support

    app = get_app()
    if app.is_done:  # the line is sent: what stays on the screen is the prompt and the line alone
        return False
    return app.renderer.cpr_support == CPR_Support.NOT_SUPPORTED and not app.renderer.height_is_known


def _bindings() -> Any:
    """Enter sends, except inside an open \"\"\" block; Esc then Enter always starts a new line."""
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    def open_block(buffer: Any) -> bool:
        text = buffer.text.strip()
        return text.startswith(FENCE) and (len(text) < 2 * len(FENCE) or not text.endswith(FENCE))

    @bindings.add("enter", filter=Condition(lambda: _in_open_block(open_block)))
    def _(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    @bindings.add("escape", "enter")
    def _(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    return bindings


def _in_open_block(open_block: Callable[[Any], bool]) -> bool:
    from prompt_toolkit.application import get_app

    return open_block(get_app().current_buffer)


class ChatCompleter:
    """Completes slash commands, ``Plugin.Function`` names, their parameter names, memory collections
    and ``$`` result names. The sources are callables, read at each completion (a new result or
    collection is offered at once)."""

    def __init__(
        self,
        functions: Callable[[], dict[str, list[str]]],
        collections: Callable[[], Iterable[str]],
        results: Callable[[], Iterable[str]],
    ) -> None:
        self.functions = functions
        self.collections = collections
        self.results = results

    def candidates(self, text: str) -> list[str]:
        """What may replace the last word of ``text`` (the line up to the cursor)."""
        words = text.split(" ")
        word = words[-1]
        if word.startswith("$"):
            return [f"${name}" for name in self.results() if f"${name}".startswith(word)]
        if len(words) == 1:
            return [c for c in COMMANDS if c.startswith(word.lower())] if word.startswith("/") else []
        command = words[0].lower()
        if command == "/run" and len(words) == 2:
            return [name for name in sorted(self.functions()) if name.lower().startswith(word.lower())]
        if command == "/run" and len(words) > 2 and "=" not in word:
            parameters = self.functions().get(words[1], [])
            used = {w.split("=", 1)[0] for w in words[2:-1]}
            return [f"{p}=" for p in parameters if p.startswith(word) and p not in used]
        if command in ("/ask", "/save") and len(words) == 2:
            return [name for name in sorted(self.collections()) if name.lower().startswith(word.lower())]
        if command == "/plan" and word.startswith("--"):
            return [o for o in ("--planner", "--exclude", "--max-functions") if o.startswith(word)]
        return []

    # prompt_toolkit's Completer protocol, without subclassing it here (importing it is not free).
    def get_completions(self, document: Document, complete_event: Any) -> Iterable[Completion]:
        from prompt_toolkit.completion import Completion

        before = document.text_before_cursor
        word = before.split(" ")[-1]
        for candidate in self.candidates(before):
            yield Completion(candidate, start_position=-len(word))

    async def get_completions_async(self, document: Document, complete_event: Any) -> Any:
        for completion in self.get_completions(document, complete_event):
            yield completion
