"""The plan object, tolerant parsing, validation, the catalogue, relevance and the response schema (no model)."""

from __future__ import annotations

import json

import pytest

from kernel_app.base.config import Settings
from kernel_app.kernel.builder import build_kernel
from planners import (
    CatalogueFilterError,
    DuplicateOutputError,
    EmptyPlanError,
    ExcludedFunctionError,
    FunctionCatalogue,
    InvalidOutputNameError,
    MissingArgumentError,
    Plan,
    PlanFormatError,
    PlanParseError,
    PlanStep,
    PlanValidationError,
    TooManyStepsError,
    UndefinedReferenceError,
    UnknownArgumentError,
    UnknownFunctionError,
    parse_plan_answer,
    validate_plan,
)
from planners.catalogue import FunctionInfo, ParameterInfo
from planners.relevance import most_relevant, tfidf_scores
from planners.schema import function_names_in, planner_settings, response_format, response_schema

VALENTINE = {
    "goal": "Tomorrow is Valentine's day. I need to come up with a poem. Translate the poem to French.",
    "steps": [
        {"function": "Writer.ShortPoem", "args": {"input": "Valentine's day"}, "output": "poem"},
        {"function": "Writer.Translate", "args": {"input": "$poem", "language": "French"}, "output": "french"},
    ],
}


@pytest.fixture(scope="module")
def catalogue() -> FunctionCatalogue:
    return FunctionCatalogue.from_kernel(build_kernel(Settings(), with_service=False).kernel)


def plan_of(*steps: tuple[str, dict, str]) -> Plan:
    return Plan(goal="g", steps=[PlanStep(function=f, args=a, output=o) for f, a, o in steps])


# region the Plan object


def test_json_and_yaml_round_trip() -> None:
    plan = Plan.from_dict(VALENTINE)
    assert Plan.from_json(plan.to_json()) == plan
    assert Plan.from_yaml(plan.to_yaml()) == plan
    assert json.loads(plan.to_json()) == VALENTINE  # exactly the documented format, nothing added
    assert plan.result_name == "french" and plan.steps[1].references() == ["poem"]


def test_str_is_readable() -> None:
    text = str(Plan.from_dict(VALENTINE))
    assert text.splitlines() == [
        "Goal: Tomorrow is Valentine's day. I need to come up with a poem. Translate the poem to French.",
        '1. poem = Writer.ShortPoem(input="Valentine\'s day")',
        '2. french = Writer.Translate(input=$poem, language="French")',
        "Result: $french",
    ]


def test_json_schema_describes_the_file_format() -> None:
    schema = Plan.json_schema()
    assert set(schema["properties"]) == {"goal", "steps"}
    step = schema["$defs"]["PlanStep"]
    # notes: how the planner read the model's answer (a mapped argument name); optional, saved only when any
    assert set(step["properties"]) == {"function", "args", "output", "notes"}
    assert set(step["required"]) == {"function", "output"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not list"),
        ('{"goal": "g", "steps": [{"function": "Writer.Summarize", "arg": {}, "output": "x"}]}', "step 1: arg"),
        ('{"steps": [{"function": "Writer.Summarize", "args": {}}]}', "step 1: output: missing"),
        ('{"steps": "Writer.Summarize"}', "steps"),
    ],
)
def test_saved_plans_are_read_strictly(text: str, expected: str) -> None:
    with pytest.raises(PlanParseError) as caught:
        Plan.from_json(text)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_save_and_load(tmp_path) -> None:
    plan = Plan.from_dict(VALENTINE)
    for name in ("plan.json", "plan.yaml", "plan.yml"):
        plan.save(tmp_path / name)
        assert Plan.load(tmp_path / name) == plan
    assert json.loads((tmp_path / "plan.json").read_text()) == VALENTINE
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PlanParseError, match=r"bad\.json: not valid JSON"):
        Plan.load(tmp_path / "bad.json")
    with pytest.raises(PlanParseError, match="cannot read the plan"):
        Plan.load(tmp_path / "missing.json")


def test_bad_yaml_is_a_parse_error() -> None:
    with pytest.raises(PlanParseError, match="not valid YAML"):
        Plan.from_yaml("steps: [unclosed")
    with pytest.raises(PlanFormatError):
        Plan.from_yaml("- just a list")


# endregion

# region tolerant parsing of model answers

VALID_JSON = json.dumps({"steps": VALENTINE["steps"]})


@pytest.mark.parametrize(
    "answer",
    [
        VALID_JSON,
        f"```json\n{VALID_JSON}\n```",
        f"```\n{VALID_JSON}\n```",
        f"Here is the plan you asked for:\n{VALID_JSON}\nLet me know if you need anything else!",
        VALID_JSON.replace('"French"}', '"French",}').replace("}]}", "},]}"),
        json.dumps(VALENTINE["steps"]),
        json.dumps({"plan": {"steps": VALENTINE["steps"]}}),
        VALID_JSON.replace("Writer.ShortPoem", "Writer-ShortPoem").replace("Writer.Translate", "writer.translate"),
        VALID_JSON.replace('"args"', '"arguments"'),
        VALID_JSON.replace('"$poem"', '"{{$poem}}"'),
        "I think {this} is right. " + VALID_JSON,
    ],
    ids=[
        "plain",
        "fenced-json",
        "fenced",
        "prose-around",
        "trailing-commas",
        "bare-list",
        "plan-wrapper",
        "hyphen-and-case",
        "arguments-alias",
        "template-reference",
        "braces-in-prose",
    ],
)
def test_tolerated_answers_parse_to_the_same_plan(answer: str, catalogue: FunctionCatalogue) -> None:
    parsed = parse_plan_answer(answer, goal=VALENTINE["goal"], catalogue=catalogue)
    assert parsed.plan == Plan.from_dict(VALENTINE)
    validate_plan(parsed.plan, catalogue)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("", "empty"),
        ("I would write a poem and then translate it.", "no JSON plan"),
        (VALID_JSON[:-30], "incomplete"),
        (f"```json\n{VALID_JSON[:-30]}", "incomplete"),
        ('<plan><function.Writer.ShortPoem input="x" setContextVariable="POEM"/></plan>', "XML"),
        ('{"answer": "a poem"}', "no 'steps'"),
        ('{"steps": "poem, then translate"}', "must be a list"),
        ('["Writer.ShortPoem"]', "step 1 is a str"),
        ('{"steps": ["Writer.ShortPoem"]}', "step 1 is a str"),
        ('{"steps": [{"args": {}}]}', "step 1 has no 'function'"),
        ('{"steps": [{"function": 7}]}', "step 1 has no 'function'"),
        ('{"steps": [{"function": "Writer.Summarize", "args": "text"}]}', "'args' must be an object"),
        ("{'steps': [{'function': 'Writer.Summarize'}]}", "not valid JSON: Expecting property name enclosed in double"),
        ('{"steps": [{"function": "Writer.Summarize", "args": {"input": "x"]}', "mismatched"),
    ],
)
def test_unreadable_answers_are_typed_parse_errors(answer: str, expected: str, catalogue: FunctionCatalogue) -> None:
    with pytest.raises(PlanParseError) as caught:
        parse_plan_answer(answer, catalogue=catalogue)
    assert expected in str(caught.value)


def test_a_cut_off_plan_is_not_taken_for_its_first_steps(catalogue: FunctionCatalogue) -> None:
    # The first step of a truncated answer is a complete JSON object with "function"; it must not pass.
    cut = VALID_JSON[: VALID_JSON.index("Writer.Translate") + 5]
    with pytest.raises(PlanParseError, match="incomplete"):
        parse_plan_answer(cut, catalogue=catalogue)


def test_missing_output_is_named_and_repeats_are_dropped(catalogue: FunctionCatalogue) -> None:
    step = {"function": "Text.upper", "args": {"input": "x"}, "output": "loud"}
    answer = json.dumps({"steps": [step, step, {"function": "Text.lower", "args": {"input": "$loud"}}]})
    plan = parse_plan_answer(answer, catalogue=catalogue).plan
    assert [(s.function, s.output) for s in plan.steps] == [("Text.upper", "loud"), ("Text.lower", "step3")]


def test_reused_output_names_become_new_variables(catalogue: FunctionCatalogue) -> None:
    answer = json.dumps(
        {
            "steps": [
                {"function": "Text.trim", "args": {"input": " a "}, "output": "text"},
                {"function": "Text.upper", "args": {"input": "$text"}, "output": "text"},
                {"function": "Text.length", "args": {"input": "$text"}, "output": "text"},
            ]
        }
    )
    plan = parse_plan_answer(answer, catalogue=catalogue).plan
    assert [(s.args["input"], s.output) for s in plan.steps] == [
        (" a ", "text"),
        ("$text", "text_2"),
        ("$text_2", "text_3"),
    ]
    validate_plan(plan, catalogue)


def test_refusal_keeps_the_reason() -> None:
    parsed = parse_plan_answer('{"steps": [], "reason": "nothing here sends e-mail"}')
    assert parsed.plan.steps == [] and parsed.reason == "nothing here sends e-mail"


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "[" * (n * 5 // 2),
        lambda n: "{" * (n * 5 // 2),
        lambda n: '{"a": "' + "x" * (n * 15),
        lambda n: "[x] " * n,
    ],
    ids=["open-lists", "open-objects", "unclosed-string", "bracketed-words"],
)
def test_pathological_answers_stay_linear(make) -> None:
    from tests.support.growth import growth  # 4x the input against 1x, in the same run

    def parse(answer: str) -> None:
        with pytest.raises(PlanParseError):
            parse_plan_answer(answer)

    assert growth(parse, make) < 9


# endregion

# region validation


@pytest.mark.parametrize(
    ("steps", "error", "message"),
    [
        ([], EmptyPlanError, "the plan has no steps"),
        ([("Writer.Poem", {"input": "x"}, "p")], UnknownFunctionError, "step 1: unknown function 'Writer.Poem'"),
        (
            [("Writer.ShortPoem", {"input": "x"}, "p"), ("Writer.Translate", {"input": "$p", "lang": "fr"}, "t")],
            UnknownArgumentError,
            "step 2 (Writer.Translate): unknown argument 'lang'; parameters are input, language",
        ),
        (
            [("Writer.Translate", {"input": "x"}, "t")],
            MissingArgumentError,
            "step 1 (Writer.Translate): missing required argument 'language'",
        ),
        (
            [("Writer.Translate", {"input": "$draft", "language": "French"}, "t")],
            UndefinedReferenceError,
            "step 1 (Writer.Translate): '$draft' is not defined",
        ),
        (
            [
                ("Writer.Translate", {"input": "$p", "language": "French"}, "t"),
                ("Writer.ShortPoem", {"input": "x"}, "p"),
            ],
            UndefinedReferenceError,
            "'$p' is the output of step 2, which runs later",
        ),
        (
            [("Text.upper", {"input": "x"}, "t"), ("Text.lower", {"input": "$t"}, "t")],
            DuplicateOutputError,
            "step 2 (Text.lower): output 't' is already the output of step 1",
        ),
        ([("Text.upper", {"input": "x"}, "my text")], InvalidOutputNameError, "output name 'my text' is not a name"),
        ([("Text.upper", {"input": "x"}, f"s{i}") for i in range(11)], TooManyStepsError, "11 steps; at most 10"),
    ],
)
def test_each_rule_has_a_typed_error_saying_what_and_where(
    steps: list, error: type[PlanValidationError], message: str, catalogue: FunctionCatalogue
) -> None:
    with pytest.raises(error) as caught:
        validate_plan(plan_of(*steps), catalogue)
    assert message in str(caught.value)
    assert caught.value.exit_code == 3


def test_every_problem_is_listed(catalogue: FunctionCatalogue) -> None:
    plan = plan_of(("Writer.Translate", {"lang": "fr", "input": "$x"}, "t"))
    with pytest.raises(UnknownArgumentError) as caught:
        validate_plan(plan, catalogue)
    kinds = [type(p) for p in caught.value.problems]
    assert kinds == [UnknownArgumentError, MissingArgumentError, UndefinedReferenceError]
    assert str(caught.value).endswith("(and 2 more problems)")


def test_input_variables_and_escapes(catalogue: FunctionCatalogue) -> None:
    plan = plan_of(("Writer.Translate", {"input": "$input", "language": "$$French"}, "t"))
    with pytest.raises(UndefinedReferenceError, match="no earlier outputs or input variables"):
        validate_plan(plan, catalogue)
    validate_plan(plan, catalogue, inputs=["input"])  # "$$French" is the literal "$French"
    with pytest.raises(DuplicateOutputError, match="input variable"):
        validate_plan(plan_of(("Text.upper", {"input": "$input"}, "input")), catalogue, inputs=["input"])


def test_no_implicit_chaining(catalogue: FunctionCatalogue) -> None:
    plan = plan_of(("Writer.ShortPoem", {"input": "x"}, "poem"), ("Writer.Translate", {"language": "French"}, "t"))
    with pytest.raises(MissingArgumentError, match="missing required argument 'input'"):
        validate_plan(plan, catalogue)


def test_optional_arguments_may_be_left_out(catalogue: FunctionCatalogue) -> None:
    swot = FunctionInfo(
        "Biz", "Swot", "", (ParameterInfo("input", required=True), ParameterInfo("answers", required=False))
    )
    validate_plan(plan_of(("Biz.Swot", {"input": "a bakery"}, "swot")), FunctionCatalogue.from_functions([swot]))
    assert catalogue.get("Time.today").parameters == ()


# endregion

# region catalogue


def test_catalogue_lists_functions_with_parameters(catalogue: FunctionCatalogue) -> None:
    translate = catalogue.get("Writer.Translate")
    assert translate is not None and translate.description.startswith("Translate a text")
    assert [(p.name, p.required) for p in translate.parameters] == [("input", True), ("language", True)]
    add = catalogue.get("Math.add")
    assert add is not None and [(p.name, p.type) for p in add.parameters] == [("a", "number"), ("b", "number")]
    kernel = build_kernel(Settings(), with_service=False).kernel
    assert len(catalogue) == len(kernel.get_full_list_of_function_metadata()) and not catalogue.excluded
    assert catalogue.to_dict()["functions"][0]["name"] == catalogue.names[0]


def test_included_and_excluded() -> None:
    kernel = build_kernel(Settings(), with_service=False).kernel
    only = FunctionCatalogue.from_kernel(kernel, included=["Math", "writer.translate"])
    assert only.names == ["Math.add", "Math.divide", "Math.multiply", "Math.subtract", "Writer.Translate"]
    less = FunctionCatalogue.from_kernel(kernel, excluded=["Time", "Writer-Summarize"])
    assert "Time.today" not in less and "Writer.Summarize" not in less and "Writer.ShortPoem" in less
    # Time also carries semantic-kernel's core TimePlugin functions: all of them are excluded.
    assert {"Time.today", "Time.now", "Writer.Summarize"} <= less.excluded
    assert all(name.startswith("Time.") or name == "Writer.Summarize" for name in less.excluded)
    with pytest.raises(ExcludedFunctionError, match=r"Time\.today is excluded"):
        validate_plan(plan_of(("Time.today", {}, "d")), less)
    with pytest.raises(CatalogueFilterError, match="did you mean Writer"):
        FunctionCatalogue.from_kernel(kernel, excluded=["Writr"])


def _info(name: str, description: str) -> FunctionInfo:
    plugin, _, function = name.partition(".")
    return FunctionInfo(plugin, function, description, (ParameterInfo("input", "the text", True),))


async def test_large_catalogue_keeps_the_most_relevant() -> None:
    filler = [_info(f"Filler.F{i}", f"Does unrelated thing number {i} with spreadsheets") for i in range(40)]
    wanted = [_info("Writer.ShortPoem", "Write a short poem"), _info("Writer.Translate", "Translate a text to French")]
    catalogue = FunctionCatalogue.from_functions([*filler, *wanted])
    names = await most_relevant("Write a poem and translate it to French", catalogue, limit=5)
    assert len(names) == 5 and {"Writer.ShortPoem", "Writer.Translate"} == set(names[:2])  # best first
    assert await most_relevant("anything", catalogue.subset(["Writer.ShortPoem"]), limit=5) == ["Writer.ShortPoem"]
    scores = tfidf_scores("translate to French", [wanted[1], filler[0]])
    assert scores[0] > 0 and scores[1] == 0

    async def embedder(goal: str, functions: list[FunctionInfo]) -> list[float]:  # the hook for later
        return [1.0 if f.name == "Filler.F7" else 0.0 for f in functions]

    assert (await most_relevant("x", catalogue, limit=1, relevance=embedder)) == ["Filler.F7"]


# endregion

# region structured output


def test_response_schema_enumerates_functions_and_their_arguments(catalogue: FunctionCatalogue) -> None:
    schema = response_schema(catalogue, max_steps=10)
    assert function_names_in(schema) == catalogue.names
    branches = {b["properties"]["function"]["enum"][0]: b for b in schema["properties"]["steps"]["items"]["anyOf"]}
    translate_args = branches["Writer.Translate"]["properties"]["args"]
    assert set(translate_args["properties"]) == {"input", "language"}
    assert translate_args["required"] == ["input", "language"] and translate_args["additionalProperties"] is False
    assert schema["properties"]["steps"]["maxItems"] == 10
    assert (
        response_schema(catalogue, ["Math.add"], max_steps=10, single_step=True)["properties"]["steps"]["maxItems"] == 1
    )
    # Each step says what it does before it names the function (the function is chosen after those words).
    step = branches["Writer.Translate"]
    assert list(step["properties"]) == ["task", "function", "args", "output"]
    assert step["required"] == ["task", "function", "args", "output"]
    assert step["properties"]["task"] == {"type": "string", "maxLength": 80, "description": "what this step does"}
    wrapped = response_format(schema)
    assert wrapped["type"] == "json_schema" and wrapped["json_schema"]["name"] == "plan"
    assert wrapped["json_schema"]["strict"] is False and wrapped["json_schema"]["schema"] is schema


def test_settings_carry_response_format_in_the_services_own_class() -> None:
    from semantic_kernel.connectors.ai.open_ai import OpenAIChatCompletion, OpenAIChatPromptExecutionSettings

    service = OpenAIChatCompletion(ai_model_id="m", api_key="sk-test", service_id="openai")
    schema = {"type": "object"}
    settings = planner_settings(service, schema=schema, options={"max_tokens": 50, "temperature": 0.0})
    assert isinstance(settings, OpenAIChatPromptExecutionSettings)
    assert settings.response_format == response_format(schema) and settings.structured_json_response is True
    assert settings.prepare_settings_dict()["max_tokens"] == 50


# endregion


def test_a_steps_task_is_read_past_and_not_kept(catalogue: FunctionCatalogue) -> None:
    answer = (
        '{"steps": [{"task": "Summarize the text", "function": "Writer.Summarize", '
        '"args": {"input": "the shop sells pizza"}, "output": "summary"}]}'
    )
    plan = parse_plan_answer(answer, catalogue=catalogue).plan
    assert [step.call_text() for step in plan.steps] == ['Writer.Summarize(input="the shop sells pizza")']
    assert "task" not in plan.to_json()
