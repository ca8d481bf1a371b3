"""DesignThinking.Ideate on llama.cpp, for real: the schema of each request is one llama.cpp's grammar
engine takes, and what the model answers becomes a table of different ideas, in a bounded number of
requests. The tiny tier (SmolLM2-135M) keeps it short; whether the default tier fills all 20 rows is the
shipped eval's question (`kernel-app eval plugins/DesignThinking/Ideate.evals.yaml`, docs/models.md).
Skipped when the tiny tier is not installed."""

from __future__ import annotations

from kernel_app.base.config import Settings
from kernel_app.base.errors import ModelError
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.evals.assertions import cells_repeat
from kernel_app.kernel.runner import run_chain
from kernel_app.providers.llama.tiers import get_tier
from tests.support.native_plugins import load_plugin_module, local_model_marks

TINY = get_tier("smollm2-135m")


pytestmark = local_model_marks(TINY)


def _plugin_class() -> type:
    return load_plugin_module("DesignThinking/ideate_plugin.py", "ideate_plugin_on_llama").IdeatePlugin


async def test_ideate_on_the_tiny_tier_gives_different_ideas_of_both_fruits_in_two_requests() -> None:
    from kernel_app.providers.llama.provider import create_local

    settings = Settings(model=TINY.name)
    built = build_kernel(settings, chat_service=create_local(settings))
    # Two problems, one request each and none more: the structured path on llama.cpp, kept short.
    built.kernel.add_plugin(_plugin_class()(extra_requests=0), "IdeateOnLlama")
    function = built.kernel.get_function("IdeateOnLlama", "Ideate")
    try:
        run = await run_chain(built.kernel, [function], input="- Bread sells out by noon\n- Only cash is accepted")
    except ModelError as exc:  # the one other clear outcome: no usable idea, said so
        assert "no usable idea in 2 requests" in str(exc)
        return
    lines = run.result.splitlines()
    assert lines[0] == "| # | Idea | Type | Problem it solves | Description |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:] if line.startswith("|")]
    assert 1 <= len(rows) <= 20
    assert {row[2] for row in rows} <= {"Lower-hanging fruit", "Higher-hanging fruit"}
    for column in (1, 4):
        cells = [row[column] for row in rows]
        assert not any(cells_repeat(a, b) for n, a in enumerate(cells) for b in cells[:n]), cells
    assert len(rows) == 20 or f"Only {len(rows)} of 20 ideas: in 2 requests" in run.result
    assert run.usage.completion_tokens > 0
