"""MCP: the kernel's functions as tools named ``Plugin-Function``, its prompt functions as prompts.

Served over stdio (``kernel-app mcp``, for desktop MCP clients) and streamable HTTP (``/mcp`` on
``kernel-app serve``). Built on the ``mcp`` package's low-level ``Server`` rather than
semantic-kernel's ``kernel.as_mcp_server()``, which (1.45) names tools without their plugin unless
asked (so ``Math.add`` and ``Text.add`` would collide), returns Python ``repr`` for non-text results
and injects a ``server`` argument into every call. Here results are text, or JSON for data, and the
tool's annotations say whether it only reads (kernel_app.base.effects): the MCP client is the one that
asks its user before calling a tool with an effect.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kernel_app import __version__
from kernel_app.base.errors import KernelAppError, innermost_message
from memories.scope import LOCAL_SCOPE, CollectionScope, using_scope

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from semantic_kernel import Kernel
    from semantic_kernel.functions import KernelArguments

SERVER_NAME = "kernel-app"
INSTRUCTIONS = (
    "Kernel App's plugins: business-thinking (SWOT and friends), design thinking, writing, math, text, time "
    "and memory. Tools are named Plugin-Function."
)


def tool_name(plugin: str, function: str) -> str:
    return f"{plugin}-{function}"


def _functions(kernel: Kernel) -> dict[str, Any]:
    found = {}
    for plugin_name, plugin in kernel.plugins.items():
        for function in plugin:
            found[tool_name(plugin_name, function.name)] = function
    return dict(sorted(found.items()))


def _visible(parameter: Any) -> bool:
    return bool(parameter.name) and parameter.include_in_function_choices and parameter.name != "kernel"


def _schema(function: Any) -> dict[str, Any]:
    properties = {}
    for parameter in function.metadata.parameters:
        if _visible(parameter):
            schema = dict(parameter.schema_data or {})
            if schema.get("type") in (None, "object") and "properties" not in schema:
                # A prompt function's variables are text; semantic-kernel types an undeclared one "object".
                schema["type"] = "string"
            if parameter.description and "description" not in schema:
                schema["description"] = parameter.description
            properties[parameter.name] = schema
    required = [p.name for p in function.metadata.parameters if _visible(p) and p.is_required]
    return {"type": "object", "properties": properties, "required": required}


def kernel_arguments(values: Mapping[str, Any] | None) -> KernelArguments:
    """An MCP client's arguments as the function's variables. Not ``KernelArguments(**values)``: there an
    argument named ``settings`` would be taken for the execution settings instead of a variable."""
    from semantic_kernel.functions import KernelArguments

    arguments = KernelArguments()
    arguments.update(values or {})
    return arguments


def build_server(kernel: Kernel, shared_collections: Iterable[str] = ()) -> Server[Any, Any]:
    """A low-level MCP server over ``kernel`` (no transport: see :func:`run_stdio`, :func:`http_app`).

    Over HTTP a tool runs in its caller's memory collection scope (``memories.scope``: their own
    collections and the ``shared_collections``): the session's task began in the server's lifespan, not in
    the request, so the scope the server's middleware set is not there; the request is, in the request
    context the SDK gives. Over stdio there is no request: the local user's, as always."""
    from mcp import types
    from mcp.server.lowlevel import Server

    from kernel_app.base.effects import Effect, effect_of
    from kernel_app.conversation.engine import result_text

    shared = frozenset(shared_collections)

    server: Server[Any, Any] = Server(SERVER_NAME, version=__version__, instructions=INSTRUCTIONS)
    functions = _functions(kernel)
    prompts = {name: f for name, f in functions.items() if f.metadata.is_prompt}

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        tools = []
        for name, function in functions.items():
            effect = effect_of(function)
            tools.append(
                types.Tool(
                    name=name,
                    title=f"{function.plugin_name}.{function.name}",
                    description=(function.description or "").strip() or None,
                    inputSchema=_schema(function),
                    annotations=types.ToolAnnotations(
                        readOnlyHint=effect is not Effect.WRITE,
                        destructiveHint=effect is Effect.WRITE,
                        openWorldHint=effect is Effect.WRITE,
                    ),
                )
            )
        return tools

    @server.call_tool()
    async def call_tool(name: str, arguments: dict[str, Any]) -> list[types.TextContent] | types.CallToolResult:
        function = functions.get(name)
        if function is None:
            return _error(f"no tool {name!r}: tools are named Plugin-Function, e.g. Math-add")
        from kernel_app.kernel.screening import require_clean, require_clean_values, screen_of

        screen = screen_of(kernel)
        try:
            with using_scope(_caller_scope(server, shared)):
                # What the client sends and what goes back pass the content screen: a block is the tool's error.
                await require_clean_values(screen, arguments or {}, "input")
                result = await kernel.invoke(function, kernel_arguments(arguments))
                text = result_text(result)
                await require_clean(screen, text, "output")
        except KernelAppError as error:
            return _error(str(error))
        except Exception as error:
            return _error(f"{function.plugin_name}.{function.name} failed: {innermost_message(error)}")
        return [types.TextContent(type="text", text=text)]

    @server.list_prompts()
    async def list_prompts() -> list[types.Prompt]:
        return [
            types.Prompt(
                name=name,
                title=f"{function.plugin_name}.{function.name}",
                description=(function.description or "").strip() or None,
                arguments=[
                    types.PromptArgument(name=p.name, description=p.description or None, required=bool(p.is_required))
                    for p in function.metadata.parameters
                    if _visible(p)
                ],
            )
            for name, function in prompts.items()
        ]

    @server.get_prompt()
    async def get_prompt(name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        from mcp.shared.exceptions import McpError

        function = prompts.get(name)
        if function is None:
            raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=f"no prompt {name!r}"))
        rendered = await function.prompt_template.render(kernel, kernel_arguments(arguments))
        return types.GetPromptResult(
            description=(function.description or "").strip() or None,
            messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=rendered))],
        )

    return server


def _caller_scope(server: Any, shared: frozenset[str]) -> CollectionScope:
    """The collection scope of the HTTP request that carries this call (the local user's without one)."""
    from kernel_app.interfaces.server.security import collection_scope

    try:
        request = server.request_context.request
    except LookupError:  # no request in progress (not reached from a call): the local user's
        request = None
    if request is None or not hasattr(request, "scope"):  # stdio: this machine's user
        return LOCAL_SCOPE
    return collection_scope(request, shared)


def _error(message: str) -> Any:
    from mcp import types

    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], isError=True)


async def run_stdio(kernel: Kernel) -> None:
    """Serve MCP on stdin/stdout until the client closes them (nothing else may write to stdout)."""
    from mcp.server.stdio import stdio_server

    server = build_server(kernel)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


class McpHttp:
    """Streamable HTTP for ``/mcp``: an ASGI endpoint, plus ``lifespan()`` to run in the app's lifespan."""

    def __init__(self, kernel: Kernel, shared_collections: Iterable[str] = ()) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        server = build_server(kernel, shared_collections)
        self.manager = StreamableHTTPSessionManager(app=server, json_response=False)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield
