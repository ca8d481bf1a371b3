"""Kernel filters that make semantic-kernel's quiet failures loud, and resolve names as authors meant them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kernel_app.base import telemetry
from kernel_app.base.errors import ConfigError, MissingVariableError, UsageError
from kernel_app.kernel.function_info import is_required, user_parameters

if TYPE_CHECKING:
    from semantic_kernel.filters.functions.function_invocation_context import FunctionInvocationContext
    from semantic_kernel.filters.prompts.prompt_render_context import PromptRenderContext

# Keys of KernelFunctionMetadata.additional_properties the loader fills for prompt functions.
TEMPLATE_VARIABLES = "template_variables"  # names exactly as the template writes them
TEMPLATE_FIELDS = "template_fields"  # variable -> fields the template reads from it
TEMPLATE_ITERATED = "template_iterated"  # variables a loop of the template runs over
TEMPLATE_CALLS = "template_calls"  # (plugin or None, function, joined) for each function the template calls


async def require_variables(
    context: FunctionInvocationContext, next: Callable[[FunctionInvocationContext], Awaitable[None]]
) -> None:
    """Refuse to run a function that lacks a required variable; give the template the names it reads.

    semantic-kernel 1.45 renders a missing ``{{$var}}`` as "" even when ``is_required`` is true, so the
    model gets a half-empty prompt and answers something plausible and wrong. A variable is required
    when it is marked required and has no non-empty default (semantic-kernel applies defaults later,
    in ``update_arguments_with_defaults``, so a default counts as given).

    Names match case-insensitively (as .NET Semantic Kernel resolves them, and as many samples expect:
    ``{{$INPUT}}`` with a declared ``input``): each variable the template reads is given the value of
    the argument or declared variable whose name matches it regardless of case.
    """
    function = context.function
    given = _lower_keys(context.arguments)
    for parameter in user_parameters(function.metadata):
        if parameter.name in context.arguments or parameter.name.lower() in given:
            continue
        if not is_required(parameter):
            if function.is_prompt:
                # Give optional prompt variables their (possibly empty) default explicitly: semantic-kernel
                # skips empty defaults and then logs a "variable not found" warning for each one.
                context.arguments[parameter.name] = parameter.default_value or ""
            continue
        raise MissingVariableError(
            function.fully_qualified_name.replace("-", "."), parameter.name, parameter.description or ""
        )
    if not function.is_prompt:
        await next(context)
        return
    _alias_template_names(context.arguments, function.metadata.additional_properties or {})
    _check_structured(function, context.arguments)
    admitted = _admit_structured(function, context.arguments)
    try:
        await next(context)
    finally:
        for variable, before in admitted:
            variable.allow_dangerously_set_content = before


async def require_called_functions(
    context: FunctionInvocationContext, next: Callable[[FunctionInvocationContext], Awaitable[None]]
) -> None:
    """Refuse to run a prompt whose template calls a function this kernel does not have, in one line.

    A prompt may call a plugin its author adds later (lint warns, the function loads). Without it,
    semantic-kernel 1.45 fails deep in rendering, differently per engine: "Function `X` not found" wrapped
    in a render error (semantic-kernel syntax), an unknown helper (handlebars), an undefined name (jinja2).
    We check first, with the lookup templates get (function_lookup), and name the missing function.
    """
    from kernel_app.kernel.app_kernel import template_catalogue
    from kernel_app.kernel.plugin_folders.function_lookup import find_function

    function = context.function
    calls = (function.metadata.additional_properties or {}).get(TEMPLATE_CALLS) or ()
    if function.is_prompt and calls:
        catalogue = template_catalogue(context.kernel)
        for plugin, name, joined in calls:
            if find_function(catalogue, plugin, name, joined=joined) is None:
                called = f"{plugin}.{name}" if plugin else name
                raise UsageError(
                    f"{function.fully_qualified_name.replace('-', '.')}: its template calls {called}, which is not"
                    f" loaded: add the plugin that has it (a folder with its Python needs --trust DIR)"
                )
    await next(context)


def _alias_template_names(arguments: Any, properties: dict[str, Any]) -> None:
    by_lower = {str(k).lower(): k for k in arguments}
    for name in properties.get(TEMPLATE_VARIABLES, ()):
        if name not in arguments and name.lower() in by_lower:
            arguments[name] = arguments[by_lower[name.lower()]]


def _check_structured(function: Any, arguments: Any) -> None:
    """A template that loops over a variable or reads its fields cannot use a plain string."""
    from kernel_app.kernel.plugin_folders.structured_vars import check_shape

    properties = function.metadata.additional_properties or {}
    name = function.fully_qualified_name.replace("-", ".")
    for variable, fields in (properties.get(TEMPLATE_FIELDS) or {}).items():
        if variable in arguments:
            check_shape(name, variable, arguments[variable], fields=fields)
    for variable in properties.get(TEMPLATE_ITERATED) or ():
        if variable in arguments:
            check_shape(name, variable, arguments[variable], iterated=True)


def _admit_structured(function: Any, arguments: Any) -> list[tuple[Any, bool]]:
    """Let a template render the structured values it was given, still encoded.

    semantic-kernel refuses any non-string argument ("doesn't support automatic encoding") unless the
    variable is marked ``allow_dangerously_set_content``, its defence against prompt injection through
    values. The values we admit are encoded all the same: a ChatHistory renders as XML with its text
    escaped (``str(history)``, ``message(item)``, ``{{#message}}``; ``{{Content}}`` reads an escaped copy,
    see structured_vars), and the string leaves of objects and lists are HTML-escaped here, as
    semantic-kernel escapes strings (pybars does not escape ``{{field}}``). The mark is lifted again after
    the call, so later string values are escaped by semantic-kernel as before.
    """
    from semantic_kernel.contents import ChatHistory
    from semantic_kernel.prompt_template.input_variable import InputVariable

    template = getattr(function, "prompt_template", None)
    config = getattr(template, "prompt_template_config", None)
    if config is None or config.allow_dangerously_set_content:
        return []
    admitted: list[tuple[Any, bool]] = []
    for name in list(arguments):
        value = arguments[name]
        if not isinstance(value, ChatHistory | dict | list | tuple):
            continue
        variable = next((v for v in config.input_variables if v.name == name), None)
        if variable is None:
            variable = InputVariable(name=name, is_required=False)
            config.input_variables.append(variable)
        if variable.allow_dangerously_set_content:
            continue
        if not isinstance(value, ChatHistory):
            arguments[name] = _escape_leaves(value)
        admitted.append((variable, False))
        variable.allow_dangerously_set_content = True
    return admitted


def _escape_leaves(value: Any) -> Any:
    from html import escape

    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {k: _escape_leaves(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escape_leaves(v) for v in value]
    return value


async def track_function(
    context: FunctionInvocationContext, next: Callable[[FunctionInvocationContext], Awaitable[None]]
) -> None:
    """Tell the call log which function (with which arguments, as given) a model call is made for, and what
    the outermost function returned (a native function's result is not its model's answer).

    The first filter, so it sees the arguments before the others fill in defaults. A streamed function's
    model call runs while its caller reads the stream, after this filter returned (semantic-kernel 1.45's
    ``invoke_stream`` iterates the result outside the filters), so its stream is wrapped to carry the name;
    the result of a streamed prompt function is its model's answer, already logged.
    """
    from contextlib import suppress
    from inspect import isasyncgen

    from kernel_app.providers.call_log import current_functions, frame, in_function, scoped_stream

    outermost = not current_functions()
    entry = frame(context.function.fully_qualified_name, context.arguments)
    with in_function(entry):
        await next(context)
    result = context.result
    if context.is_streaming and result is not None and isasyncgen(result.value):
        result.value = scoped_stream(result.value, function=entry)
    elif outermost and entry.on_result and result is not None:
        with suppress(Exception):  # the log never breaks a call: without it, the calls just lack the result
            entry.report_result(_result_text(result.value))


def _result_text(value: Any) -> str:
    from semantic_kernel.contents import ChatMessageContent

    if isinstance(value, list) and value and all(isinstance(v, ChatMessageContent) for v in value):
        return "".join(str(v) for v in value)  # a prompt function's answer, as `run` prints it
    return value if isinstance(value, str) else str(value)


async def fit_execution_settings(
    context: FunctionInvocationContext, next: Callable[[FunctionInvocationContext], Awaitable[None]]
) -> None:
    """Use a prompt's settings when they are keyed by a service id nobody registered.

    Real configs key their settings by the service id of the app they came from (``"chat"``); semantic-
    kernel 1.45 then finds no service and fails with a bare "No service found.". When no key names a
    registered service (or ``default``) and exactly one set is present, it is used for whichever service
    runs the prompt; several such sets with no ``default`` are ambiguous: a one-line error names them.
    """
    from semantic_kernel.functions.kernel_function_from_prompt import KernelFunctionFromPrompt

    function = context.function
    if not isinstance(function, KernelFunctionFromPrompt):  # the only functions with settings (is_prompt)
        await next(context)
        return
    settings = function.prompt_execution_settings
    services = list(getattr(context.kernel, "services", {}) or {})
    if settings and services and not any(k in services or k == "default" for k in settings):
        if len(settings) != 1:
            ids = ", ".join(sorted(settings))
            raise ConfigError(
                f"{function.fully_qualified_name.replace('-', '.')}: execution_settings are keyed by {ids}, but the "
                f'service configured is {", ".join(services)}: add a "default" set, or rename one to {services[0]}'
            )
        (only,) = settings.values()  # semantic-kernel passes the chain as `next`: no builtin next() here
        only.service_id = None
        function.prompt_execution_settings = {"default": only}
    await next(context)


async def refuse_empty_prompt(
    context: PromptRenderContext, next: Callable[[PromptRenderContext], Awaitable[None]]
) -> None:
    """Never send a prompt that rendered to nothing (every variable empty): the model would answer anyway."""
    await next(context)
    rendered = context.rendered_prompt
    if rendered is not None and not _has_text(rendered):
        name = context.function.fully_qualified_name.replace("-", ".")
        raise UsageError(f"{name}: the prompt rendered empty: give it some input (--input, --var NAME=VALUE)")


def _has_text(rendered: str) -> bool:
    import re

    # A prompt of only empty <message> tags is empty too.
    return bool(re.sub(r"</?message[^>]*>|</?chat_history>", "", rendered).strip())


def _lower_keys(arguments: object) -> set[str]:
    return {str(k).lower() for k in arguments}  # type: ignore[attr-defined]


async def trace_function(
    context: FunctionInvocationContext, next: Callable[[FunctionInvocationContext], Awaitable[None]]
) -> None:
    """An ``execute_tool {Plugin.Function}`` span for every function the kernel runs, while telemetry is on.

    Model calls a prompt function makes are its children; the model's call id (when the conversation
    engine runs the call) is ``gen_ai.tool.call.id``. Not semantic-kernel's own function spans: see
    kernel_app.base.telemetry.
    """
    if not telemetry.active():
        await next(context)
        return
    from opentelemetry.trace import Status, StatusCode

    name = context.function.fully_qualified_name.replace("-", ".")
    attributes: dict[str, Any] = {
        telemetry.OPERATION: "execute_tool",
        telemetry.TOOL_NAME: name,
        telemetry.TOOL_TYPE: "function",
    }
    with telemetry.take_tool_call_id() as call_id:
        if call_id:
            attributes[telemetry.TOOL_CALL_ID] = call_id
        conversation = telemetry.conversation_id()
        if conversation:
            attributes[telemetry.CONVERSATION_ID] = conversation
        with telemetry.tracer().start_as_current_span(
            f"execute_tool {name}", attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                await next(context)
            except BaseException as error:
                span.set_attribute(telemetry.ERROR_TYPE, type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
                raise
