"""semantic-kernel's ConversationSummaryPlugin as the kernel adds it: SK's function, our description.

planners/goals.evals.yaml's case 10 ("Summarize this text: ...") planned SummarizeConversation over
Writer.Summarize on the default tier while SK's description said only "Given a long conversation
transcript, summarize the conversation."
"""

from __future__ import annotations

from semantic_kernel.functions import KernelArguments

from kernel_app.kernel.conversation_summary import DESCRIPTION
from kernel_app.providers.scripted import ScriptedChatCompletion
from planners import SequentialPlanner

SUMMARY_GOAL = "Summarize this text: the shop sells pizza and pasta every day of the week, and delivers at night."


def test_the_function_keeps_its_name_and_says_it_is_for_conversations_only(kernel) -> None:
    function = kernel.get_function("ConversationSummaryPlugin", "SummarizeConversation")
    assert function.metadata.description == DESCRIPTION and "Only for a conversation" in DESCRIPTION
    (text,) = [p for p in function.metadata.parameters if p.name == "input"]
    assert text.is_required and "conversation transcript" in (text.description or "")


async def test_it_still_runs_semantic_kernels_summary_prompt(kernel, scripted: ScriptedChatCompletion) -> None:
    scripted.queue("They agreed to open on Sundays.")
    transcript = "Anna: Should we open on Sundays?\nBen: Yes, families shop then."
    arguments = KernelArguments(input=transcript)
    result = await kernel.invoke(
        plugin_name="ConversationSummaryPlugin", function_name="SummarizeConversation", arguments=arguments
    )
    prompt = scripted.requests[0].prompt
    assert "Summarize the conversation in 'CONTENT TO SUMMARIZE'" in prompt and "Ben: Yes" in prompt
    assert result is not None and result.value["summary"] == "They agreed to open on Sundays."


async def test_the_planner_shows_the_description_and_asks_a_step_per_follow_up(kernel, scripted) -> None:
    scripted.queue('{"steps": [{"function": "Writer.Summarize", "args": {"input": "the shop"}, "output": "s"}]}')
    planner = SequentialPlanner(kernel, max_functions=8)
    await planner.create_plan(SUMMARY_GOAL)
    prompt = " ".join(scripted.requests[0].prompt.split())
    # Both summaries are offered (the goal says "summarize"); the prompt tells them apart.
    assert planner.last_offered[0] == "Writer.Summarize"
    assert "ConversationSummaryPlugin.SummarizeConversation" in planner.last_offered and DESCRIPTION in prompt
    assert "one more step for each thing the goal asks to do with a result, such as translating it" in prompt
