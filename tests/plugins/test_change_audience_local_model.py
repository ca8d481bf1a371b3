"""BusinessThinking.ChangeAudience on the default embedded model (Qwen2.5-Coder-1.5B on llama.cpp), for real:
a one-row table comes back as the same table with the row in other words. The shipped eval (a whole SWOT,
minutes on two busy cores) is measured with `kernel-app eval`, not here. Skipped when the default tier is
not installed."""

from __future__ import annotations

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.providers.llama.tiers import DEFAULT_TIER, get_tier
from tests.support.native_plugins import local_model_marks

pytestmark = local_model_marks(get_tier(DEFAULT_TIER))

TABLE = """### Opportunities
| Point | Why it matters |
| --- | --- |
| Online presence | The bakery can leverage online platforms to reach a wider audience and expand its reach. |"""


async def test_a_table_row_is_rewritten_in_its_layout_on_the_default_tier() -> None:
    from kernel_app.providers.llama.provider import create_local

    settings = Settings(model=DEFAULT_TIER)
    built = build_kernel(settings, chat_service=create_local(settings))
    function = resolve_function(built.kernel, "BusinessThinking.ChangeAudience")
    run = await run_chain(built.kernel, [function], input=TABLE, variables={"level": "a new employee"})
    lines = run.result.splitlines()
    assert lines[:3] == TABLE.splitlines()[:3], run.result  # heading, header and separator as written
    assert len(lines) == 4 and lines[3].startswith("| ") and lines[3].count(" | ") == 1, run.result
    assert lines[3] != TABLE.splitlines()[3], run.result  # the row in other words
    assert run.usage.calls in (1, 2)  # the row, and once more only for a near copy
