"""The layer contracts in pyproject's [tool.importlinter] hold, and they bite.

Each breaking case copies the packages to a temporary folder, adds one forbidden import, and runs
lint-imports there with the project's own config: the run must fail and name the contract it broke.
plugins/ is outside the import graph (its folders have no __init__.py), so its imports are read here.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # pyright: ignore[reportMissingImports]  # installed only on 3.10

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kernel_app", "planners", "memories")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# What built-in plugin code may not import: a plugin runs under every surface, so no surface or slash command.
PLUGIN_FORBIDDEN = ("kernel_app.interfaces", "kernel_app.commands")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the packages under ``root`` with this project's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_packages(dest: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "licenses"))


def _add_import(module_file: Path, statement: str) -> None:
    module_file.write_text(module_file.read_text(encoding="utf-8") + f"\n{statement}\n", encoding="utf-8")


@pytest.mark.e2e  # runs lint-imports
def test_the_tree_keeps_every_contract() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        # The core must not reach up into a surface.
        ("kernel_app/conversation/engine.py", "import kernel_app.interfaces.cli.main", "Layers"),
        # A provider must not reach into the kernel that builds on it.
        ("kernel_app/providers/scripted.py", "import kernel_app.kernel.builder", "Layers"),
        # The repl and the server do not import each other.
        ("kernel_app/interfaces/repl/render.py", "import kernel_app.interfaces.server.state", "Interfaces"),
        # Protocol modules are independent: one surface must not borrow another's code.
        (
            "kernel_app/interfaces/server/openai_compat.py",
            "import kernel_app.interfaces.server.mcp_server",
            "Server",
        ),
    ],
)
@pytest.mark.e2e  # runs lint-imports
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, statement: str, contract: str) -> None:
    _copy_packages(tmp_path)
    _add_import(tmp_path / module, statement)

    result = _lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    assert f"{contract} BROKEN" in result.stdout, result.stdout


@pytest.mark.e2e  # runs lint-imports
def test_a_new_server_module_must_be_placed_in_a_layer(tmp_path: Path) -> None:
    # The server contract is exhaustive: an unlisted module would otherwise be free of every rule.
    _copy_packages(tmp_path)
    (tmp_path / "kernel_app/interfaces/server/webhooks.py").write_text('"""A new surface."""\n', encoding="utf-8")

    result = _lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    assert "webhooks" in result.stdout + result.stderr


def test_the_architecture_doc_names_every_layer() -> None:
    # docs/architecture.md is the newcomer's map: a layer added to a contract must appear there too.
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for contract in contracts["contracts"]:
        for layer in contract["layers"]:
            for module in layer.replace(":", "|").split("|"):
                name = module.strip()
                if f"`{name}" not in doc and f"`{name.replace('.', '/')}" not in doc:
                    missing.append(f"{contract['name']}: {name}")
    assert missing == [], "add these to docs/architecture.md"


def _imported_modules(source: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), filename=str(source))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_builtin_plugins_import_no_surface_or_command() -> None:
    sources = sorted((ROOT / "plugins").rglob("*.py"))
    assert sources, "no plugin code found"
    offending = [
        f"{source.relative_to(ROOT)}: {name}"
        for source in sources
        for name in _imported_modules(source)
        if name.startswith(PLUGIN_FORBIDDEN)
    ]
    assert offending == []
