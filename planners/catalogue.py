"""The catalogue: the functions a planner may use, with their descriptions and parameters.

Built from a kernel with plugins or functions included/excluded; validation, the prompt and the
structured-output schema all read it, so the model is offered, and a plan may name, exactly these.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from planners.errors import CatalogueFilterError

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.functions import KernelFunctionMetadata

# Parameters that semantic-kernel fills itself; never part of a plan.
_INJECTED_TYPES = ("Kernel", "KernelArguments")


@dataclass(frozen=True)
class ParameterInfo:
    name: str
    description: str = ""
    required: bool = False
    type: str = "string"  # JSON-schema type: string, number, integer, boolean, ...
    default: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "required": self.required,
            "type": self.type,
            "default": self.default,
        }


@dataclass(frozen=True)
class FunctionInfo:
    plugin: str
    function: str
    description: str = ""
    parameters: tuple[ParameterInfo, ...] = ()
    is_prompt: bool = False

    @property
    def name(self) -> str:
        return f"{self.plugin}.{self.function}"

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def required(self) -> list[str]:
        return [p.name for p in self.parameters if p.required]

    def parameter(self, name: str) -> ParameterInfo | None:
        return next((p for p in self.parameters if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": [p.to_dict() for p in self.parameters],
        }

    @classmethod
    def from_metadata(cls, metadata: KernelFunctionMetadata) -> FunctionInfo:
        parameters: list[ParameterInfo] = []
        for p in metadata.parameters:
            if not p.name or not p.include_in_function_choices or p.name == "kernel" or p.type_ in _INJECTED_TYPES:
                continue
            # The same rule as kernel_app.kernel.filters.require_variables: required unless a non-empty default
            # exists (prompt functions declare "" as the default of every variable).
            required = bool(p.is_required) and p.default_value in (None, "")
            schema_type = (p.schema_data or {}).get("type")
            # Prompt-function variables are typed "object" by semantic-kernel; they are text.
            json_type = schema_type if schema_type in ("number", "integer", "boolean") else "string"
            default = p.default_value if p.default_value not in (None, "") else None
            parameters.append(ParameterInfo(p.name, p.description or "", required, json_type, default))
        return cls(
            plugin=metadata.plugin_name or "",
            function=metadata.name,
            description=(metadata.description or "").strip(),
            parameters=tuple(parameters),
            is_prompt=bool(metadata.is_prompt),
        )


@dataclass
class FunctionCatalogue:
    """Allowed functions by ``Plugin.Function`` name; ``excluded`` are known to the kernel but not allowed."""

    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    excluded: set[str] = field(default_factory=set)

    @classmethod
    def from_kernel(
        cls,
        kernel: Kernel,
        *,
        included: Iterable[str] | None = None,
        excluded: Iterable[str] | None = None,
    ) -> FunctionCatalogue:
        """The kernel's functions; ``included``/``excluded`` take ``Plugin`` or ``Plugin.Function`` names.

        Names match case-insensitively and in the tool-call form ``Plugin-Function`` too. A name that
        matches nothing raises :class:`CatalogueFilterError` (a typo in ``--exclude`` must not silently
        leave the function in).
        """
        infos = [FunctionInfo.from_metadata(m) for m in kernel.get_full_list_of_function_metadata()]
        return cls.from_functions(infos, included=included, excluded=excluded)

    @classmethod
    def given_or_from_kernel(
        cls,
        catalogue: FunctionCatalogue | None,
        kernel: Kernel,
        *,
        included: Iterable[str] | None = None,
        excluded: Iterable[str] | None = None,
    ) -> FunctionCatalogue:
        """``catalogue`` when one is given (planner and executor then share it), else the kernel's."""
        if catalogue is not None:
            return catalogue
        return cls.from_kernel(kernel, included=included, excluded=excluded)

    @classmethod
    def from_functions(
        cls,
        infos: Iterable[FunctionInfo],
        *,
        included: Iterable[str] | None = None,
        excluded: Iterable[str] | None = None,
    ) -> FunctionCatalogue:
        every = {info.name: info for info in sorted(infos, key=lambda i: i.name.lower())}
        allowed = set(every)
        if included is not None:
            allowed = set[str]()
            for name in included:
                allowed |= _matching(name, every, "include")
        for name in excluded or ():
            allowed -= _matching(name, every, "exclude")
        return cls(
            functions={name: info for name, info in every.items() if name in allowed},
            excluded={name for name in every if name not in allowed},
        )

    # region lookup

    def __contains__(self, name: object) -> bool:
        return name in self.functions

    def __iter__(self) -> Iterator[FunctionInfo]:
        return iter(self.functions.values())

    def __len__(self) -> int:
        return len(self.functions)

    @property
    def names(self) -> list[str]:
        return list(self.functions)

    def get(self, name: str) -> FunctionInfo | None:
        return self.functions.get(name)

    def canonical(self, name: str) -> str:
        """The catalogue's spelling of ``name`` (``writer-translate`` → ``Writer.Translate``), else ``name``.

        Excluded functions are matched too, so that validation can say "excluded" rather than "unknown".
        """
        cleaned = name.strip()
        if cleaned.endswith("()"):
            cleaned = cleaned[:-2]
        if cleaned.lower().startswith("function."):  # the old SK XML plan spelling
            cleaned = cleaned[len("function.") :]
        cleaned = cleaned.replace("-", ".", 1) if "." not in cleaned else cleaned
        if cleaned in self.functions or cleaned in self.excluded:
            return cleaned
        lowered = cleaned.lower()
        for known in (*self.functions, *sorted(self.excluded)):
            if known.lower() == lowered:
                return known
        return name

    def close_matches(self, name: str, n: int = 3) -> list[str]:
        if len(name) > 200:  # no catalogue name is that long; difflib on 100 KB would only cost time
            return []
        return difflib.get_close_matches(name, self.names, n=n, cutoff=0.6)

    def subset(self, names: Iterable[str]) -> FunctionCatalogue:
        """Only ``names`` (which must be allowed); the rest count as excluded."""
        keep = [n for n in names if n in self.functions]
        return FunctionCatalogue(
            functions={n: self.functions[n] for n in keep},
            excluded=self.excluded | (set(self.functions) - set(keep)),
        )

    # endregion

    def to_dict(self) -> dict[str, Any]:
        return {"functions": [info.to_dict() for info in self], "excluded": sorted(self.excluded)}

    def describe(self, names: Sequence[str] | None = None) -> str:
        """The catalogue as the prompt shows it: one function per paragraph, its parameters indented."""
        blocks: list[str] = []
        for name in names if names is not None else self.names:
            info = self.functions[name]
            lines = [f"- {info.name}: {info.description or '(no description)'}"]
            if not info.parameters:
                lines.append("    (no parameters)")
            for p in info.parameters:
                flag = "required" if p.required else "optional"
                kind = "" if p.type == "string" else f", {p.type}"
                about = f": {p.description}" if p.description else ""
                lines.append(f"    {p.name} ({flag}{kind}){about}")
            blocks.append("\n".join(lines))
        return "\n".join(blocks)


def _matching(name: str, every: dict[str, FunctionInfo], flag: str) -> set[str]:
    wanted = name.strip().replace("-", ".", 1).lower()
    if not wanted:
        raise CatalogueFilterError(f"--{flag}: empty plugin or function name")
    if "." in wanted:
        found = {n for n in every if n.lower() == wanted}
    else:
        found = {n for n, info in every.items() if info.plugin.lower() == wanted}
    if not found:
        plugins = sorted({info.plugin for info in every.values()})
        close = difflib.get_close_matches(name, [*plugins, *every], n=2, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else f"plugins are {', '.join(plugins)}"
        raise CatalogueFilterError(f"--{flag} {name}: no such plugin or function: {hint}")
    return found
