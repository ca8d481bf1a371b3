"""What every command shares: settings (resolved once) and the kernel (built on first use)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from kernel_app.base.config import Settings
    from kernel_app.kernel.builder import BuiltKernel


@dataclass
class AppContext:
    overrides: dict[str, Any] = field(default_factory=dict)
    config_file: Path | None = None
    debug: bool = False
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from kernel_app.base.config import load_settings  # reads the config file: not for --help

            self._settings = load_settings(self.config_file, **self.overrides)
        return self._settings

    def build_kernel(self, *, with_service: bool = True) -> BuiltKernel:
        from kernel_app.kernel.builder import build_kernel

        return build_kernel(self.settings, with_service=with_service)


def report_problems(problems: list[Any], *, quiet_warnings: bool = False) -> None:
    """Plugin problems go to stderr, one line each, so a broken folder is never silently missing."""
    for problem in problems:
        if quiet_warnings and problem.severity == "warning":
            continue
        click.echo(f"plugin problem: {problem}" if problem.severity == "error" else str(problem), err=True)
