"""What ``plugins list`` and ``plugins lint`` need of a function, without semantic-kernel's classes.

A :class:`FunctionSpec` carries the attributes of ``KernelFunctionMetadata`` that listing and linting
read (names, description, parameters), so the same code reads either. Prompt functions get theirs from
the checked config; the built-in native functions from :mod:`kernel_app.kernel.plugin_folders.native_catalogue`,
a record of what semantic-kernel makes of them, kept true by a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    description: str | None = ""
    default_value: Any = ""
    is_required: bool | None = True
    type_: str | None = ""
    include_in_function_choices: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "default_value": self.default_value,
            "is_required": self.is_required,
            "type_": self.type_,
            "include_in_function_choices": self.include_in_function_choices,
        }


@dataclass(frozen=True)
class FunctionSpec:
    plugin_name: str
    name: str
    description: str | None = ""
    parameters: list[ParameterSpec] = field(default_factory=list)
    is_prompt: bool = False

    @property
    def metadata(self) -> FunctionSpec:  # as KernelFunction.metadata: the same attributes
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin_name": self.plugin_name,
            "name": self.name,
            "description": self.description,
            "is_prompt": self.is_prompt,
            "parameters": [p.to_dict() for p in self.parameters],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FunctionSpec:
        parameters = [ParameterSpec(**p) for p in data["parameters"]]
        return cls(data["plugin_name"], data["name"], data["description"], parameters, data["is_prompt"])

    @classmethod
    def from_metadata(cls, metadata: Any) -> FunctionSpec:
        """semantic-kernel's KernelFunctionMetadata, as a spec (for the catalogue, and trusted user plugins)."""
        return cls(
            metadata.plugin_name or "",
            metadata.name,
            metadata.description,
            [
                ParameterSpec(
                    p.name,
                    p.description,
                    p.default_value,
                    p.is_required,
                    p.type_,
                    p.include_in_function_choices,
                )
                for p in metadata.parameters
            ],
            bool(metadata.is_prompt),
        )


def prompt_spec(plugin: str, name: str, data: dict[str, Any], template_variables: list[str]) -> FunctionSpec:
    """A prompt function's spec from its checked config, as semantic-kernel's PromptTemplateConfig makes
    its parameters (InputVariable's defaults: description "", default "", required, json_schema ""). A
    semantic-kernel-format template's undeclared variables become parameters too, in the order the
    template reads them, as its KernelPromptTemplate adds them (the other formats add none)."""
    variables = list(data.get("input_variables", []))
    if data.get("template_format", "semantic-kernel") == "semantic-kernel":
        seen = {v["name"].lower() for v in variables}
        for variable in template_variables:
            if variable.lower() not in seen:
                seen.add(variable.lower())
                variables.append({"name": variable})
    parameters = [
        ParameterSpec(
            variable["name"],
            variable.get("description", ""),
            variable.get("default", ""),
            variable.get("is_required", True),
            variable.get("json_schema", ""),
        )
        for variable in variables
    ]
    return FunctionSpec(plugin, name, data.get("description"), parameters, is_prompt=True)
