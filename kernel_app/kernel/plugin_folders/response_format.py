"""``response_format`` as prompt files spell it, in the one shape semantic-kernel and the wire accept.

.NET Semantic Kernel (``ResponseFormat = "json_object"``) and many YAML prompts write the string form;
.NET also takes a bare JSON schema (``AIJsonUtilities.CreateJsonSchema``) and Microsoft.Extensions.AI's
``{schemaName, schema}``. semantic-kernel 1.45's ``OpenAIChatPromptExecutionSettings`` accepts only a dict
of type ``json_object`` or ``json_schema`` (with a ``json_schema`` dict): a string — and even
``{"type": "text"}`` — fails every run with "response_format must be a dictionary, a subclass of
BaseModel…". So the loader normalises here, once, at load time, to OpenAI's shapes:

- ``"json_object"`` / ``{"type": "json_object"}`` -> ``{"type": "json_object"}`` (JSON mode);
- ``"text"`` / ``{"type": "text"}`` -> no response_format (plain text is what a model answers anyway);
- ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"?}}`` (OpenAI), the flat
  ``{"type": "json_schema", "name", "schema"}``, ``{"schemaName", "schema"}`` and a bare JSON schema ->
  ``{"type": "json_schema", "json_schema": {"name", "schema", ...}}``, which the embedded model turns
  into a grammar (providers/llama/service.py ``llama_response_format``).
"""

from __future__ import annotations

import re
from typing import Any

TEXT = "text"  # normalises to "no response_format"
DEFAULT_SCHEMA_NAME = "response"  # OpenAI requires a name; .NET's bare schema has none
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HINT = 'use "json_object", "text" or {"type": "json_schema", "json_schema": {"name": "...", "schema": {...}}}'
# Keys of a JSON schema itself: a dict with these and no response_format type is a bare schema (.NET).
_SCHEMA_KEYS = frozenset({"properties", "$schema", "items", "anyOf", "oneOf", "allOf", "$ref", "enum"})


class ResponseFormatError(ValueError):
    """A response_format no model accepts: ``message`` says what was found, ``hint`` what to write."""

    def __init__(self, message: str, hint: str = _HINT) -> None:
        super().__init__(f"{message}: {hint}")
        self.message, self.hint = message, hint


def normalise_response_format(value: Any) -> dict[str, Any] | str:
    """OpenAI's shape for ``value``, or :data:`TEXT` (send no response_format). Raises ResponseFormatError."""
    if isinstance(value, str):
        kind = value.strip().lower()
        if kind == "json_object":
            return {"type": "json_object"}
        if kind == TEXT:
            return TEXT
        if kind == "json_schema":
            raise ResponseFormatError("'json_schema' needs a schema")
        raise ResponseFormatError(f"unknown response_format {value!r}")
    if not isinstance(value, dict):
        raise ResponseFormatError(f"expected a string or an object, got {value!r}")
    fields = {_key(k): v for k, v in value.items()}
    kind = fields.get("type")
    kind = kind.lower() if isinstance(kind, str) else kind
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == TEXT:
        return TEXT
    if kind == "json_schema" or "schema" in fields or "jsonschema" in fields:
        return _json_schema(fields)
    if kind in ("object", "array") or _SCHEMA_KEYS & set(value):
        return _wrapped(DEFAULT_SCHEMA_NAME, value, {})  # a bare JSON schema, as .NET takes one
    raise ResponseFormatError(f"unknown response_format type {kind!r}")


def _json_schema(fields: dict[str, Any]) -> dict[str, Any]:
    inner = fields.get("jsonschema")
    if isinstance(inner, dict):
        fields = {_key(k): v for k, v in inner.items()}
    schema = fields.get("schema")
    if not isinstance(schema, dict):
        raise ResponseFormatError("json_schema needs a 'schema' object")
    name = fields.get("name") or fields.get("schemaname") or DEFAULT_SCHEMA_NAME
    if not isinstance(name, str) or not _SCHEMA_NAME.match(name):
        raise ResponseFormatError(f"json_schema name {name!r} is invalid", "use up to 64 letters, digits, '_' or '-'")
    extra = {
        "strict": fields.get("strict"),
        "description": fields.get("description") or fields.get("schemadescription"),
    }
    return _wrapped(name, schema, extra)


def _wrapped(name: str, schema: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    json_schema = {"name": name, "schema": schema, **{k: v for k, v in extra.items() if v is not None}}
    return {"type": "json_schema", "json_schema": json_schema}


def _key(key: Any) -> str:
    # .NET serialises "json_schema" as "JsonSchema" and "schema_name" as "SchemaName"/"schemaName".
    return str(key).replace("_", "").lower()
