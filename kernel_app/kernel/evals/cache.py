"""A cache of eval outputs, so that re-running after an assertion change costs no model time.

An output is stored under a key made of what decides it:

- a **prompt function**: its prompt rendered with the case's variables by semantic-kernel's own template
  engine (``prompt_template.render``, the step a run takes before calling the model; editing
  ``skprompt.txt`` or a default changes it), and its execution settings (``config.json``);
- a **native function** (e.g. the built-in SWOT, which calls the model itself): we cannot see the prompts
  it will send, so the key is the hash of its plugin folder's files (the module, its helpers, the prompt
  folders it borrows settings or prompts from; eval files left out) and the case's variables. A change
  outside that folder (a function of another plugin it calls, the library) is not seen: ``--no-cache``;
- a **planner's file** (``planner: sequential``): the planners package's files (its prompts, ranking and
  repairs) and every function the kernel offers (name, description, parameters: what the planner picks
  from), under the planner's kind;
- and for all: the model (the target's name, the chat service's class and model id), the repeat index (each
  repeat is its own output, so ``--repeat`` still measures variance) and Kernel App's version.

Only outputs that came back without an error are stored. Where they are: the data folder's SQLite file
(:class:`OutputCache`, one transaction per write, so a crash mid-write leaves the previous state readable),
or PostgreSQL when ``database_url`` is set (:class:`kernel_app.kernel.evals.pg_cache.PgOutputCache`, the
same keys), so that a server's instances share one cache: :func:`open_output_cache` picks by the settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kernel_app.base.errors import UsageError
from kernel_app.base.paths import data_dir
from kernel_app.base.usage import Usage
from kernel_app.kernel.evals.assertions import Output

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.functions import KernelArguments, KernelFunction

    from kernel_app.base.config import Settings
    from kernel_app.kernel.evals.spec import EvalCase

CACHE_FILE = "eval-cache.sqlite3"
KEY_VERSION = 1  # bumped when what goes into a key changes, so old entries are never read as new ones

SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    key        TEXT PRIMARY KEY,
    function   TEXT NOT NULL,
    model      TEXT NOT NULL,
    text       TEXT NOT NULL,
    latency_s  REAL NOT NULL,
    usage      TEXT NOT NULL,   -- JSON of base.usage.Usage's fields
    created_at REAL NOT NULL
)
"""


def default_cache_path(memory_dir: Path | None = None) -> Path:
    """The cache file in the data folder (beside the memory and conversation stores)."""
    return data_dir(memory_dir) / CACHE_FILE


class OutputStore(Protocol):
    """What the runner needs of a cache: both backends have it."""

    def get(self, key: str) -> Output | None: ...

    def put(self, key: str, function: str, model: str, output: Output) -> None: ...

    def close(self) -> None: ...


def open_output_cache(settings: Settings) -> OutputStore:
    """PostgreSQL with ``database_url`` (every instance shares it), else the data folder's SQLite file."""
    if settings.database_url:
        from kernel_app.kernel.evals.pg_cache import PgOutputCache

        return PgOutputCache(settings.database_url)
    return OutputCache(default_cache_path(settings.memory_dir))


class OutputCache:
    """Outputs by key in one SQLite file; safe to share between processes (WAL, a busy timeout)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode = WAL")
            with self._conn:
                self._conn.execute(SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise self._unusable(error) from error

    def get(self, key: str) -> Output | None:
        try:
            row = self._conn.execute("SELECT text, latency_s, usage FROM outputs WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as error:
            raise self._unusable(error) from error
        if row is None:
            return None
        text, latency_s, usage = row
        return Output(text, latency_s, Usage(**json.loads(usage)))

    def put(self, key: str, function: str, model: str, output: Output) -> None:
        usage = json.dumps(dataclasses.asdict(output.usage))
        try:
            with self._conn:  # one transaction: all of the row or none of it
                self._conn.execute(
                    "INSERT OR REPLACE INTO outputs (key, function, model, text, latency_s, usage, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, function, model, output.text, output.latency_s, usage, time.time()),
                )
        except sqlite3.Error as error:
            raise self._unusable(error) from error

    def close(self) -> None:
        self._conn.close()

    def _unusable(self, error: Exception) -> UsageError:
        return UsageError(f"{self.path}: the eval cache cannot be used ({error}): delete the file or pass --no-cache")


async def cache_key(kernel: Kernel, function: KernelFunction, case: EvalCase, model: str, repeat: int) -> str | None:
    """The key of ``function``'s output for ``case`` on ``model``, or None when there is none to trust
    (a prompt that does not render: the run itself then reports why)."""
    try:
        decided_by = await _prompt_ingredients(kernel, function, case) if function.is_prompt else _native(function)
    except Exception:  # a template that fails to render fails the run too, with its own message
        return None
    if decided_by is None:
        return None
    return _key(kernel, decided_by, f"{function.plugin_name}.{function.name}", case, model, repeat)


def plan_key(kernel: Kernel, kind: str, case: EvalCase, model: str, repeat: int) -> str:
    """The key of the plan the ``kind`` planner makes for ``case``'s goal on ``model``."""
    import planners

    decided_by = {
        "kind": "plan",
        "source": _source_hash(Path(planners.__file__), "planners"),  # the whole package: prompts, repairs
        "catalogue": _catalogue(kernel),
    }
    return _key(kernel, decided_by, f"planner:{kind}", case, model, repeat)


def _key(kernel: Kernel, decided_by: dict[str, Any], name: str, case: EvalCase, model: str, repeat: int) -> str:
    from kernel_app import __version__

    ingredients = {
        **decided_by,
        "function": name,
        "vars": {name: str(value) for name, value in case.vars.items()},
        "model": model,
        "service": _service_identity(kernel),
        "repeat": repeat,
        "kernel_app": __version__,
        "key_version": KEY_VERSION,
    }
    return hashlib.sha256(json.dumps(ingredients, sort_keys=True, default=str).encode()).hexdigest()


def _catalogue(kernel: Kernel) -> list[Any]:
    """What a planner is shown of each function, in a stable order."""
    return sorted(
        [
            meta.fully_qualified_name,
            meta.description or "",
            [
                [p.name, p.description or "", p.type_ or "", p.is_required, str(p.default_value)]
                for p in meta.parameters
            ],
        ]
        for meta in kernel.get_full_list_of_function_metadata()
    )


def arguments_of(case: EvalCase) -> KernelArguments:
    """The case's variables as a run passes them (``input`` included)."""
    from semantic_kernel.functions import KernelArguments

    values: dict[str, Any] = {name: str(value) if name == "input" else value for name, value in case.vars.items()}
    return KernelArguments(**values)


async def _prompt_ingredients(kernel: Kernel, function: KernelFunction, case: EvalCase) -> dict[str, Any] | None:
    from semantic_kernel.functions.kernel_function_from_prompt import KernelFunctionFromPrompt

    if not isinstance(function, KernelFunctionFromPrompt):
        return None
    arguments = arguments_of(case)
    function.update_arguments_with_defaults(arguments)  # as a run does before it renders
    rendered = await function.prompt_template.render(kernel, arguments)
    configured = function.prompt_execution_settings
    settings = {service_id: each.model_dump(exclude_none=True) for service_id, each in configured.items()}
    return {"kind": "prompt", "rendered": rendered, "settings": settings}


def _native(function: KernelFunction) -> dict[str, Any] | None:
    method = getattr(function, "method", None)
    if method is None:
        return None
    # Decorators (uses_model, result_is_answer) wrap the method: its own file is the one that says what it does.
    source = inspect.getsourcefile(inspect.unwrap(getattr(method, "__func__", method)))
    if source is None:
        return None
    return {"kind": "native", "source": _source_hash(Path(source), function.plugin_name or "")}


def _source_hash(module: Path, plugin: str) -> str:
    """The module's plugin folder (``DIR/Plugin/*.py`` with its prompt folders), or the module alone when it
    is not in one (a plugin defined in the library)."""
    folder = module.parent
    files = [module]
    if folder.name == plugin:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and _is_source(p.relative_to(folder)))
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _is_source(relative: Path) -> bool:
    name = relative.name
    if name == "evals.yaml" or name.endswith(".evals.yaml"):
        return False  # editing an assertion must not cost model time
    return not any(part == "__pycache__" or part.startswith(".") for part in relative.parts)


def _service_identity(kernel: Kernel) -> str:
    from semantic_kernel.connectors.ai.chat_completion_client_base import ChatCompletionClientBase

    try:
        service = kernel.get_service(type=ChatCompletionClientBase)
    except Exception:  # no chat service: the run fails and stores nothing
        return ""
    kind = type(service)
    return f"{kind.__module__}.{kind.__qualname__}:{getattr(service, 'ai_model_id', '')}"
