"""The function-calling planner: the model calls the functions itself (semantic-kernel's auto function calling).

Always with an allow-list (``FunctionChoiceBehavior.Auto(filters={"included_functions": [...]})``): an
empty or missing list would let semantic-kernel offer every function of the kernel. The number of
model round trips that may call functions is bounded by ``max_rounds``; after that semantic-kernel
asks once more without tools, for the answer. The calls made are captured by an auto-function-
invocation filter (which also refuses, a second time, anything outside the allow-list) and returned
as a plan-shaped trace: arguments are the literal values the model sent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel_app.errors import KernelAppError, innermost_message
from kernel_app.usage import Usage
from planners.catalogue import FunctionCatalogue
from planners.errors import PlannerServiceError, PlanningError
from planners.plan import Plan, PlanStep
from planners.relevance import Relevance, most_relevant

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
    from semantic_kernel.filters.auto_function_invocation.auto_function_invocation_context import (
        AutoFunctionInvocationContext,
    )

DEFAULT_MAX_ROUNDS = 5

SYSTEM = """\
You reach the user's goal by calling the tools you are given, as many times as needed, feeding the
results of one call into the next where that helps. When you have what the goal asks for, answer with
it directly. Use only the tools provided."""


@dataclass
class Call:
    """One function call the model made, in the order semantic-kernel ran them."""

    function: str  # Plugin.Function
    args: dict[str, Any]
    output: str
    seconds: float
    round: int  # 0-based model round trip
    refused: bool = False  # outside the allow-list: not run


@dataclass
class FunctionCallingResult:
    """The model's final answer and the trace of calls. Unpacks as ``answer, trace = result``."""

    answer: str
    trace: Plan
    calls: list[Call] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    def __iter__(self) -> Iterator[Any]:
        # So that ``answer, trace = await planner.run(goal)`` reads naturally.
        return iter((self.answer, self.trace))


class FunctionCallingPlanner:
    """``answer, trace = await FunctionCallingPlanner(kernel, max_rounds=5).run(goal)``."""

    def __init__(
        self,
        kernel: Kernel,
        *,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        included: Iterable[str] | None = None,
        excluded: Iterable[str] | None = None,
        catalogue: FunctionCatalogue | None = None,
        max_functions: int = 64,
        relevance: Relevance | None = None,
        service_id: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        if max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        self.kernel = kernel
        self.max_rounds = max_rounds
        self.catalogue = FunctionCatalogue.given_or_from_kernel(catalogue, kernel, included=included, excluded=excluded)
        self.max_functions = max_functions
        self.relevance = relevance
        self.service_id = service_id
        self.options = {"max_tokens": 1000, "temperature": 0.0, **(options or {})}

    def _service(self) -> ChatCompletionClientBase:
        from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

        try:
            service = self.kernel.get_service(self.service_id, type=ChatCompletionClientBase)
        except Exception as error:
            raise PlannerServiceError(f"planning needs a chat service: {error}") from None
        if not service.SUPPORTS_FUNCTION_CALLING:
            raise PlanningError(
                f"the chat service {type(service).__name__} cannot call functions: use the sequential planner"
            )
        return service

    async def run(self, goal: str) -> FunctionCallingResult:
        from semantic_kernel.connectors.ai.function_choice_behavior import FunctionChoiceBehavior
        from semantic_kernel.contents import ChatHistory
        from semantic_kernel.functions import KernelArguments

        goal = goal.strip()
        if not goal:
            raise PlanningError("the goal is empty: say what you want done")
        unusable = _not_callable_as_tools(self.kernel)
        callable_catalogue = self.catalogue.subset(n for n in self.catalogue.names if n not in unusable)
        names = await most_relevant(goal, callable_catalogue, self.max_functions, self.relevance)
        allowed = [name.replace(".", "-", 1) for name in names]  # semantic-kernel's fully qualified names
        if not allowed:
            # Never call Auto() with an empty allow-list: semantic-kernel would offer every function.
            raise PlanningError("no functions are left to call: check --exclude")
        service = self._service()
        calls: list[Call] = []
        # A clone: the capturing filter must see only this run's calls and must not stay on the caller's kernel.
        kernel = self.kernel.clone()
        kernel.add_filter("auto_function_invocation", _capture(set(allowed), calls))
        settings_class = service.get_prompt_execution_settings_class()
        behavior = FunctionChoiceBehavior.Auto(
            filters={"included_functions": allowed}, maximum_auto_invoke_attempts=self.max_rounds
        )
        options = {k: v for k, v in self.options.items() if k in settings_class.model_fields}
        settings = settings_class(service_id=service.service_id, function_choice_behavior=behavior, **options)
        history = ChatHistory()
        history.add_system_message(SYSTEM)
        history.add_user_message(goal)
        try:
            message = await service.get_chat_message_content(
                history, settings, kernel=kernel, arguments=KernelArguments()
            )
        except KernelAppError as error:
            raise PlannerServiceError(f"planning failed: {error}") from error
        except Exception as error:
            raise PlannerServiceError(
                f"planning failed: the chat service failed: {innermost_message(error)}"
            ) from error
        usage = Usage()
        for item in [*history.messages, message]:
            if item is not None and getattr(item, "role", None) is not None and item.role.value == "assistant":
                usage = usage + Usage.from_metadata(getattr(item, "metadata", None))
        answer = (message.content if message is not None else "") or ""
        trace = Plan(
            goal=goal,
            steps=[
                PlanStep(function=c.function, args=c.args, output=f"call{number}")
                for number, c in enumerate((c for c in calls if not c.refused), 1)
            ],
        )
        return FunctionCallingResult(answer=answer, trace=trace, calls=calls, usage=usage)


def _capture(
    allowed: set[str], calls: list[Call]
) -> Callable[[AutoFunctionInvocationContext, Callable[[Any], Awaitable[None]]], Awaitable[None]]:
    async def capture(context: AutoFunctionInvocationContext, next: Callable[[Any], Awaitable[None]]) -> None:
        from semantic_kernel.functions import FunctionResult

        function = context.function
        qualified = function.fully_qualified_name
        args = {str(k): v for k, v in (context.arguments or {}).items()}
        name = qualified.replace("-", ".", 1)
        if qualified not in allowed:
            # semantic-kernel already refuses these; this is the belt to its braces.
            context.function_result = FunctionResult(function=function.metadata, value=f"{name} is not allowed")
            calls.append(Call(name, args, "", 0.0, context.request_sequence_index, refused=True))
            return
        began = time.perf_counter()
        await next(context)
        result = context.function_result
        output = "" if result is None or result.value is None else str(result)
        calls.append(Call(name, args, output, time.perf_counter() - began, context.request_sequence_index))

    return capture


def _not_callable_as_tools(kernel: Kernel) -> set[str]:
    """Functions whose tool schema would ask the model for the kernel itself.

    A native function's ``kernel: Kernel`` parameter is injected by semantic-kernel, but unless it is
    annotated ``{"include_in_function_choices": False}`` it also lands in the tool schema, which then
    cannot even be serialised. Such functions are left off the allow-list rather than failing the run.
    """
    unusable = set()
    for metadata in kernel.get_full_list_of_function_metadata():
        for parameter in metadata.parameters:
            injected = parameter.name == "kernel" or parameter.type_ in ("Kernel", "KernelArguments")
            if injected and parameter.include_in_function_choices:
                unusable.add(f"{metadata.plugin_name}.{metadata.name}")
    return unusable
