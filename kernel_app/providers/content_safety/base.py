"""What every content screen is: ``await screen.screen(text, stage)`` → a :class:`Verdict`."""

from __future__ import annotations

from collections.abc import Sequence

from kernel_app.providers.content_safety.verdict import Stage, Verdict


class Screen:
    """A content screen. ``name`` is its setting's value (offline, openai, azure)."""

    name = "screen"

    async def screen(self, text: str, stage: Stage) -> Verdict:
        raise NotImplementedError

    async def screen_many(self, texts: Sequence[str], stage: Stage) -> list[Verdict]:
        """One verdict per text, in order (a hosted screen may send them together)."""
        return [await self.screen(text, stage) for text in texts]

    async def aclose(self) -> None:
        """Release what the screen holds (a hosted screen's HTTP client)."""
