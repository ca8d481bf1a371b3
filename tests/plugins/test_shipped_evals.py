"""Every eval file shipped under plugins/ loads strictly and names a built-in function that exists, sitting
beside it, with every variable that function requires: a broken eval file fails here, not at the first
model run. (What the evals measure on the default model is in the README's Evaluate section.)"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.paths import builtin_plugins_dir
from kernel_app.kernel.builder import BuiltKernel, build_kernel
from kernel_app.kernel.evals import discover, load_eval_file
from kernel_app.kernel.evals.spec import plugin_directory_of
from kernel_app.kernel.runner import resolve_function

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as tomli (a dependency there)
    import tomli as tomllib

PLUGINS = builtin_plugins_dir()
SHIPPED = discover([PLUGINS])
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.fixture(scope="module")
def built() -> BuiltKernel:
    return build_kernel(Settings(), with_service=False)


def test_the_built_in_plugins_ship_their_evals() -> None:
    # The functions issue 20 asks evals for; a file that goes missing (renamed, moved) fails here.
    functions = {load_eval_file(path).function for path in SHIPPED}
    assert functions >= {
        "BusinessThinking.SWOT",
        "BusinessThinking.SWOTDraft",
        "BusinessThinking.ShiftDomain",
        "BusinessThinking.ChangeAudience",
        "DesignThinking.Empathize",
        "DesignThinking.Define",
        "DesignThinking.Ideate",
        "Writer.ShortPoem",
        "Writer.Summarize",
        "Writer.Translate",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(PLUGINS)) for p in SHIPPED])
def test_a_shipped_eval_file_loads_and_names_a_function_beside_it(path: Path, built: BuiltKernel) -> None:
    eval_file = load_eval_file(path)  # strict: an unknown key or assertion type raises, naming the line
    assert built.report.problems == []  # an eval file beside a function is no plugin problem either
    function = resolve_function(built.kernel, eval_file.function, built.report)
    # Beside its function, so that `kernel-app eval` on a copy of the folder evaluates the copy.
    assert plugin_directory_of(eval_file) == PLUGINS, f"{path} does not sit beside {eval_file.function}"
    required = {p.name for p in function.metadata.parameters if p.is_required and p.name != "kernel"}
    for case in eval_file.cases:
        missing = required - set(case.vars)
        assert not missing, f"{path}: {case.id} gives no {', '.join(sorted(missing))} to {eval_file.function}"
        assert len(case.asserts) >= 2, f"{path}: {case.id} checks too little to mean anything"
    assert 2 <= len(eval_file.cases) <= 5


def test_the_shipped_eval_files_go_into_the_wheel() -> None:
    # Package data is globbed per path part: "*/*.yaml" holds Writer/Translate.evals.yaml but not
    # Writer/Summarize/evals.yaml, which an installed kernel-app would then not have.
    patterns = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["plugins"]
    for path in SHIPPED:
        parts = path.relative_to(PLUGINS).parts
        assert any(
            len(pattern.split("/")) == len(parts) and all(map(fnmatch.fnmatchcase, parts, pattern.split("/")))
            for pattern in patterns
        ), f"{path} matches no package-data pattern of plugins in pyproject.toml"
