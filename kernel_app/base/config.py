"""Settings: command-line flags > ``KERNEL_APP_*`` environment variables > config file > defaults.

The config file is TOML, looked up at ``$KERNEL_APP_CONFIG`` or else
``$XDG_CONFIG_HOME/kernel-app/config.toml`` (``~/.config/kernel-app/config.toml``). Its keys are the
field names below, e.g.::

    service = "openai"
    model = "gpt-4o-mini"
    plugins_dirs = ["~/my-plugins"]
    trusted_dirs = ["~/my-plugins"]

Every command reads these, `plugins list` included, whose whole budget is half a second: importing
pydantic-settings and building its model cost ~0.2 s of that, so eight typed fields are read here with the
standard library instead. Each error names where the bad value came from (the variable, the flag or the
file and key) and what to do.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kernel_app.base.constants import CONTENT_SAFETY_SCREENS, SERVICES
from kernel_app.base.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the same parser, packaged for 3.10
    import tomli as tomllib  # pyright: ignore[reportMissingImports]  # installed only on 3.10

ServiceName = Literal["local", "openai", "azure"]
ContentSafetyName = Literal["offline", "openai", "azure", "off"]

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

# The environment names of the two path lists are shorter than their keys (os.pathsep-separated, like PATH).
_ENV_NAMES = {"plugins_dirs": "KERNEL_APP_PLUGINS", "trusted_dirs": "KERNEL_APP_TRUSTED"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def default_config_file() -> Path:
    explicit = os.environ.get("KERNEL_APP_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kernel-app" / "config.toml"


@dataclass
class Settings:
    """What the kernel, its services and the memory store are built from (see the module's docstring)."""

    service: ServiceName = "local"
    model: str | None = None
    plugins_dirs: list[Path] = field(default_factory=list)
    trusted_dirs: list[Path] = field(default_factory=list)
    memory_dir: Path | None = None
    # A postgresql:// URL: memory lives in PostgreSQL + pgvector instead of memory_dir (issue 19). Kept out
    # of repr() since it may carry a password; libpq's PGPASSWORD / .pgpass / service files work too.
    database_url: str | None = field(default=None, repr=False)
    # semantic-kernel's HttpPlugin (http.getAsync, postAsync...) reaches the network: off unless asked for.
    http_plugin: bool = False
    # Every model call (prompt, settings, answer, tokens, latency) is kept in the call log (`kernel-app logs`):
    # a SQLite file in the data folder, or PostgreSQL with database_url. Secrets are never written.
    call_log: bool = True
    # Embedded model tuning (threads default to the physical cores minus one; see services/cpu_threads.py).
    local_context_tokens: int = 4096
    local_threads: int | None = None
    # Entra ID sign-in on kernel-app serve (README, "Sign-in with Entra ID"): on when tenant and client id are set.
    entra_tenant_id: str | None = None
    entra_client_id: str | None = None  # the API app's client id; tokens may carry it or api://<it> as audience
    # The web app's own (SPA) registration, which chat-copilot's /authConfig hands MSAL; default: entra_client_id.
    entra_web_client_id: str | None = None
    entra_allowed_tenants: list[str] = field(default_factory=list)  # other tenants whose users may sign in
    entra_authority: str = "https://login.microsoftonline.com"  # another cloud's, or a test's identity provider
    entra_scope: str = "access_as_user"  # the delegated scope a user's token must carry (or any app role)
    # Memory collections every user of a server sees as one (a team's handbook); every other collection is
    # per user (memories/scope.py). KERNEL_APP_SHARED_COLLECTIONS: comma-separated.
    shared_collections: list[str] = field(default_factory=list)
    # The screen on what users send, documents, retrieved records and answers (docs/content-safety.md).
    content_safety: ContentSafetyName = "offline"

    def __post_init__(self) -> None:
        for name in field_names():
            setattr(self, name, _coerce(name, getattr(self, name), f"setting '{name}'"))

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (and checked like any other value)."""
        return dataclasses.replace(self, **changes)

    def is_trusted(self, directory: Path) -> bool:
        resolved = directory.expanduser().resolve()
        return any(resolved == t.resolve() or t.resolve() in resolved.parents for t in self.trusted_dirs)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)]


def env_name(name: str) -> str:
    return _ENV_NAMES.get(name, f"KERNEL_APP_{name.upper()}")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; ``overrides`` are command-line values (None means "not given")."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"{config_file}: config file not found: check the path given to --config")
    path = config_file or default_config_file()
    values: dict[str, Any] = {}
    for name, value in _read_file(path).items():
        values[name] = _coerce(name, value, f"{path}: '{name}'")
    for name in field_names():
        raw = os.environ.get(env_name(name))
        if raw is not None:
            values[name] = _coerce(name, raw, env_name(name))
    for name, value in overrides.items():
        if value is None or value == [] or value == ():
            continue
        if name not in field_names():
            raise ConfigError(f"unknown setting '{name}': valid keys are {', '.join(field_names())}")
        values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
    return Settings(**values)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # the TOML error names line and column
        raise ConfigError(f"{path}: not valid TOML: {exc}: fix the file or point KERNEL_APP_CONFIG elsewhere") from None
    unknown = [key for key in data if key not in field_names()]
    if unknown:
        raise ConfigError(f"{path}: unknown setting '{unknown[0]}': valid keys are {', '.join(field_names())}")
    return data


def _coerce(name: str, value: Any, where: str) -> Any:
    """``value`` as the type of field ``name``; a string (from the environment) is parsed."""
    if name == "service":
        if value not in SERVICES:
            raise ConfigError(f"{where}: unknown service {value!r}: use one of {', '.join(SERVICES)}")
        return value
    if name == "content_safety":
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in CONTENT_SAFETY_SCREENS:
            choices = ", ".join(CONTENT_SAFETY_SCREENS)
            raise ConfigError(f"{where}: unknown content_safety {value!r}: use one of {choices}")
        return text
    if name == "model":
        return _optional(value, str, where, "a model name")
    if name in ("plugins_dirs", "trusted_dirs"):
        if isinstance(value, str | Path):  # the environment's PATH-like form
            value = [part for part in str(value).split(os.pathsep) if part.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(p, str | Path) for p in value):
            raise ConfigError(f'{where}: expected a list of directories, e.g. ["~/my-plugins"], got {value!r}')
        return [Path(p).expanduser() for p in value]
    if name == "memory_dir":
        if value is None or isinstance(value, Path):
            return value
        return Path(_optional(value, str, where, "a directory")).expanduser()
    if name == "database_url":
        return _database_url(value, where)
    if name in ("http_plugin", "call_log"):
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if name in ("local_context_tokens", "local_threads"):
        if value is None and name == "local_threads":
            return None
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: expected a whole number of at least 1, got {value!r}")
        return value
    if name in ("entra_tenant_id", "entra_client_id", "entra_web_client_id"):
        text = _optional(value, str, where, "an id")
        return text.strip() or None if text is not None else None
    if name == "entra_allowed_tenants":
        if isinstance(value, str):  # the environment's comma-separated form
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
            raise ConfigError(f'{where}: expected a list of tenant ids, e.g. ["<tenant id>"], got {value!r}')
        return [t.strip() for t in value if t.strip()]
    if name == "shared_collections":
        return _collection_names(value, where)
    if name in ("entra_authority", "entra_scope"):
        text = _optional(value, str, where, "a URL" if name == "entra_authority" else "a scope name")
        text = (text or "").strip().rstrip("/")
        if not text:
            raise ConfigError(f"{where}: must not be empty")
        if name == "entra_authority" and not text.startswith(("https://", "http://")):
            raise ConfigError(f"{where}: expected an https:// URL, e.g. https://login.microsoftonline.com")
        return text
    raise ConfigError(f"unknown setting '{name}': valid keys are {', '.join(field_names())}")


def _database_url(value: Any, where: str) -> str | None:
    """A ``postgresql://`` or ``postgres://`` URL; empty means unset. The error never echoes the value,
    which may hold a password."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a postgresql:// URL (text), got {type(value).__name__}")
    value = value.strip()
    if not value:
        return None
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in ("postgresql", "postgres"):
        shown = f"a {scheme}:// URL" if scheme else "no URL scheme"
        raise ConfigError(
            f"{where}: expected a postgresql:// URL, e.g. postgresql://user@host:5432/dbname, got {shown}"
        )
    return value


def _collection_names(value: Any, where: str) -> list[str]:
    """Memory collection names: a list, or the environment's comma-separated text; each a valid name."""
    import re

    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(name, str) for name in value):
        raise ConfigError(f'{where}: expected a list of memory collection names, e.g. ["handbook"], got {value!r}')
    names = [name.strip() for name in value if name.strip()]
    for name in names:  # the memory store's rule (memories.store_base.COLLECTION_NAME), checked before serving
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", name):
            raise ConfigError(f"{where}: {name!r} is not a collection name: use 1-64 letters, digits, '_', '-' or '.'")
    return names


def _optional(value: Any, kind: type, where: str, what: str) -> Any:
    if value is None or isinstance(value, kind):
        return value
    raise ConfigError(f"{where}: expected {what} (text), got {value!r}")
