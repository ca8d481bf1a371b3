"""semantic-kernel's ConversationSummaryPlugin, described for a planner as what it is.

SK's description, "Given a long conversation transcript, summarize the conversation.", made
Qwen2.5-Coder-1.5B plan ``ConversationSummaryPlugin.SummarizeConversation`` for "Summarize this text: the
shop sells pizza..." over ``Writer.Summarize``, offered first (planners/goals.evals.yaml, case 10). The
function is SK's, under the same name and with the same template; only its descriptions are ours.

No ``from __future__ import annotations`` here: SK's ``kernel_function`` evaluates the annotations of the
method it decorates (``inspect.signature(eval_str=True)``), so ``Annotated`` must be a real object.
"""

from typing import TYPE_CHECKING, Annotated

from semantic_kernel.core_plugins import ConversationSummaryPlugin
from semantic_kernel.functions import kernel_function
from semantic_kernel.prompt_template import PromptTemplateConfig

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.functions import KernelArguments

DESCRIPTION = (
    "Summarize a conversation transcript (turns such as 'Anna: ...' between people) into the points discussed "
    "and what was decided. Only for a conversation."
)


class ConversationSummary(ConversationSummaryPlugin):
    @kernel_function(description=DESCRIPTION, name="SummarizeConversation")
    async def summarize_conversation(
        self,
        input: Annotated[str, "A conversation transcript, one turn per line."],
        # The injected parameters and the result are named as SK names them, in quotes: given the classes,
        # SK describes KernelArguments as a JSON schema that tool offers cannot serialize.
        kernel: Annotated["Kernel", "The kernel instance."],
        arguments: Annotated["KernelArguments", "Arguments used by the kernel."],
    ) -> Annotated["KernelArguments", "The arguments, with the summary under 'summary'."]:
        return await super().summarize_conversation(input, kernel, arguments)


def conversation_summary_plugin() -> ConversationSummary:
    return ConversationSummary(PromptTemplateConfig(description="Summarize a conversation."))
