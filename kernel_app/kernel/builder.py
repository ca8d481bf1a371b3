"""Build a semantic-kernel ``Kernel`` from settings: plugins (strictly loaded), filters, model service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel_app.base.config import Settings
from kernel_app.base.paths import builtin_plugins_dir
from kernel_app.base.usage import record_usage
from kernel_app.kernel.filters import (
    fit_execution_settings,
    refuse_empty_prompt,
    require_called_functions,
    require_variables,
    trace_function,
    track_function,
)
from kernel_app.kernel.plugin_folders.loader import LoadReport, PluginDirectory, load_plugin_directories

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase


@dataclass
class BuiltKernel:
    kernel: Kernel
    report: LoadReport


# Functions every kernel has besides plugin folders (added in build_kernel), so lint can check templates
# that call them before any kernel exists.
OTHER_FUNCTIONS: dict[str, list[str]] = {
    "memory": ["recall", "ask", "save"],
    "TextMemoryPlugin": ["recall", "save"],
    "ConversationSummaryPlugin": ["SummarizeConversation"],
    # semantic-kernel's core plugins, for templates only (kernel_app.kernel.core_plugins, AppKernel).
    "MathPlugin": ["Add", "Subtract", "Multiply", "Divide"],
    "TextPlugin": [
        *("trim", "trim_start", "trim_end", "uppercase", "lowercase"),
        *("trimStart", "trimEnd", "length", "concat", "echo"),
    ],
    "WaitPlugin": ["wait", "seconds"],
}


def other_functions(settings: Settings) -> dict[str, list[str]]:
    """OTHER_FUNCTIONS, plus semantic-kernel's HttpPlugin where the settings turn it on."""
    if not settings.http_plugin:
        return OTHER_FUNCTIONS
    return {**OTHER_FUNCTIONS, "http": ["getAsync", "postAsync", "putAsync", "deleteAsync"]}


def plugin_directories(settings: Settings) -> list[PluginDirectory]:
    """The built-in plugins (trusted: they ship with us) and the user's directories, which override them."""
    directories = [PluginDirectory(builtin_plugins_dir(), trusted=True, builtin=True)]
    directories += [PluginDirectory(path, trusted=settings.is_trusted(path)) for path in settings.plugins_dirs]
    return directories


def build_kernel(
    settings: Settings,
    *,
    chat_service: ChatCompletionClientBase | None = None,
    with_service: bool = True,
) -> BuiltKernel:
    """A kernel with every plugin that loaded; ``report`` keeps the problems of those that did not."""
    from semantic_kernel.filters.filter_types import FilterTypes
    from semantic_kernel.functions import KernelPlugin

    from kernel_app.kernel.app_kernel import AppKernel
    from kernel_app.kernel.memory_plugin import MemoryPlugin, TextMemoryPlugin

    report = load_plugin_directories(plugin_directories(settings), other_functions=other_functions(settings))
    from kernel_app.kernel.screening import use_screen
    from kernel_app.providers.content_safety import create_screen

    kernel = AppKernel()
    screen = create_screen(settings)
    use_screen(kernel, screen)
    for name, functions in report.plugins.items():
        kernel.add_plugin(KernelPlugin(name=name, functions=functions))
    memory = MemoryPlugin(lambda: _open_memory(settings), screen=screen)
    kernel.add_plugin(memory, plugin_name="memory")
    kernel.add_plugin(TextMemoryPlugin(memory), plugin_name="TextMemoryPlugin")  # Semantic Kernel's names
    kernel.add_plugin(_conversation_summary_plugin(), plugin_name="ConversationSummaryPlugin")
    if settings.http_plugin:
        from semantic_kernel.core_plugins import HttpPlugin

        kernel.add_plugin(HttpPlugin(), plugin_name="http")
    # First: the execute_tool span covers the other filters' refusals (a missing variable) too.
    kernel.add_filter(FilterTypes.FUNCTION_INVOCATION, trace_function)
    kernel.add_filter(FilterTypes.FUNCTION_INVOCATION, track_function)  # next: the arguments as given
    kernel.add_filter(FilterTypes.FUNCTION_INVOCATION, require_variables)
    kernel.add_filter(FilterTypes.FUNCTION_INVOCATION, require_called_functions)
    kernel.add_filter(FilterTypes.FUNCTION_INVOCATION, fit_execution_settings)
    kernel.add_filter(FilterTypes.FUNCTION_INVOCATION, record_usage)
    kernel.add_filter(FilterTypes.PROMPT_RENDERING, refuse_empty_prompt)
    if chat_service is None and with_service:
        from kernel_app.providers import create_chat_service

        chat_service = create_chat_service(settings)
    if chat_service is not None:
        from kernel_app.providers.model_spans import trace_model_calls

        kernel.add_service(trace_model_calls(chat_service))
    return BuiltKernel(kernel, report)


def _conversation_summary_plugin() -> object:
    """semantic-kernel's core ConversationSummaryPlugin (the course's templates call it), described as what
    it is for a planner (kernel_app.kernel.conversation_summary)."""
    from kernel_app.kernel.conversation_summary import conversation_summary_plugin

    return conversation_summary_plugin()


def _open_memory(settings: Settings) -> object:
    from memories.backend import open_store

    return open_store(settings.memory_dir, database_url=settings.database_url)
