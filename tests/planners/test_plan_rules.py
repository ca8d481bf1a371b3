"""The rules behind issue 10 in isolation: what a value may be, how model text is quoted, bounded scanning,
and which functions need approval (kernel_app.base.effects)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from semantic_kernel import Kernel
from semantic_kernel.functions import kernel_function

from kernel_app.base.config import Settings
from kernel_app.base.effects import Effect, effect_of, needs_approval, read_only
from kernel_app.kernel.builder import build_kernel
from planners import PlanParseError, parse_plan_answer
from planners.quoting import clean_text, escaped, is_valid_text, quoted
from planners.values import MAX_VALUE_DEPTH, value_problem
from tests.support.growth import growth

PLAN = json.dumps({"steps": [{"function": "Text.upper", "args": {"input": "x"}, "output": "loud"}]})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("text", None),
        (1100, None),
        (-0.5, None),
        (True, None),
        (None, None),
        ({"a": [1, "b", {"c": None}]}, None),
        (10**400, None),  # an integer is exact; only floats can be non-finite
        (float("nan"), "nan is not a finite number"),
        (float("inf"), "inf is not a finite number"),
        ([1, [2, [float("-inf")]]], "-inf is not a finite number"),
        ("\ud83d", "text '\\ud83d' is not valid text"),
        ({"\udc00": 1}, "key '\\udc00' is not valid text"),
        ({1: "x"}, "key '1' is not valid text"),
        ({1, 2}, "a set is not a JSON value"),
    ],
)
def test_what_a_value_may_be(value: object, problem: str | None) -> None:
    found = value_problem(value)
    assert found == problem if problem is None else found is not None and found.startswith(problem)


def test_depth_is_bounded_even_beyond_the_recursion_limit() -> None:
    ok: object = "x"
    for _ in range(MAX_VALUE_DEPTH):
        ok = [ok]
    assert value_problem(ok) is None
    deep: object = "x"
    for _ in range(5_000):  # deeper than Python's recursion limit: checked without recursion
        deep = {"k": deep}
    assert value_problem(deep) == f"the value is nested more than {MAX_VALUE_DEPTH} lists/objects deep"


def test_model_text_is_quoted_escaped_and_short() -> None:
    assert quoted("Writer.Translate") == "'Writer.Translate'"
    assert quoted("a\nb\r\x00") == "'a\\nb\\r\\x00'"
    assert quoted("\ud83d") == "'\\ud83d'"
    long = quoted("W" * 100_000)
    assert len(long) < 120 and long.endswith("... (100000 characters)")
    assert escaped("no function\nfits") == "no function\\nfits"
    assert clean_text("ok \ud83d") == "ok \ufffd" and clean_text("ok \U0001f600") == "ok \U0001f600"
    assert not is_valid_text("\udc00") and is_valid_text("Les roses sont rouges 🌹")


# Prose a model may write before its plan, as a function of its size. Measured as a ratio of two sizes in
# the same process, not against a clock: a loaded machine slows both alike, and quadratic work shows as ~16x.
PROSE = {
    "markdown-links": lambda n: "[link](https://example.com) " * (n // 4),
    "braces": lambda n: "{x} " * n,
    "footnotes": lambda n: "[1] " * n,
    "json-lists": lambda n: '["a"], ' * (n // 2),
    "whitespace-runs": lambda n: "{" * 3 + " " * (n * 2) + "} ",
}
PATHOLOGICAL = {
    "commas in a list": lambda n: '{"steps": [' + '"a",' * (n * 2) + "}",
    "unclosed nesting": lambda n: '[{"a": ' * (n * 3 // 2),
    "bare commas": lambda n: "[" + "," * (n * 7) + "]",
}


@pytest.mark.parametrize("kind", PROSE)
def test_prose_before_the_plan_costs_linear_time(kind: str) -> None:
    make = PROSE[kind]
    assert parse_plan_answer(make(20_000) + PLAN).plan.functions == ["Text.upper"]
    assert growth(parse_plan_answer, lambda n: make(n) + PLAN) < 9


@pytest.mark.parametrize("kind", PATHOLOGICAL)
def test_pathological_commas_and_nesting_stay_linear(kind: str) -> None:
    def parse(answer: str) -> None:
        with pytest.raises(PlanParseError):
            parse_plan_answer(answer)

    assert growth(parse, PATHOLOGICAL[kind]) < 9


class CustomPlugin:
    @kernel_function(name="store", description="Writes somewhere.")
    def store(self, input: str) -> str:
        return input

    @read_only
    @kernel_function(name="peek", description="Only reads.")
    def peek(self, input: str) -> str:
        return input


def test_effects_of_the_built_in_and_custom_functions(tmp_path: Path) -> None:
    kernel = build_kernel(Settings(memory_dir=tmp_path / "store"), with_service=False).kernel

    def effect(plugin: str, name: str) -> Effect:
        return effect_of(kernel.get_function(plugin, name))

    assert {effect("Math", "add"), effect("Time", "today"), effect("Text", "upper")} == {Effect.READ}
    assert effect("memory", "recall") is Effect.READ and effect("memory", "save") is Effect.WRITE
    assert effect("memory", "ask") is Effect.MODEL and effect("Writer", "Translate") is Effect.MODEL
    kernel.add_plugin(CustomPlugin(), plugin_name="Custom")
    assert effect("Custom", "store") is Effect.WRITE and needs_approval(kernel.get_function("Custom", "store"))
    assert effect("Custom", "peek") is Effect.READ


def test_a_plugin_named_like_a_known_one_must_still_declare_itself() -> None:
    # "text.*" is READ for semantic-kernel's TextPlugin and ours, not for any plugin that is called Text.
    kernel = Kernel()
    kernel.add_plugin(CustomPlugin(), plugin_name="text")
    assert effect_of(kernel.get_function("text", "store")) is Effect.WRITE
    from semantic_kernel.core_plugins import TextPlugin

    kernel.add_plugin(TextPlugin(), plugin_name="corepluginText")
    kernel.add_plugin(TextPlugin(), plugin_name="Text")
    assert effect_of(kernel.get_function("Text", "uppercase")) is Effect.READ
    assert effect_of(kernel.get_function("corepluginText", "uppercase")) is Effect.WRITE  # not a known name
