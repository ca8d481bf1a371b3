"""The JSON schema the model's answer is constrained to, and how it is handed to the chat service.

Each step is one branch of an ``anyOf`` per offered function: ``"function"`` is an ``enum`` of that
function's name and ``"args"`` lists exactly its parameters (required ones required). On OpenAI/Azure
this goes out as ``response_format`` (json_schema, ``strict: false``: a guide, since strict mode cannot
express free-form argument values); the local llama.cpp service compiles the same schema into a
grammar, so its first answer is JSON over real functions with real argument names. References
(``$name``) cannot be checked by a schema: validation and the repair turn handle them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from planners.catalogue import FunctionCatalogue, ParameterInfo

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
    from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings

SCHEMA_NAME = "plan"
OUTPUT_PATTERN = "^[A-Za-z_][A-Za-z0-9_]{0,31}$"  # planners.plan.OUTPUT_NAME, kept short


def _argument_schema(parameter: ParameterInfo) -> dict[str, Any]:
    description = parameter.description or parameter.name
    if parameter.type == "string":
        return {"type": "string", "description": description}
    # A number may also come as a reference to an earlier output ("$sum"), which is a string.
    return {"anyOf": [{"type": parameter.type}, {"type": "string"}], "description": description}


def response_schema(
    catalogue: FunctionCatalogue, names: Sequence[str] | None = None, *, max_steps: int, single_step: bool = False
) -> dict[str, Any]:
    """The schema of an answer: ``{"steps": [...], "reason"?: "..."}`` over ``names`` (default: all)."""
    branches = []
    for name in names if names is not None else catalogue.names:
        info = catalogue.functions[name]
        args = {
            "type": "object",
            "properties": {p.name: _argument_schema(p) for p in info.parameters},
            "required": info.required,
            "additionalProperties": False,
        }
        branches.append(
            {
                "type": "object",
                "properties": {
                    "function": {"type": "string", "enum": [name]},
                    "args": args,
                    "output": {
                        "type": "string",
                        "pattern": OUTPUT_PATTERN,
                        "description": "a name for this step's result",
                    },
                },
                "required": ["function", "args", "output"],
                "additionalProperties": False,
            }
        )
    steps: dict[str, Any] = {"type": "array", "items": {"anyOf": branches}, "minItems": 0}
    steps["maxItems"] = 1 if single_step else max_steps
    return {
        "type": "object",
        "properties": {
            "steps": steps,
            "reason": {"type": "string", "description": "only when no function fits: why"},
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


def function_names_in(schema: dict[str, Any]) -> list[str]:
    """The function names a response schema allows (for tests and ``--debug``)."""
    branches = schema["properties"]["steps"]["items"]["anyOf"]
    return [name for branch in branches for name in branch["properties"]["function"]["enum"]]


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's structured-output shape, which the local service also understands."""
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "strict": False, "schema": schema}}


def supports_response_format(service: ChatCompletionClientBase) -> bool:
    """Whether the service's own settings class has a ``response_format`` field (OpenAI, Azure, local llama).

    Detected from the settings class rather than a list of service classes, so a new connector with
    structured output is used without changes here.
    """
    return "response_format" in service.get_prompt_execution_settings_class().model_fields


def planner_settings(
    service: ChatCompletionClientBase,
    *,
    schema: dict[str, Any] | None,
    options: dict[str, Any],
) -> PromptExecutionSettings:
    """Execution settings in the service's own class, carrying ``response_format`` when there is a schema.

    A service without the field still gets it in ``extension_data``: unknown keys there are not sent by
    semantic-kernel's connectors, and the scripted test service records them, so tests can see that
    structured output was requested.
    """
    settings_class = service.get_prompt_execution_settings_class()
    fields = settings_class.model_fields
    known = {key: value for key, value in options.items() if key in fields}
    extra = {key: value for key, value in options.items() if key not in fields}
    if schema is not None:
        if "response_format" in fields:
            known["response_format"] = response_format(schema)
        else:
            extra["response_format"] = response_format(schema)
    settings = settings_class(service_id=service.service_id, **known)
    settings.extension_data.update(extra)
    return settings
