"""Settings: command-line flags > ``KERNEL_APP_*`` environment variables > config file > defaults.

The config file is TOML, looked up at ``$KERNEL_APP_CONFIG`` or else
``$XDG_CONFIG_HOME/kernel-app/config.toml`` (``~/.config/kernel-app/config.toml``). Its keys are the
field names below, e.g.::

    service = "openai"
    model = "gpt-4o-mini"
    plugins_dirs = ["~/my-plugins"]
    trusted_dirs = ["~/my-plugins"]
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from kernel_app.constants import SERVICES
from kernel_app.errors import ConfigError

ServiceName = Literal["local", "openai", "azure"]

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


def default_config_file() -> Path:
    explicit = os.environ.get("KERNEL_APP_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kernel-app" / "config.toml"


def _split_paths(value: Any) -> Any:
    """Environment variables hold os.pathsep-separated paths (like PATH); the file holds a list."""
    if isinstance(value, str):
        return [part for part in value.split(os.pathsep) if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KERNEL_APP_", extra="forbid", validate_default=True, populate_by_name=True
    )

    service: ServiceName = "local"
    model: str | None = None
    # The environment names are KERNEL_APP_PLUGINS and KERNEL_APP_TRUSTED (os.pathsep-separated, like PATH).
    plugins_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("plugins_dirs", "KERNEL_APP_PLUGINS")
    )
    trusted_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("trusted_dirs", "KERNEL_APP_TRUSTED")
    )
    memory_dir: Path | None = None
    # semantic-kernel's HttpPlugin (http.getAsync, postAsync...) reaches the network: off unless asked for.
    http_plugin: bool = False
    # Embedded model tuning (threads default to the physical cores minus one; see services/cpu_threads.py).
    local_context_tokens: int = 4096
    local_threads: int | None = None

    _toml_file: ClassVar[Path | None] = None

    _split = field_validator("plugins_dirs", "trusted_dirs", mode="before")(_split_paths)

    @field_validator("plugins_dirs", "trusted_dirs", mode="after")
    @classmethod
    def _expand(cls, value: list[Path]) -> list[Path]:
        return [Path(p).expanduser() for p in value]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None and cls._toml_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)

    def is_trusted(self, directory: Path) -> bool:
        resolved = directory.expanduser().resolve()
        return any(resolved == t.resolve() or t.resolve() in resolved.parents for t in self.trusted_dirs)


_lock = threading.Lock()


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; ``overrides`` are command-line values (None means "not given")."""
    given = {k: v for k, v in overrides.items() if v is not None and v != [] and v != ()}
    path = config_file or default_config_file()
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"{config_file}: config file not found: check the path given to --config")
    with _lock:
        Settings._toml_file = path
        try:
            return Settings(**given)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, path)) from None
        except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError and names line and column
            raise ConfigError(
                f"{path}: not valid TOML: {exc}: fix the file or point KERNEL_APP_CONFIG elsewhere"
            ) from None
        finally:
            Settings._toml_file = None


def _explain(exc: ValidationError, path: Path) -> str:
    error = exc.errors()[0]
    key = ".".join(str(p) for p in error["loc"]) or "settings"
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown setting '{key}': valid keys are {', '.join(Settings.model_fields)}"
    where = f"KERNEL_APP_{key.upper()} / --{key.replace('_', '-')} / '{key}' in {path}"
    if key == "service":
        return f"{where}: unknown service {error.get('input')!r}: use one of {', '.join(SERVICES)}"
    return f"{where}: {error['msg']}"
