"""Built-in native plugin: BusinessThinking.SWOT, four markdown tables on any model.

The prompt (BusinessThinking.SWOTDraft) asks for tables; small models answer with headed lists
instead, so the draft is parsed and the tables rendered here (see kernel_app.swot_tables).
"""

from typing import Annotated

from semantic_kernel import Kernel
from semantic_kernel.functions import KernelArguments, kernel_function

from kernel_app.swot_tables import to_swot_tables


class SWOTPlugin:
    """A SWOT analysis as four markdown tables."""

    @kernel_function(
        name="SWOT",
        description="Write a SWOT analysis (strengths, weaknesses, opportunities, threats) of a business as four "
        "markdown tables, optionally based on the owner's interview answers.",
    )
    async def swot(
        self,
        # Injected by semantic-kernel; kept out of tool schemas (a Kernel is not JSON-serialisable).
        kernel: Annotated[Kernel, {"include_in_function_choices": False}],
        input: Annotated[str, "A description of the business, e.g. 'a family-run pizza shop in a small town'"],
        answers: Annotated[str, "Optional answers the owner gave to the SWOT interview questions"] = "",
    ) -> Annotated[str, "Four markdown tables: Strengths, Weaknesses, Opportunities, Threats"]:
        draft = await kernel.invoke(
            plugin_name="BusinessThinking",
            function_name="SWOTDraft",
            arguments=KernelArguments(input=input, answers=answers),
        )
        return to_swot_tables(str(draft))
