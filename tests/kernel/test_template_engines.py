"""Our handlebars and jinja2 templates call functions as Semantic Kernel templates write them (template_engines).

The first tests pin what semantic-kernel 1.45's own engines do with the same calls (drop a positional
argument, read ``{{Plugin.function x}}`` as a variable's path): the reason for the wrap. If one fails after an
upgrade, semantic-kernel changed, and kernel_app/kernel/template_engines.py may have less to do.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from semantic_kernel.exceptions import HandlebarsTemplateRenderException
from semantic_kernel.functions import KernelArguments, kernel_function
from semantic_kernel.prompt_template import HandlebarsPromptTemplate, Jinja2PromptTemplate, PromptTemplateConfig

from kernel_app.base.errors import UsageError
from kernel_app.kernel.app_kernel import AppKernel
from kernel_app.kernel.template_engines import AppHandlebarsPromptTemplate, AppJinja2PromptTemplate


class Probe:
    """Shows which arguments a call received."""

    @kernel_function(name="echo")
    def echo(self, input: Annotated[str, "a text"] = "", suffix: Annotated[str, "another"] = "") -> str:
        return f"[{input}{suffix}]"


def kernel() -> AppKernel:
    built = AppKernel()
    built.add_plugin(Probe(), plugin_name="Probe")
    return built


async def render(
    template_class: type, template: str, template_format: str, *, objects: bool = False, **arguments: Any
) -> str:
    # objects: values that are not strings (semantic-kernel renders them only when allowed to)
    config = PromptTemplateConfig(
        template=template, template_format=template_format, allow_dangerously_set_content=objects
    )
    return await template_class(prompt_template_config=config).render(kernel(), KernelArguments(**arguments))


# region what semantic-kernel 1.45 does


async def test_semantic_kernels_handlebars_drops_a_positional_argument() -> None:
    assert await render(HandlebarsPromptTemplate, "{{Probe-echo x}}", "handlebars", x="v") == "[]"


async def test_semantic_kernels_handlebars_reads_a_dotted_call_as_a_variable() -> None:
    with pytest.raises(HandlebarsTemplateRenderException, match=r"Could not find object attribute 'Probe\.echo'"):
        await render(HandlebarsPromptTemplate, "{{Probe.echo x}}", "handlebars", x="v")


async def test_semantic_kernels_jinja2_drops_a_positional_argument() -> None:
    assert await render(Jinja2PromptTemplate, "{{ Probe_echo(x) }}", "jinja2", x="v") == "[]"


# endregion
# region ours


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{Probe.echo x}}", "[v]"),  # the dot and a positional argument, as samples write it
        ("{{Probe-echo x}}", "[v]"),
        ('{{Probe.echo x "!"}}', "[v!]"),  # the next positional argument goes to the next parameter
        ('{{Probe.echo x suffix="!"}}', "[v!]"),
        ('{{Probe.echo x input="named"}}', "[named]"),  # a named argument wins
        ("{{probe.ECHO x}}", "[v]"),  # names in any case, as .NET resolves them
        ("{{probe-ECHO x}}", "[v]"),
        ('{{concat (Probe.echo x) "!"}}', "[v]!"),  # a subexpression's helper
        ("{{{Probe.echo x}}}", "[v]"),
        ("before {{Probe.echo x}} {{x}} after", "before [v] v after"),
    ],
)
async def test_handlebars_calls_with_positional_arguments_and_the_dot(template: str, expected: str) -> None:
    assert await render(AppHandlebarsPromptTemplate, template, "handlebars", x="v") == expected


async def test_a_variable_named_like_the_plugin_keeps_its_field() -> None:
    template = "{{customer.name}} {{Probe.echo customer.name}}"
    # "customer" is a variable, "Probe" is not: the first reads a field, the second calls.
    got = await render(AppHandlebarsPromptTemplate, template, "handlebars", objects=True, customer={"name": "Ann"})
    assert got == "Ann [Ann]"
    shadowed = await render(
        AppHandlebarsPromptTemplate, "{{Probe.echo x}}", "handlebars", objects=True, x="v", Probe={"echo": "f"}
    )
    assert shadowed == "f"  # a variable named Probe wins: pybars reads its field, as written


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ Probe_echo(x) }}", "[v]"),
        ('{{ Probe_echo(x, "!") }}', "[v!]"),
        ('{{ Probe_echo(x, suffix="!") }}', "[v!]"),
        ("{{ probe_ECHO(x) }}", "[v]"),
    ],
)
async def test_jinja2_calls_with_positional_arguments(template: str, expected: str) -> None:
    assert await render(AppJinja2PromptTemplate, template, "jinja2", x="v") == expected


@pytest.mark.parametrize(
    ("template_class", "template", "template_format"),
    [
        (AppHandlebarsPromptTemplate, '{{Probe.echo x "a" "b"}}', "handlebars"),
        (AppJinja2PromptTemplate, '{{ Probe_echo(x, "a", "b") }}', "jinja2"),
    ],
)
async def test_more_positional_arguments_than_parameters_is_one_line(
    template_class: type, template: str, template_format: str
) -> None:
    with pytest.raises(Exception) as caught:
        await render(template_class, template, template_format, x="v")
    error: BaseException | None = caught.value
    while error is not None and not isinstance(error, UsageError):
        error = error.__cause__ or error.__context__
    assert str(error) == (
        "Probe.echo: a template passes it 3 arguments without names, but it takes 2 (input, suffix):"
        " name the others (name=value)"
    )


# endregion
