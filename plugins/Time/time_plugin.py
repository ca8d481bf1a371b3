"""Built-in native plugin: today's date and the current time (local time)."""

import datetime
from typing import Annotated

from semantic_kernel.functions import kernel_function

from kernel_app.effects import read_only


class TimePlugin:
    """Today's date and the current local date and time."""

    @read_only  # computes only: runs in function calling without approval
    @kernel_function(name="today", description="Get today's date (local time) in ISO format, YYYY-MM-DD.")
    def today(self) -> Annotated[str, "Today's date, e.g. 2025-02-13"]:
        return datetime.date.today().isoformat()

    @read_only
    @kernel_function(
        name="now",
        description="Get the current local date and time in ISO format to the second, YYYY-MM-DDTHH:MM:SS.",
    )
    def now(self) -> Annotated[str, "The current date and time, e.g. 2025-02-13T14:05:09"]:
        return datetime.datetime.now().isoformat(timespec="seconds")
