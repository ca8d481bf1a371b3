"""Built-in native plugin: arithmetic on two numbers."""

from typing import Annotated

from semantic_kernel.functions import kernel_function

from kernel_app.base.effects import read_only


def _format(value: float) -> str:
    """Whole numbers without a trailing ".0" ("1100"); others to 15 significant digits ("0.3")."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".15g")


class MathPlugin:
    """Arithmetic on two numbers: add, subtract, multiply and divide."""

    @read_only  # computes only: runs in function calling without approval
    @kernel_function(name="add", description="Add two numbers and return the sum, e.g. 110 plus 990.")
    def add(
        self,
        a: Annotated[float, "The first number"],
        b: Annotated[float, "The second number"],
    ) -> Annotated[str, "The sum a + b"]:
        return _format(float(a) + float(b))

    @read_only
    @kernel_function(
        name="subtract", description="Subtract the second number from the first and return the difference."
    )
    def subtract(
        self,
        a: Annotated[float, "The number to subtract from"],
        b: Annotated[float, "The number to subtract"],
    ) -> Annotated[str, "The difference a - b"]:
        return _format(float(a) - float(b))

    @read_only
    @kernel_function(name="multiply", description="Multiply two numbers and return the product.")
    def multiply(
        self,
        a: Annotated[float, "The first number"],
        b: Annotated[float, "The second number"],
    ) -> Annotated[str, "The product a * b"]:
        return _format(float(a) * float(b))

    @read_only
    @kernel_function(name="divide", description="Divide the first number by the second; return the quotient.")
    def divide(
        self,
        a: Annotated[float, "The number to divide (the dividend)"],
        b: Annotated[float, "The number to divide by (the divisor)"],
    ) -> Annotated[str, "The quotient a / b"]:
        if float(b) == 0:
            raise ValueError("cannot divide by zero")
        return _format(float(a) / float(b))
