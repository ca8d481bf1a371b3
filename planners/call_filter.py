"""The auto-function-invocation filter of the function-calling planner: every call the model makes
passes here, is checked, approved (``planners.approval``), run, and recorded as a :class:`Call`.

A call does not run when it is outside the allow-list, when its arguments break the plan rules
(``planners.values``; ``null`` for a required parameter), or when it is not approved. The model then
gets ``"not run: <why>"`` as the tool result and can still answer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from kernel_app.base.effects import effect_of
from planners.approval import NOT_APPROVED, ApproveCall, CallRequest, format_args, is_approved
from planners.catalogue import FunctionCatalogue
from planners.quoting import clean_text
from planners.validation import null_required
from planners.values import value_problem

if TYPE_CHECKING:
    from semantic_kernel.filters.auto_function_invocation.auto_function_invocation_context import (
        AutoFunctionInvocationContext,
    )

Next = Callable[[Any], Awaitable[None]]


@dataclass
class Call:
    """One function call the model made, in the order semantic-kernel handled them."""

    function: str  # Plugin.Function
    args: dict[str, Any]
    output: str
    seconds: float
    round: int  # 0-based model round trip
    refused: bool = False  # not run; ``note`` says why
    note: str = ""

    def call_text(self, limit: int = 60) -> str:
        """``Math.add(a=1, b=2)`` on one line, values escaped and shortened."""
        return f"{self.function}({format_args(self.args, limit)})"

    def to_dict(self) -> dict[str, Any]:
        # A refused call's arguments may be what got it refused (NaN, 1000 levels deep): only its text.
        return {
            "function": self.function,
            "call": self.call_text(),
            **({"args": self.args, "output": self.output} if not self.refused else {"not_run": self.note}),
            "seconds": round(self.seconds, 3),
            "round": self.round,
        }


@dataclass
class CallState:
    """What one run's filter collects; ``approval_error`` is an exception raised by the approval
    callback (Ctrl-D at the prompt...), re-raised by the planner as itself rather than as a service failure."""

    calls: list[Call]
    approval_error: BaseException | None = None


def capture_calls(
    allowed: set[str], catalogue: FunctionCatalogue, state: CallState, approve_call: ApproveCall | None
) -> Callable[[AutoFunctionInvocationContext, Next], Awaitable[None]]:
    """The filter; ``allowed`` holds semantic-kernel's fully qualified names (``Plugin-Function``)."""

    async def capture(context: AutoFunctionInvocationContext, next: Next) -> None:
        from semantic_kernel.functions import FunctionResult

        function = context.function
        qualified = function.fully_qualified_name
        name = qualified.replace("-", ".", 1)
        # KernelArguments subclasses a bare dict (untyped in semantic-kernel 1.45).
        args = {str(k): v for k, v in cast("Mapping[object, Any]", context.arguments or {}).items()}
        round_ = context.request_sequence_index

        def refuse(why: str) -> None:
            context.function_result = FunctionResult(function=function.metadata, value=why)
            state.calls.append(Call(name, args, "", 0.0, round_, refused=True, note=why))

        if qualified not in allowed:
            # semantic-kernel already refuses these; this is the belt to its braces.
            refuse(f"not run: {name} is not allowed")
            return
        problem = _argument_problem(catalogue, name, args)
        if problem is not None:
            refuse(f"not run: {problem}")
            return
        request = CallRequest(name, args, effect_of(function), round_)
        try:
            approved = await is_approved(request, approve_call)
        except BaseException as error:
            state.approval_error = error
            raise
        if not approved:
            refuse(NOT_APPROVED)
            return
        began = time.perf_counter()
        await next(context)
        result = context.function_result
        output = clean_text("" if result is None or result.value is None else str(result))
        # semantic-kernel 1.45 bug: for a prompt function the value is a list of ChatMessageContent, and
        # FunctionResultContent.from_function_call_content_and_result puts that list itself in the tool
        # message, which becomes its str(): ~1 KB of "[ChatMessageContent(inner_content=...". Hand it
        # the text instead (str(FunctionResult) is the first message's text), keeping the metadata.
        # The same for a text with a lone surrogate, which would make the next request fail to encode.
        if result is not None and (not isinstance(result.value, str) or result.value != output):
            context.function_result = FunctionResult(
                function=function.metadata, value=output, metadata=dict(result.metadata or {})
            )
        state.calls.append(Call(name, args, output, time.perf_counter() - began, round_))

    return capture


def _argument_problem(catalogue: FunctionCatalogue, name: str, args: dict[str, Any]) -> str | None:
    """The plan rules for argument values, applied to a tool call: the same checks as validation."""
    for key, value in args.items():
        problem = value_problem(value)
        if problem is not None:
            return f"argument '{clean_text(key)[:40]}': {problem}"
    info = catalogue.get(name)
    missing = null_required(info, args) if info is not None else None
    if missing is not None:
        return f"required argument '{missing}' is null: give it a value"
    return None
