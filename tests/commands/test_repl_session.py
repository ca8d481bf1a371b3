"""The REPL's command layer on the scripted service: limits, results that flow, memory, export, conversations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.commands.dispatch import ChatSession
from kernel_app.commands.sizing import answer_tokens
from kernel_app.conversation.events import Event, PlanProposed, Progress
from kernel_app.conversation.store import ConversationStore
from kernel_app.kernel.builder import build_kernel
from kernel_app.providers.scripted import ScriptedChatCompletion
from tests.support.cli import run_cli

SUM_PLAN = '{"steps": [{"function": "Math.add", "args": {"a": 110, "b": 990}, "output": "sum"}]}'


class CutScripted(ScriptedChatCompletion):
    """Every answer ends as a model's does when it reaches max_tokens."""

    async def _inner_get_chat_message_contents(self, chat_history, settings):  # type: ignore[no-untyped-def]
        from semantic_kernel.contents.utils.finish_reason import FinishReason

        messages = await super()._inner_get_chat_message_contents(chat_history, settings)
        for message in messages:
            message.finish_reason = FinishReason.LENGTH
        return messages


def make(tmp_path: Path, service: ScriptedChatCompletion, **options: object) -> ChatSession:
    kernel = build_kernel(Settings(memory_dir=tmp_path / "memory"), chat_service=service).kernel
    store = ConversationStore(tmp_path / "conversations.sqlite3")
    return ChatSession(kernel, store=store, **options)  # type: ignore[arg-type]


async def test_the_answer_length_follows_the_model_and_set_max_tokens(tmp_path: Path) -> None:
    service = ScriptedChatCompletion(default="ok")
    session = make(tmp_path, service)
    # The scripted model's context is the default 8192 tokens: a quarter of it, not a fixed 500.
    assert session.engine.max_tokens == answer_tokens(8192) == 2048
    await session.handle("Hi")
    assert service.requests[-1].settings["max_tokens"] == 2048
    assert (await session.handle("/set max_tokens 1500")).text == "max_tokens 1500"
    await session.handle("Hi again")
    assert service.requests[-1].settings["max_tokens"] == 1500
    assert "max_tokens 1500" in (await session.handle("/set")).text
    for bad in ("/set max_tokens lots", "/set max_tokens 9999999", "/set colour blue"):
        assert (await session.handle(bad)).is_error, bad
    assert answer_tokens(4096) == 1024 and answer_tokens(128_000) == 4096 and answer_tokens(512) == 256


async def test_a_cut_answer_is_marked_cut(tmp_path: Path) -> None:
    session = make(tmp_path, CutScripted(default="The first half of a long"))
    reply = await session.handle("Tell me everything")
    assert reply.cut and reply.text == "The first half of a long"
    assert not (await make(tmp_path, ScriptedChatCompletion(default="Short.")).handle("Hi")).cut


@pytest.mark.e2e
async def test_the_help_example_of_chat_runs(tmp_path: Path) -> None:
    help_text = run_cli("chat", "--help").stdout
    example = re.search(r"printf '(.*?)' \| kernel-app chat", help_text)
    assert example is not None, help_text
    lines = example.group(1).encode().decode("unicode_escape").splitlines()
    session = make(tmp_path, ScriptedChatCompletion(default="You added 2 and 3."))
    replies = [await session.handle(line) for line in lines]
    assert [r.is_error for r in replies] == [False] * len(lines), [r.text for r in replies]
    assert replies[0].text == "5"


async def test_named_results_flow_into_the_next_function(tmp_path: Path) -> None:
    service = ScriptedChatCompletion(
        [
            "| Strengths | Why |\n|---|---|\n| Fresh bread | daily |",
            "| Strengths | Why |\n|---|---|\n| Spotless floors | weekly |",
            "Cleaning shops is good work.",
        ]
    )
    session = make(tmp_path, service)
    swot = await session.handle("/run BusinessThinking.SWOTDraft a bakery > swot")
    assert swot.kind == "result" and session.results["swot"] == swot.text == session.results["last"]
    shifted = await session.handle('/run BusinessThinking.ShiftDomain domain="cleaning services" $swot > cleaning')
    prompt = service.requests[1].prompt
    assert "Fresh bread" in prompt and "New domain: cleaning services" in prompt and "$swot" not in prompt
    assert session.results["cleaning"] == shifted.text
    await session.handle("/run BusinessThinking.ChangeAudience level=child $last")
    assert "Spotless floors" in service.requests[2].prompt
    unknown = await session.handle("/run BusinessThinking.ChangeAudience level=child $nothing")
    assert unknown.is_error and "no result named $nothing" in unknown.text and "$swot" in unknown.text
    assert "$cleaning" in (await session.handle("/results")).text


@pytest.mark.e2e
async def test_save_a_result_to_memory_and_ask_about_it(tmp_path: Path) -> None:
    service = ScriptedChatCompletion(["Late-night delivery would earn more.", "Deliver late [saved] as noted."])
    session = make(tmp_path, service)
    await session.handle("What could a bakery do to earn more?")
    saved = await session.handle("/save Ideas")  # $last by default
    assert saved.kind == "help" and "Saved into Ideas" in saved.text, saved.text
    record = re.search(r"\[(.+?)\]", saved.text).group(1)  # type: ignore[union-attr]
    events: list[Event] = []
    before = session.usage
    answer = await session.handle("/ask Ideas How can we earn more at night?", on_progress=events.append)
    assert f"[{record}] Late-night delivery would earn more." in service.requests[-1].prompt
    assert answer.kind == "answer" and [e.done for e in events if isinstance(e, Progress)] == [False, True]
    # /ask's model call counts in the session's usage (the scripted service counts words).
    asked = service.requests[-1]
    assert session.usage.calls == before.calls + 1 and answer.usage is not None
    assert session.usage.completion_tokens - before.completion_tokens == 5  # "Deliver late [saved] as noted."
    assert session.usage.prompt_tokens - before.prompt_tokens == len(asked.prompt.split())
    assert (await session.handle("/save Ideas a second, typed idea")).kind == "help"
    assert (await session.handle("/save")).is_error


async def test_export_writes_the_conversation_as_markdown(tmp_path: Path) -> None:
    session = make(tmp_path, ScriptedChatCompletion(["Hello! Ask me about your bakery."]))
    await session.handle("Hi, I run a bakery")
    await session.handle("/run Math.add a=2 b=3")
    target = tmp_path / "out" / "chat.md"
    assert (await session.handle(f"/export {target}")).is_error  # no such folder: one line, no traceback
    target = tmp_path / "chat.md"
    done = await session.handle(f"/export {target}")
    assert done.kind == "help" and str(target) in done.text
    text = target.read_text()
    assert text.startswith("# Hi, I run a bakery\n")
    assert "## You\n\nHi, I run a bakery\n\n## Kernel App\n\nHello! Ask me about your bakery." in text
    assert "## You\n\n(ran Math.add on: no input)\n\n## Kernel App\n\n5\n" in text


async def test_history_resume_and_new_on_the_store(tmp_path: Path) -> None:
    session = make(tmp_path, ScriptedChatCompletion(default="Noted."))
    await session.handle("Our bakery opens at six")
    first = session.conversation_id
    assert (await session.handle("/new")).kind == "help" and session.conversation_id != first
    await session.handle("/run Math.add a=1 b=1")
    listed = (await session.handle("/history")).text
    assert "Our bakery opens at six" in listed and "Math.add a=1 b=1" in listed  # titles from the first exchange
    assert re.search(r"\*\s+1\. .*Math\.add", listed), listed  # the current one, newest first
    resumed = await session.handle("/resume 2")
    assert session.conversation_id == first and "Our bakery opens at six" in resumed.text
    await session.handle("When do we open?")
    service = session.engine.kernel.get_service("scripted")
    assert "Our bakery opens at six" in service.requests[-1].prompt  # type: ignore[attr-defined]
    assert (await session.handle("/resume nope")).is_error
    await session.handle("/resume")  # the latest other one
    assert session.conversation_id != first


async def test_plan_takes_the_planner_options(tmp_path: Path) -> None:
    service = ScriptedChatCompletion([SUM_PLAN])
    session = make(tmp_path, service)
    events: list[Event] = []

    async def yes(plan_text: str) -> bool:
        return True

    reply = await session.handle(
        "/plan --exclude Writer,Time --max-functions 3 What is 110 plus 990? > sum",
        confirm=yes,
        on_event=events.append,
        on_progress=events.append,
    )
    assert (reply.kind, reply.text, session.results["sum"]) == ("result", "1100", "1100")
    offered = service.requests[0].prompt
    assert "Writer.Translate" not in offered and "Math.add" in offered
    plan = next(e for e in events if isinstance(e, PlanProposed))
    assert plan.text.splitlines()[1].startswith("1. sum = Math.add(")
    progress = [e.text for e in events if isinstance(e, Progress)]
    assert progress[0].startswith("planning") and "step 1/1 Math.add" in progress
    for bad in ("/plan --planner magic Do it", "/plan --max-functions none Do it", "/plan --colour red Do it"):
        assert (await session.handle(bad)).is_error, bad


@pytest.mark.parametrize("line", ["/run Math.add a=2 b=3 > five", "/ask", "/export"])
async def test_command_errors_are_one_line(tmp_path: Path, line: str) -> None:
    reply = await make(tmp_path, ScriptedChatCompletion(default="ok")).handle(line)
    assert "\n" not in reply.text


async def test_an_argument_of_the_plan_is_edited_before_it_runs(tmp_path: Path) -> None:
    session = make(tmp_path, ScriptedChatCompletion([SUM_PLAN, SUM_PLAN]))
    shown: list[str] = []
    answers = iter(["1 a=5", True])

    def confirm(plan_text: str) -> bool | str:
        shown.append(plan_text)
        return next(answers)

    reply = await session.handle("/plan What is 110 plus 990?", confirm=confirm)
    assert reply.text == "995" and "Math.add(a=5, b=990)" in shown[1]
    bad = await session.handle("/plan What is 110 plus 990?", confirm=lambda text: "7 a=1")
    assert bad.is_error and "steps 1 to 1" in bad.text


async def test_functions_are_offered_to_the_model_only_when_their_schemas_fit(tmp_path: Path) -> None:
    from tests.support.tool_scripted import ToolScripted

    class EmbeddedSized(ToolScripted):
        n_ctx: int = 4096  # the embedded model's window, read as the local service's is

    small = make(tmp_path, EmbeddedSized(["Hello."]))  # ~4,400 tokens of schemas would not fit
    assert small.engine.allowed_functions() == []
    assert (await small.handle("Hi")).text == "Hello." and small.engine.service.offered == [None]
    large = make(tmp_path, ToolScripted(["Hello."]))  # 8,192 tokens: room for them and a turn
    assert "Math.add" in large.engine.allowed_functions()
    await large.handle("Hi")
    assert "Math-add" in (large.engine.service.offered[0] or [])


async def test_a_function_answer_that_used_all_its_max_tokens_is_marked_cut(tmp_path: Path) -> None:
    import json

    from kernel_app.base.config import load_settings
    from kernel_app.interfaces.repl.render import cut_note

    folder = tmp_path / "plugins" / "Short" / "Say"
    folder.mkdir(parents=True)
    (folder / "skprompt.txt").write_text("Say {{$input}}")
    config = {"description": "d.", "execution_settings": {"default": {"max_tokens": 4}}}
    (folder / "config.json").write_text(json.dumps(config))
    service = ScriptedChatCompletion(["one two three four", "one two"])  # usage counts words as tokens
    settings = load_settings(plugins_dirs=[tmp_path / "plugins"], memory_dir=tmp_path / "memory")
    session = ChatSession(build_kernel(settings, chat_service=service).kernel)
    cut = await session.handle("/run Short.Say hello", on_chunk=lambda piece: None)
    assert cut.cut and cut.limit == 4 and cut.streamed
    assert cut_note(cut, 2048) == "(cut: the answer reached the function's max_tokens, 4, set in its config.json)"
    whole = await session.handle("/run Short.Say hello")
    assert not whole.cut and (await session.handle("/run Math.add a=1 b=2")).limit is None


async def test_set_service_switches_the_model_for_the_same_conversation(tmp_path: Path) -> None:
    from kernel_app.base.errors import ConfigError

    first, second = (
        ScriptedChatCompletion(default="From the first."),
        ScriptedChatCompletion(default="From the second.", ai_model_id="gpt-4o"),
    )

    def services(name: str) -> ScriptedChatCompletion:
        if name == "azure":
            raise ConfigError("service 'azure' needs AZURE_OPENAI_ENDPOINT")
        return second

    kernel = build_kernel(Settings(memory_dir=tmp_path / "memory"), chat_service=first).kernel
    session = ChatSession(kernel, store=ConversationStore(":memory:"), services=services)
    await session.handle("Our bakery opens at six")
    switched = await session.handle("/set service openai")
    assert switched.text == "service openai (gpt-4o), max_tokens 4096"  # the new model's context: 128,000
    assert (await session.handle("When do we open?")).text == "From the second."
    assert "Our bakery opens at six" in second.requests[-1].prompt and len(first.requests) == 1
    failed = await session.handle("/set service azure")
    assert failed.is_error and "AZURE_OPENAI_ENDPOINT" in failed.text and session.engine.model == "gpt-4o"
    session.set_max_tokens(700)
    await session.handle("/set service openai")
    assert session.engine.max_tokens == 700  # what the user set stays


class CountingStructured(ScriptedChatCompletion):
    """Structured output (OpenAI's settings class), and how many pieces of the answer it has streamed."""

    streamed: int = 0

    def get_prompt_execution_settings_class(self) -> type:
        from semantic_kernel.connectors.ai.open_ai import OpenAIChatPromptExecutionSettings

        return OpenAIChatPromptExecutionSettings

    async def _inner_get_streaming_chat_message_contents(self, chat_history, settings, function_invoke_attempt=0):  # type: ignore[no-untyped-def]
        async for chunk in super()._inner_get_streaming_chat_message_contents(chat_history, settings):
            self.streamed += 1
            yield chunk


def swot_json() -> str:
    import json

    def points(*names: str) -> list[dict[str, str]]:
        return [{"point": name, "why": f"because of {name.lower()}"} for name in names]

    return json.dumps(
        {
            "strengths": points("Fresh bread", "Loyal regulars", "Central street"),
            "weaknesses": points("Small oven", "Cash only", "No website"),
            "opportunities": points("Office lunches", "Wedding cakes", "Farmers market"),
            "threats": points("Supermarket bread", "Rising flour prices", "Road works"),
        }
    )


async def test_run_swot_streams_each_quadrants_table_as_it_completes(tmp_path: Path) -> None:
    answer = swot_json()
    service = CountingStructured([answer])
    session = make(tmp_path, service)
    chunks: list[tuple[str, int]] = []
    reply = await session.handle(
        "/run BusinessThinking.SWOT a bakery > swot", on_chunk=lambda t: chunks.append((t, service.streamed))
    )
    assert reply.kind == "result" and reply.streamed and reply.text.count("| Point | Why it matters |") == 4
    # One part per table, in order, and what streamed is the whole result, once.
    assert [text.split("\n")[0 if i == 0 else 1] for i, (text, _) in enumerate(chunks)] == [
        "### Strengths", "### Weaknesses", "### Opportunities", "### Threats",
    ]  # fmt: skip
    assert "".join(text for text, _ in chunks) == reply.text == session.results["swot"]
    assert "| Fresh bread | because of fresh bread. |" in chunks[0][0] and "Small oven" not in chunks[0][0]
    # The first tables came while the model was still answering, not after it.
    total = len(answer.split(" "))
    assert chunks[0][1] < chunks[1][1] < chunks[2][1] < total
    # Without a stream, the same tables in one piece.
    again = await make(tmp_path, CountingStructured([answer])).handle("/run BusinessThinking.SWOT a bakery")
    assert again.text == reply.text and not again.streamed


def test_swot_tables_render_as_they_stream_in_the_terminal() -> None:
    import io

    from rich.console import Console

    from kernel_app.commands.dispatch import Reply
    from kernel_app.interfaces.repl.render import RichRenderer, finished_blocks

    first = "### Strengths\n| Point | Why it matters |\n| --- | --- |\n| Fresh bread | daily |\n"
    second = "\n### Weaknesses\n| Point | Why it matters |\n| --- | --- |\n| Small oven | slow |"
    console = Console(file=io.StringIO(), force_terminal=True, width=60, height=20, color_system=None)
    renderer = RichRenderer(console)
    renderer.begin("/run BusinessThinking.SWOT a bakery")
    renderer.chunk(first)
    renderer.chunk(second[:1])  # the blank line that finishes the first table
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    rendered = re.compile(r"Fresh bread\s+daily\s")  # the cells of a rendered table, not "| Fresh bread |"
    assert len(rendered.findall(shown)) == 1 and "─" in shown and "Small oven" not in shown
    renderer.chunk(second[1:])
    renderer.reply(Reply(first + second, "result", streamed=True), max_tokens=100)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert len(rendered.findall(out)) == 1  # not rendered again with the rest
    assert re.search(r"Small oven\s+slow\s", out.rsplit("\x1b[2K", 1)[-1])
    # A turn that streamed words before calling a function answers with the text after the call: what of
    # it was rendered already is not printed again.
    console.file = io.StringIO()
    renderer.begin("What is 2 plus 3?")
    for piece in ("Let me add them.\n\n", "The sum is five.\n\n", "Anything else?"):
        renderer.chunk(piece)
    renderer.reply(Reply("The sum is five.\n\nAnything else?", "answer", streamed=True), max_tokens=100)
    out = console.file.getvalue()
    assert out.count("The sum is five.") == 1 and "Anything else?" in out.rsplit("\x1b[2K", 1)[-1]
    # Lists and code fences wait: a list's next item or a fence's next line may follow a blank line.
    assert finished_blocks("1. a\n\n2. b\n\nDone.\n\nNext") == len("1. a\n\n2. b\n\nDone.\n\n")
    assert finished_blocks("```\ncode\n\nmore\n") == 0 and finished_blocks("Half a sen") == 0


def test_run_swot_stream_on_the_command_line_prints_each_table_once(openai_server, tmp_path: Path) -> None:
    openai_server.queue(swot_json())
    env = {"KERNEL_APP_SERVICE": "openai", "OPENAI_BASE_URL": openai_server.base_url}
    streamed = run_cli("run", "BusinessThinking.SWOT", "--input", "a bakery", "--stream", **env)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.count("### Strengths") == 1 and streamed.stdout.count("| Point | Why it matters |") == 4
    assert "| Road works | because of road works. |" in streamed.stdout and "{" not in streamed.stdout
