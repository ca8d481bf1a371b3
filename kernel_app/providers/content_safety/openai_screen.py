"""The OpenAI moderation endpoint (``omni-moderation-latest``) as the content screen.

OpenAI's moderation has no prompt-injection category, so the offline screen's markers run first (they
cost nothing); then the text goes to ``/v1/moderations`` through the official client, configured from
the same ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` as the ``openai`` model service.
"""

from __future__ import annotations

import os
from typing import Any

from kernel_app.base.errors import ConfigError
from kernel_app.providers.content_safety.base import Screen
from kernel_app.providers.content_safety.offline import check
from kernel_app.providers.content_safety.verdict import CLEAN, ScreenError, Stage, Verdict

MODERATION_MODEL = "omni-moderation-latest"
MAX_CHARS = 30_000  # per request; a longer text is screened in parts


class OpenAIModerationScreen(Screen):
    name = "openai"

    def __init__(self, client: Any, model: str = MODERATION_MODEL) -> None:
        """``client``: an ``openai.AsyncOpenAI``."""
        self.client = client
        self.model = model

    async def screen(self, text: str, stage: Stage) -> Verdict:
        local = check(text, stage)
        if local.flagged or not text.strip():
            return local
        for start in range(0, len(text), MAX_CHARS):
            verdict = await self._moderate(text[start : start + MAX_CHARS])
            if verdict.flagged:
                return verdict
        return CLEAN

    async def _moderate(self, text: str) -> Verdict:
        try:
            response = await self.client.moderations.create(model=self.model, input=text)
        except Exception as error:
            raise ScreenError(f"content safety (openai): the moderation request failed: {_one_line(error)}") from error
        result = response.results[0]
        if not result.flagged:
            return CLEAN
        categories = result.categories.model_dump(by_alias=True)
        flagged = [name for name, on in categories.items() if on] or ["flagged"]
        return Verdict(True, flagged[0], f"OpenAI moderation flagged it ({', '.join(flagged)})")

    async def aclose(self) -> None:
        await self.client.close()


def create_openai_screen(settings: Any) -> OpenAIModerationScreen:
    from openai import AsyncOpenAI

    base_url = os.environ.get("OPENAI_BASE_URL") or None
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        raise ConfigError(
            "content_safety 'openai' needs OPENAI_API_KEY: export OPENAI_API_KEY=sk-... "
            '(or choose content_safety = "offline")'
        )
    return OpenAIModerationScreen(AsyncOpenAI(api_key=api_key, base_url=base_url))


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
