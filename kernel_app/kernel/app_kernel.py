"""The semantic-kernel ``Kernel`` with function names resolved the way template authors mean them.

semantic-kernel 1.45 looks functions up by exact name, so ``{{time.Date}}`` (written for .NET, which
ignores case) fails with "Function 'Date' not found in plugin 'time'" on every run. We wrap the lookup
rather than edit templates: exact names still win, and only a name that semantic-kernel cannot find is
retried with :func:`kernel_app.kernel.plugin_folders.function_lookup.find_function` (case-insensitive,
old plugin names).
"""

from __future__ import annotations

from typing import Any

from pydantic import PrivateAttr
from semantic_kernel import Kernel
from semantic_kernel.exceptions import KernelFunctionNotFoundError, KernelPluginNotFoundError

from kernel_app.kernel.plugin_folders.function_lookup import find_function


class AppKernel(Kernel):
    # The content screen (kernel_app.providers.content_safety) every surface over this kernel uses: the
    # engine, the memory plugin, sourced answers and direct runs find it here (kernel.screening.screen_of).
    _content_screen: Any = PrivateAttr(default=None)

    def get_function(self, plugin_name: str | None, function_name: str) -> Any:
        try:
            return super().get_function(plugin_name, function_name)
        except (KernelFunctionNotFoundError, KernelPluginNotFoundError):
            catalogue = {name: list(plugin.functions) for name, plugin in self.plugins.items()}
            found = find_function(catalogue, plugin_name, function_name)
            if found is None:
                raise
            return super().get_function(*found)
