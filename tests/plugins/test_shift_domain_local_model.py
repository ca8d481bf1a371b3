"""BusinessThinking.ShiftDomain on the default embedded model (Qwen2.5-Coder-1.5B on llama.cpp), for real.

One table of a pizza shop's SWOT (the shipped eval's case that came back unchanged when the whole SWOT was
rewritten at once), so that it takes one model call or two: the table keeps its heading, its columns and
its three rows, and is about cleaning, not pizza. The whole eval file is measured with `kernel-app eval`
(docs/models.md). Skipped when the default tier is not installed.
"""

from __future__ import annotations

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.runner import resolve_function, run_chain
from kernel_app.providers.llama.tiers import DEFAULT_TIER, get_tier
from plugins.BusinessThinking._markdown_tables import parse
from tests.support.native_plugins import local_model_marks

pytestmark = local_model_marks(get_tier(DEFAULT_TIER))

STRENGTHS = """### Strengths
| Point | Why it matters |
| --- | --- |
| Locally owned | Customers know the owner personally, leading to loyalty |
| Student-friendly atmosphere | College students often frequent pizza shops |
| Unique flavors | The shop offers a variety of pizzas, including vegetarian and gluten-free options |"""


async def test_a_pizza_shops_table_becomes_a_cleaning_services_table() -> None:
    from kernel_app.providers.llama.provider import create_local

    settings = Settings(model=DEFAULT_TIER)
    built = build_kernel(settings, chat_service=create_local(settings))
    function = resolve_function(built.kernel, "BusinessThinking.ShiftDomain")
    run = await run_chain(built.kernel, [function], input=STRENGTHS, variables={"domain": "cleaning services"})
    answer = run.result
    (table,) = parse(answer).tables
    assert table.line_above == "### Strengths" and table.columns == ["Point", "Why it matters"], answer
    assert len(table.rows) == 3 and all(all(cell for cell in row) for row in table.rows), answer
    assert "pizza" not in answer.lower() and "clean" in answer.lower(), answer
    assert run.usage.completion_tokens > 0
