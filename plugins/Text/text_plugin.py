"""Built-in native plugin: simple text operations."""

from typing import Annotated

from semantic_kernel.functions import kernel_function

from kernel_app.base.effects import read_only


class TextPlugin:
    """Simple text operations: upper case, lower case, trim and length."""

    @read_only  # computes only: runs in function calling without approval
    @kernel_function(name="upper", description="Convert a text to upper case.")
    def upper(self, input: Annotated[str, "The text to convert"]) -> Annotated[str, "The upper-case text"]:
        return str(input).upper()

    @read_only
    @kernel_function(name="lower", description="Convert a text to lower case.")
    def lower(self, input: Annotated[str, "The text to convert"]) -> Annotated[str, "The lower-case text"]:
        return str(input).lower()

    @read_only
    @kernel_function(name="trim", description="Remove spaces and line breaks around a text.")
    def trim(self, input: Annotated[str, "The text to trim"]) -> Annotated[str, "The trimmed text"]:
        return str(input).strip()

    @read_only
    @kernel_function(name="length", description="Count the characters in a text and return the number.")
    def length(self, input: Annotated[str, "The text to measure"]) -> Annotated[str, "The character count"]:
        return str(len(str(input)))
