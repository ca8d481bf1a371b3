"""The semantic-kernel ``Kernel`` with function names resolved the way template authors mean them.

semantic-kernel 1.45 looks functions up by exact name, so ``{{time.Date}}`` (written for .NET, which
ignores case) fails with "Function 'Date' not found in plugin 'time'" on every run. We wrap the lookup
rather than edit templates: exact names still win, and only a name that semantic-kernel cannot find is
retried with :func:`kernel_app.kernel.plugin_folders.function_lookup.find_function` (case-insensitive,
old plugin names), then among the core plugins only templates call (:mod:`kernel_app.kernel.core_plugins`).
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
    # semantic-kernel's core plugins templates call by name (MathPlugin...), made on first use.
    _template_plugins: dict[str, Any] | None = PrivateAttr(default=None)

    def get_function(self, plugin_name: str | None, function_name: str) -> Any:
        try:
            return super().get_function(plugin_name, function_name)
        except (KernelFunctionNotFoundError, KernelPluginNotFoundError):
            found = find_function(template_catalogue(self), plugin_name, function_name)
            if found is None:
                raise
            plugin, function = found
            if plugin in self.plugins:
                return super().get_function(plugin, function)
            return self.template_plugins()[plugin][function]

    def template_plugins(self) -> dict[str, Any]:
        """The core plugins only templates call: ``{name: KernelPlugin}``, never offered to the model."""
        if self._template_plugins is None:
            from kernel_app.kernel.core_plugins import template_plugins

            self._template_plugins = template_plugins()  # a plugin of the kernel with the same name wins
        return self._template_plugins


def template_catalogue(kernel: Any) -> dict[str, list[str]]:
    """Every function a template of ``kernel`` may call, by plugin: the kernel's, then the template-only ones."""
    catalogue = {name: list(plugin.functions) for name, plugin in kernel.plugins.items()}
    if isinstance(kernel, AppKernel):
        for name, plugin in kernel.template_plugins().items():
            catalogue.setdefault(name, list(plugin.functions))
    return catalogue


def template_function(kernel: Any, plugin: str | None, function: str, *, joined: bool = False) -> Any | None:
    """The function a template call names (as :func:`find_function` resolves it), or None."""
    found = find_function(template_catalogue(kernel), plugin, function, joined=joined)
    if found is None:
        return None
    if found[0] in kernel.plugins:
        return kernel.plugins[found[0]][found[1]]
    return kernel.template_plugins()[found[0]][found[1]]
