"""The function-calling planner: the model calls the functions itself (semantic-kernel's auto function calling).

Always with an allow-list (``FunctionChoiceBehavior.Auto(filters={"included_functions": [...]})``): an
empty or missing list would let semantic-kernel offer every function of the kernel. The number of
model round trips that may call functions is bounded by ``max_rounds``; after that semantic-kernel
asks once more without tools, for the answer. The calls made are captured by an auto-function-
invocation filter (which also refuses, a second time, anything outside the allow-list) and returned
as a plan-shaped trace: arguments are the literal values the model sent.

Nothing with an effect runs without approval (``planners.approval``): ``READ`` functions run, the
others only when ``approve_call`` says yes; a refused call is answered "not run: needs approval".
A model still calling functions when the rounds run out is a :class:`RoundLimitError`, and a run
that ends without any answer a :class:`PlanningError`: never an empty success.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import KernelAppError, innermost_message
from kernel_app.base.usage import Usage
from planners.approval import ApproveCall
from planners.call_filter import Call, CallState, capture_calls
from planners.catalogue import FunctionCatalogue
from planners.errors import PlannerServiceError, PlanningError, RoundLimitError
from planners.plan import Plan, PlanStep
from planners.quoting import clean_text
from planners.relevance import Relevance, most_relevant

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
    from semantic_kernel.contents import ChatMessageContent

DEFAULT_MAX_ROUNDS = 5

SYSTEM = """\
You reach the user's goal by calling the tools you are given, as many times as needed, feeding the
results of one call into the next where that helps. When you have what the goal asks for, answer with
it directly. Use only the tools provided."""


@dataclass
class FunctionCallingResult:
    """The model's final answer and the trace of calls that RAN (``calls`` also holds the refused
    ones, with why). Unpacks as ``answer, trace = result``."""

    answer: str
    trace: Plan
    calls: list[Call] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    def __iter__(self) -> Iterator[Any]:
        # So that ``answer, trace = await planner.run(goal)`` reads naturally.
        return iter((self.answer, self.trace))


class FunctionCallingPlanner:
    """``answer, trace = await FunctionCallingPlanner(kernel, max_rounds=5, approve_call=ask).run(goal)``.

    ``approve_call(request)`` (sync or async) decides each call to a MODEL or WRITE function; without
    it, only READ functions run.
    """

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
        approve_call: ApproveCall | None = None,
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
        self.approve_call = approve_call

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
        from semantic_kernel.filters.filter_types import FilterTypes
        from semantic_kernel.functions import KernelArguments

        goal = clean_text(goal.strip())  # a lone surrogate (from a terminal's bad bytes) could not be printed
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
        state = CallState(calls=[])
        calls = state.calls
        # A clone: the capturing filter must see only this run's calls and must not stay on the caller's kernel.
        kernel = self.kernel.clone()
        # semantic-kernel 1.45 types a filter as a callable of unannotated parameters (Unknown to pyright).
        kernel.add_filter(  # pyright: ignore[reportUnknownMemberType]
            FilterTypes.AUTO_FUNCTION_INVOCATION,
            capture_calls(set(allowed), callable_catalogue, state, self.approve_call),
        )
        settings_class = service.get_prompt_execution_settings_class()
        # semantic-kernel 1.45 leaves Auto()'s **kwargs unannotated (Unknown to pyright).
        behavior = FunctionChoiceBehavior.Auto(  # pyright: ignore[reportUnknownMemberType]
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
        except Exception as error:
            if state.approval_error is not None:  # the approval callback failed: not the service's fault
                raise state.approval_error from None
            if isinstance(error, KernelAppError):
                raise PlannerServiceError(f"planning failed: {error}") from error
            raise PlannerServiceError(
                f"planning failed: the chat service failed: {innermost_message(error)}"
            ) from error
        if _still_calling(message):
            # semantic-kernel's last request after the rounds has no tools, but a model may call anyway.
            raise RoundLimitError(self.max_rounds)
        usage = Usage()
        for item in [*history.messages, message]:
            if item is not None and getattr(item, "role", None) is not None and item.role.value == "assistant":
                usage = usage + Usage.from_metadata(getattr(item, "metadata", None))
        answer = clean_text((message.content if message is not None else "") or "")
        if not answer.strip():
            ran = sum(1 for c in calls if not c.refused)
            raise PlanningError(f"the model ended without an answer (after {ran} function call(s))")
        trace = Plan(
            goal=goal,
            steps=[
                PlanStep(function=c.function, args=c.args, output=f"call{number}")
                for number, c in enumerate((c for c in calls if not c.refused), 1)
            ],
        )
        return FunctionCallingResult(answer=answer, trace=trace, calls=calls, usage=usage)


def _still_calling(message: ChatMessageContent | None) -> bool:
    from semantic_kernel.contents import FunctionCallContent

    return message is not None and any(isinstance(item, FunctionCallContent) for item in message.items)


def _not_callable_as_tools(kernel: Kernel) -> set[str]:
    """Functions whose tool schema would ask the model for the kernel itself.

    A native function's ``kernel: Kernel`` parameter is injected by semantic-kernel, but unless it is
    annotated ``{"include_in_function_choices": False}`` it also lands in the tool schema, which then
    cannot even be serialised. Such functions are left off the allow-list rather than failing the run.
    """
    unusable: set[str] = set()
    for metadata in kernel.get_full_list_of_function_metadata():
        for parameter in metadata.parameters:
            injected = parameter.name == "kernel" or parameter.type_ in ("Kernel", "KernelArguments")
            if injected and parameter.include_in_function_choices:
                unusable.add(f"{metadata.plugin_name}.{metadata.name}")
    return unusable
