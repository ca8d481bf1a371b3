"""Which pip extra an interface needs, and the one line to print when it is missing.

The core (``from kernel_app import build_kernel``, ``kernel-app run``, ``plan``, ``memory``, piped
``chat``) needs no extra. Each interface's packages are an extra of pyproject.toml; when a command
fails to import one of them, :func:`missing_extra_message` turns the ImportError into
``kernel-app serve needs fastapi, from the [serve] extra: pip install -e '.[serve]'``, which
:func:`kernel_app.interfaces.cli.main.main` prints instead of the generic error.

Checked on the ImportError itself rather than up front, so a command asks only for what it really
imports: ``kernel-app chat`` at a terminal needs [chat], piped it does not; ``kernel-app serve`` needs
[teams] only when Teams is configured. :func:`require` checks up front where the import would happen
on another thread (the chat's renderer).
"""

from __future__ import annotations

from collections.abc import Sequence

# Each extra's top-level import names (pyproject.toml's [project.optional-dependencies] lists the
# distributions). teams includes serve, as its extra does.
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "serve": frozenset({"fastapi", "uvicorn", "starlette", "multipart", "python_multipart"}),
    "chat": frozenset({"prompt_toolkit", "rich"}),
    "teams": frozenset({"microsoft_agents", "fastapi", "uvicorn", "starlette", "multipart", "python_multipart"}),
}
# The commands that are interfaces. Elsewhere (a user's plugin importing rich under `kernel-app run`) a
# missing package is not ours to name an extra for: the generic one-line error reports it.
INTERFACE_COMMANDS = frozenset({"serve", "mcp", "chat", "teams"})


def extra_for_module(module: str, command: str | None = None) -> str | None:
    """The extra that installs ``module`` (dotted names by their top level): the command's own extra
    when it has the module (``kernel-app teams`` asks for [teams], which includes serve), else the
    first that has it."""
    top = module.partition(".")[0]
    if command in EXTRA_MODULES and top in EXTRA_MODULES[command]:
        return command
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def missing_module(error: BaseException) -> str | None:
    """The module an ImportError (or an error raised while handling one) could not import."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ImportError) and current.name:
            return current.name
        current = current.__cause__ or current.__context__
    return None


def command_name(args: Sequence[str]) -> str | None:
    """The subcommand in a ``kernel-app`` argument list (the first word that is no option or its value)."""
    from kernel_app.interfaces.cli.main import COMMANDS, cli

    takes_value = {name for param in cli.params if not getattr(param, "is_flag", False) for name in param.opts}
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def install_command(extra: str) -> str:
    return f"pip install -e '.[{extra}]'"


def message(command: str, module: str, extra: str) -> str:
    return f"kernel-app {command} needs {module.partition('.')[0]}, from the [{extra}] extra: {install_command(extra)}"


def require(command: str, *modules: str) -> None:
    """Fail now, on one line, when one of ``modules`` cannot be imported: for a package a command would
    otherwise import only later, on another thread (the chat's renderer warms rich beside the prompt)."""
    import importlib.util

    from kernel_app.base.errors import DependencyMissingError

    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # find_spec imports a dotted name's parents; a finder may refuse outright
            found = False
        if not found:
            raise DependencyMissingError(message(command, module, extra_for_module(module, command) or command))


def missing_extra_message(error: BaseException, args: Sequence[str]) -> str | None:
    """One line naming the missing package, its extra and the install command; None when ``error``
    is not an interface command missing one of its packages."""
    module = missing_module(error)
    command = command_name(args)
    if module is None or command not in INTERFACE_COMMANDS:
        return None
    extra = extra_for_module(module, command)
    if extra is None:
        return None
    return message(command, module, extra)
