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

from kernel_app.providers.execution_settings import execution_settings, json_schema_format, supports_response_format
from planners.catalogue import FunctionCatalogue, ParameterInfo

if TYPE_CHECKING:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase
    from semantic_kernel.connectors.ai.prompt_execution_settings import PromptExecutionSettings

__all__ = ["planner_settings", "response_format", "response_schema", "supports_response_format"]

SCHEMA_NAME = "plan"
OUTPUT_PATTERN = "^[A-Za-z_][A-Za-z0-9_]{0,31}$"  # planners.plan.OUTPUT_NAME, kept short
# A step first says what it does, in a few words, and then names the function that does it: the model
# chooses the function after the words it wrote. Without it, Qwen2.5-Coder-1.5B planned "Summarize this
# text: ..." with a Text function (TextMemoryPlugin.save, Text.lower): "Text" came first at 0.52 against
# "Writer" at 0.32; after "task": "Summarize the text", "Writer" came at 0.93 (docs/models.md). Parsing
# drops it: a plan is its calls.
TASK_MAX_CHARS = 80


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
    branches: list[dict[str, Any]] = []
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
                    "task": {"type": "string", "maxLength": TASK_MAX_CHARS, "description": "what this step does"},
                    "function": {"type": "string", "enum": [name]},
                    "args": args,
                    "output": {
                        "type": "string",
                        "pattern": OUTPUT_PATTERN,
                        "description": "a name for this step's result",
                    },
                },
                "required": ["task", "function", "args", "output"],
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
    """The plan schema as an OpenAI ``response_format`` (the local service compiles it into a grammar)."""
    return json_schema_format(schema, SCHEMA_NAME)


def planner_settings(
    service: ChatCompletionClientBase,
    *,
    schema: dict[str, Any] | None,
    options: dict[str, Any],
) -> PromptExecutionSettings:
    """Execution settings in the service's own class, carrying ``response_format`` when there is a schema."""
    if schema is None:
        return execution_settings(service, options)
    return execution_settings(service, {**options, "response_format": response_format(schema)})
