"""The interfaces are extras: the core works without them, and a command that needs one names the pip install.

Each check runs in a subprocess where the interfaces' packages cannot be imported: a ``sys.meta_path``
finder, first in line, raises ImportError for them, as a fresh core-only install would.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kernel_app.base.errors import DependencyMissingError
from kernel_app.interfaces.cli.extras import (
    EXTRA_MODULES,
    command_name,
    extra_for_module,
    missing_extra_message,
    require,
)
from tests.support.cli import ROOT, cli_env

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as tomli (a dependency there)
    import tomli as tomllib

pytestmark = pytest.mark.e2e  # kernel-app and python subprocesses with packages blocked

INTERFACE_PACKAGES = ("fastapi", "uvicorn", "starlette", "prompt_toolkit", "rich", "microsoft_agents")
# What a core-only install really lacks: mcp, a dependency of semantic-kernel, brings starlette, uvicorn
# and python-multipart with it (its stdio server imports them).
CORE_LACKS = ("fastapi", "prompt_toolkit", "rich", "microsoft_agents")

BLOCK_CODE = """
import sys

BLOCKED = {blocked!r}


class Unimportable:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"No module named {{name!r}} (made unimportable by the test)", name=name)
        return None


sys.meta_path.insert(0, Unimportable())
"""
BLOCK = BLOCK_CODE.format(blocked=INTERFACE_PACKAGES)

CORE_ONLY = """
import asyncio

from kernel_app import ScriptedChatCompletion, Settings, build_kernel, resolve_function, run_chain

service = ScriptedChatCompletion(["a scripted summary"])
built = build_kernel(Settings(memory_dir=sys.argv[1]), chat_service=service)
summarize = resolve_function(built.kernel, "Writer.Summarize")
add = resolve_function(built.kernel, "Math.add")
print(asyncio.run(run_chain(built.kernel, [summarize], input="A long text about bread.")).result)
print(asyncio.run(run_chain(built.kernel, [add], variables={"a": 2, "b": 3})).result)
print(len(service.requests), "request(s)")
"""

CLI = """
from kernel_app.interfaces.cli.main import main

main(sys.argv[1:])
"""


def _run_blocked(
    code: str, *args: str, tmp_path: Path, blocked: tuple[str, ...] = INTERFACE_PACKAGES
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_CODE.format(blocked=blocked) + code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=cli_env(XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_DATA_HOME=str(tmp_path / "data")),
        cwd=ROOT,
    )


def test_the_core_builds_a_kernel_and_runs_functions_without_any_interface_package(tmp_path: Path) -> None:
    result = _run_blocked(CORE_ONLY, str(tmp_path / "memory"), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "a scripted summary",
        "5",
        "1 request(s)",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve"], "kernel-app serve needs fastapi, from the [serve] extra: pip install -e '.[serve]'"),
        (["--debug", "serve", "--port", "0"], "kernel-app serve needs fastapi, from the [serve] extra"),
    ],
)
def test_an_interface_without_its_extra_prints_the_install_on_one_line(
    args: list[str], expected: str, tmp_path: Path
) -> None:
    # As on a core-only install, where uvicorn is there (from mcp) and FastAPI is what is missing.
    result = _run_blocked(CLI, "--memory-dir", str(tmp_path / "memory"), *args, tmp_path=tmp_path, blocked=CORE_LACKS)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: {expected}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_teams_manifest_needs_no_extra(tmp_path: Path) -> None:
    package = tmp_path / "teams.zip"
    args = ["--app-id", "0a1b2c3d-1111-2222-3333-444455556666", "--endpoint", "https://x.example/api/messages"]
    result = _run_blocked(CLI, "teams", "manifest", *args, "--output", str(package), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(package) as written:
        assert sorted(written.namelist()) == ["color.png", "manifest.json", "outline.png"]


async def test_mcp_over_stdio_needs_no_extra(openai_server, tmp_path: Path) -> None:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = cli_env(
        KERNEL_APP_SERVICE="openai",
        OPENAI_BASE_URL=openai_server.base_url,
        OPENAI_API_KEY="test",
        KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"),
    )
    code = BLOCK_CODE.format(blocked=CORE_LACKS) + CLI
    params = StdioServerParameters(command=sys.executable, args=["-c", code, "mcp"], env=env, cwd=str(ROOT))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        summed = await session.call_tool("Math-add", {"a": 2, "b": 3})
        assert not summed.isError and summed.content[0].text == "5"


def test_create_app_without_the_serve_extra_names_the_pip_install(tmp_path: Path) -> None:
    code = """
import kernel_app.interfaces.server  # the package itself loads without FastAPI

try:
    from kernel_app import create_app
except ImportError as error:
    print(type(error).__name__, error.name, error, sep="|")
"""
    result = _run_blocked(code, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "ImportError|fastapi|create_app needs fastapi, from the [serve] extra: pip install 'kernel-app[serve]'"
    )


def test_piped_chat_needs_no_extra(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK + CLI, "--memory-dir", str(tmp_path / "memory"), "chat"],
        input="/run Math.add a=2 b=3\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_DATA_HOME=str(tmp_path / "data")),
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "5" in result.stdout.splitlines()


def test_a_missing_module_maps_to_the_commands_own_extra_first() -> None:
    assert extra_for_module("fastapi.responses", "serve") == "serve"
    assert extra_for_module("fastapi", "teams") == "teams"  # [teams] includes serve
    assert extra_for_module("microsoft_agents.activity", "serve") == "teams"
    assert extra_for_module("rich", None) == "chat"
    assert extra_for_module("numpy", "serve") is None


def test_the_command_is_found_past_the_global_options() -> None:
    assert command_name(["--model", "serve", "--debug", "teams", "manifest"]) == "teams"
    assert command_name(["--service=openai", "chat"]) == "chat"
    assert command_name(["--help"]) is None


def test_only_an_interface_package_turns_into_the_install_hint() -> None:
    try:
        try:
            raise ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn")
        except ImportError as missing:
            raise RuntimeError("while starting the server") from missing
    except RuntimeError as wrapped:
        error = wrapped
    assert missing_extra_message(error, ["serve"]) == (
        "kernel-app serve needs uvicorn, from the [serve] extra: pip install -e '.[serve]'"
    )
    assert missing_extra_message(ModuleNotFoundError("x", name="numpy"), ["serve"]) is None
    assert missing_extra_message(ValueError("not an import"), ["serve"]) is None
    # A plugin of the user's importing rich under `run` is not an interface missing its extra.
    assert missing_extra_message(ModuleNotFoundError("x", name="rich"), ["run", "My.function"]) is None


def test_require_names_the_first_missing_module() -> None:
    require("chat", "click")  # present: nothing happens
    with pytest.raises(DependencyMissingError, match=r"^kernel-app chat needs no_such_module_x, from the \[chat\]"):
        require("chat", "no_such_module_x")


def test_the_extras_in_pyproject_install_what_the_hints_name() -> None:
    """Every module a hint maps to an extra is installed by that extra (distribution names differ)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    distributions = {
        "fastapi": "fastapi",
        "uvicorn": "uvicorn",
        "starlette": "fastapi",  # FastAPI's own dependency
        "multipart": "python-multipart",
        "python_multipart": "python-multipart",
        "prompt_toolkit": "prompt_toolkit",
        "rich": "rich",
        "microsoft_agents": "microsoft-agents-hosting-fastapi",
    }

    def requirements(extra: str) -> set[str]:
        names = set()
        for requirement in extras[extra]:
            name = requirement.split(";")[0].split("[")[0]
            for operator in ("==", ">=", "<", ","):
                name = name.split(operator)[0]
            if name == "kernel-app":
                inner = requirement.partition("[")[2].partition("]")[0]
                for included in inner.split(","):
                    names |= requirements(included)
            else:
                names.add(name.strip())
        return names

    for extra, modules in EXTRA_MODULES.items():
        for module in modules:
            assert distributions[module] in requirements(extra), (extra, module)
    assert requirements("all") >= requirements("serve") | requirements("teams") | requirements("chat")
    assert requirements("test") >= requirements("all")
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(requirement.startswith(tuple(distributions.values())) for requirement in core)
