"""Built-in native plugin: today's date and the current time (local time).

It extends semantic-kernel's core ``TimePlugin``, so templates written for Semantic Kernel
(``{{time.Date}}``, ``{{year}}``, ``{{time.dayOfWeek}}``) find every function they expect; ``today`` and
``now`` are ours, in ISO format, which planners and chained functions read more reliably.
"""

import datetime
from typing import Annotated

from semantic_kernel.core_plugins import TimePlugin as CoreTimePlugin
from semantic_kernel.functions import kernel_function

from kernel_app.base.effects import read_only


class TimePlugin(CoreTimePlugin):
    """Today's date and the current local date and time, and semantic-kernel's other time functions."""

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
