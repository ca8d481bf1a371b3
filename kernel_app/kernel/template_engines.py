"""semantic-kernel's handlebars and jinja2 prompt templates, calling functions the way template authors write them.

semantic-kernel 1.45 makes one helper per kernel function (``prompt_template/utils/
template_function_helpers.py``) and, for both engines, drops the positional arguments a template passes:
``{{TextMemoryPlugin-recall semanticQuery}}`` and ``{{ TextMemoryPlugin_recall(semanticQuery) }}`` run the
function without its query. Its handlebars engine (pybars) also reads ``{{TextMemoryPlugin.recall
semanticQuery}}``, the spelling Semantic Kernel samples use, as the path ``TextMemoryPlugin`` -> ``recall``
into the variables ("Could not find object attribute 'TextMemoryPlugin.recall'"), and neither engine finds
a function by the names the semantic-kernel syntax resolves (``{{time.Date}}``: any case, old plugin names,
the core plugins templates call: kernel_app.kernel.app_kernel).

We wrap rather than patch: these subclasses render as semantic-kernel's do (same helpers, same escaping, same
errors), with three additions, each for a call semantic-kernel would otherwise fail or run wrong:

- positional arguments go to the function's parameters in order, the first to its first (``input``) parameter
  as the semantic-kernel syntax does (``{{Plugin.function $x}}``); named arguments win over positional ones;
- a handlebars ``{{Plugin.function x}}`` (a dotted name with arguments, or a subexpression's dotted helper)
  calls that function, unless ``Plugin`` is a variable the call was given: the dot is read as the dash
  semantic-kernel names helpers with (``Plugin-function``) before pybars compiles the template;
- a call semantic-kernel has no helper for (``TextMemorySkill-recall``, ``mathplugin_add``) gets one for the
  function :func:`kernel_app.kernel.app_kernel.template_function` resolves.

``tests/kernel/test_template_engines.py`` pins semantic-kernel's behaviour, so a release that changes it shows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pybars import Compiler, PybarsError
from pydantic import PrivateAttr
from semantic_kernel.exceptions import HandlebarsTemplateRenderException
from semantic_kernel.functions.kernel_arguments import KernelArguments
from semantic_kernel.prompt_template import HandlebarsPromptTemplate, Jinja2PromptTemplate
from semantic_kernel.prompt_template.utils import (
    HANDLEBAR_SYSTEM_HELPERS,
    JINJA2_SYSTEM_HELPERS,
    create_template_helper_from_function,
)

from kernel_app.base.errors import UsageError
from kernel_app.kernel.function_info import user_parameters
from kernel_app.kernel.plugin_folders.template_lint import TemplateCall

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.functions import KernelFunction


class AppHandlebarsPromptTemplate(HandlebarsPromptTemplate):
    """semantic-kernel's handlebars template with positional arguments and dotted calls (module docstring)."""

    _compiled: dict[str, Any] = PrivateAttr(default_factory=dict)  # rewritten template -> compiled

    async def render(self, kernel: Kernel, arguments: KernelArguments | None = None) -> str:
        # semantic-kernel's HandlebarsPromptTemplate.render, with our helpers and the dotted calls rewritten.
        if not self._template_compiler:
            return ""
        arguments = self._get_trusted_arguments(KernelArguments() if arguments is None else arguments)
        template = self.prompt_template_config.template or ""
        source, extra = _rewrite_dotted(template, kernel, arguments)
        helpers = _helpers(kernel, arguments, self, "handlebars", extra)
        helpers.update(HANDLEBAR_SYSTEM_HELPERS)
        compiler = self._template_compiler if source == template else self._compile(source)
        try:
            return compiler(arguments, helpers=helpers)
        except PybarsError as exc:
            raise HandlebarsTemplateRenderException(
                f"Error rendering prompt template: {template} with arguments: {arguments}: error: {exc}"
            ) from exc

    def _compile(self, source: str) -> Any:
        if source not in self._compiled:
            self._compiled[source] = Compiler().compile(source)
        return self._compiled[source]


class AppJinja2PromptTemplate(Jinja2PromptTemplate):
    """semantic-kernel's jinja2 template with positional arguments and resolved names (module docstring)."""

    async def render(self, kernel: Kernel, arguments: KernelArguments | None = None) -> str:
        from jinja2 import TemplateError
        from semantic_kernel.exceptions import Jinja2TemplateRenderException

        # semantic-kernel's Jinja2PromptTemplate.render, with our helpers.
        if not self._env:
            return ""
        arguments = self._get_trusted_arguments(KernelArguments() if arguments is None else arguments)
        template = self.prompt_template_config.template
        if template is None:
            raise Jinja2TemplateRenderException("Error rendering template, template is None")
        helpers: dict[str, Any] = dict(JINJA2_SYSTEM_HELPERS)
        helpers.update(_helpers(kernel, arguments, self, "jinja2", _jinja2_calls(self, kernel)))
        try:
            return await self._env.from_string(template, globals=helpers).render_async(**arguments)
        except TemplateError as exc:
            raise Jinja2TemplateRenderException(
                f"Error rendering prompt template: {template} with arguments: {arguments}: error: {exc}"
            ) from exc


TEMPLATE_CLASSES: dict[str, type[HandlebarsPromptTemplate | Jinja2PromptTemplate]] = {
    "handlebars": AppHandlebarsPromptTemplate,
    "jinja2": AppJinja2PromptTemplate,
}


def _helpers(
    kernel: Kernel,
    arguments: KernelArguments,
    template: HandlebarsPromptTemplate | Jinja2PromptTemplate,
    template_format: Literal["handlebars", "jinja2"],
    extra: dict[str, KernelFunction],
) -> dict[str, Callable[..., Any]]:
    """A helper per kernel function (named as semantic-kernel names it) and per resolved name in ``extra``."""
    unsafe = template._get_allow_dangerously_set_function_output()
    functions: dict[str, KernelFunction] = {}
    for plugin in kernel.plugins.values():
        for function in plugin:
            name = function.fully_qualified_name
            functions[name.replace("-", "_") if template_format == "jinja2" else name] = function
    for name, function in extra.items():
        functions.setdefault(name, function)
    return {
        name: _positional(
            function,
            create_template_helper_from_function(
                function, kernel, arguments, template_format, unsafe, enable_async=template_format == "jinja2"
            ),
            template_format,
        )
        for name, function in functions.items()
    }


def _positional(function: KernelFunction, helper: Callable[..., Any], template_format: str) -> Callable[..., Any]:
    """``helper`` with the positional arguments it would drop given to the function's parameters in order."""
    names = [p.name for p in user_parameters(function.metadata)]
    label = function.fully_qualified_name.replace("-", ".")

    if template_format == "handlebars":

        def call_handlebars(this: Any, *args: Any, **kwargs: Any) -> Any:
            return helper(this, **_bind(label, names, args, kwargs))

        return call_handlebars

    async def call_jinja2(*args: Any, **kwargs: Any) -> Any:
        return await helper(**_bind(label, names, args, kwargs))

    return call_jinja2


def _bind(label: str, names: list[str], args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    if len(args) > len(names):
        takes = f"{len(names)} ({', '.join(names)})" if names else "none"
        raise UsageError(
            f"{label}: a template passes it {len(args)} arguments without names, but it takes {takes}:"
            " name the others (name=value)"
        )
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _rewrite_dotted(template: str, kernel: Kernel, arguments: KernelArguments) -> tuple[str, dict[str, Any]]:
    """The template with each dotted call that names a function dashed, and the functions by helper name."""
    from kernel_app.kernel.app_kernel import template_function

    extra: dict[str, Any] = {}
    source = list(template)
    dotted, calls = _calls(template, "handlebars")
    for dot, plugin, name in dotted:
        if plugin in arguments:
            continue  # a variable of that name: pybars reads its field, as written
        function = template_function(kernel, plugin, name)
        if function is not None:
            source[dot] = "-"
            extra[f"{plugin}-{name}"] = function
    # Dashed calls semantic-kernel has no helper for (another case, an old plugin name, a core plugin).
    for call in calls:
        if call.plugin is not None and f"{call.plugin}-{call.function}" not in extra:
            function = template_function(kernel, call.plugin, call.function)
            if function is not None:
                extra[f"{call.plugin}-{call.function}"] = function
    return "".join(source), extra


def _jinja2_calls(template: Jinja2PromptTemplate, kernel: Kernel) -> dict[str, Any]:
    """The functions a jinja2 template calls as ``Plugin_function``, by the name it writes."""
    from kernel_app.kernel.app_kernel import template_function

    extra: dict[str, Any] = {}
    for call in _calls(template.prompt_template_config.template or "", "jinja2")[1]:
        function = template_function(kernel, call.plugin, call.function, joined=call.joined)
        if function is not None:
            extra[call.function] = function
    return extra


@functools.lru_cache(maxsize=512)
def _calls(template: str, template_format: str) -> tuple[tuple[tuple[int, str, str], ...], tuple[TemplateCall, ...]]:
    """The template's dotted handlebars calls and all its calls (read once per template, not per render)."""
    from kernel_app.kernel.plugin_folders.template_lint import analyse, handlebars_dotted_calls

    dotted = tuple(handlebars_dotted_calls(template)) if template_format == "handlebars" else ()
    return dotted, tuple(analyse(template, template_format).calls)
