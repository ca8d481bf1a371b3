"""The generated records (kernel_app/kernel/records.py): one command rewrites them all, and its --check names
each stale record and the command to run, on one line each."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from kernel_app.kernel import records
from kernel_app.kernel.plugin_folders import native_catalogue
from kernel_app.kernel.pybars_grammars import DATA_FILE as GRAMMARS
from tests.support.cli import ROOT, cli_env

# In a fresh interpreter (pybars' grammars are recorded as pybars is first imported): each record's file is
# moved to FOLDER, then --check, regenerate and --check again run; what each returned and said is printed.
CHECK_REWRITE_CHECK = """
import contextlib, io, json, sys
from pathlib import Path
from kernel_app.kernel import pybars_grammars, records
from kernel_app.kernel.plugin_folders import native_catalogue
folder = Path(sys.argv[1])
pybars_grammars.DATA_FILE = folder / "pybars_grammars.json"
native_catalogue.DATA_FILE = folder / "native_catalogue.json"
runs = []
for argv in (["regenerate", "--check"], ["regenerate"], ["regenerate", "--check"]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = records.main(argv)
    runs.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(runs))
"""


@pytest.mark.e2e  # a fresh Python process
def test_check_names_each_stale_record_then_regenerate_rewrites_them(tmp_path: Path) -> None:
    catalogue = json.loads(native_catalogue.DATA_FILE.read_text(encoding="utf-8"))
    catalogue["semantic_kernel"] = "0.0.1"  # an out-of-date record; pybars' grammars' is absent
    (tmp_path / "native_catalogue.json").write_text(json.dumps(catalogue), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", CHECK_REWRITE_CHECK, str(tmp_path)],
        capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    stale, rewrite, clean = json.loads(done.stdout)

    command = "run `python -m kernel_app.kernel.records regenerate`"
    assert stale["code"] == 1 and not stale["out"]
    assert stale["err"].splitlines() == [
        f"stale record {tmp_path / 'pybars_grammars.json'} (pybars' grammars as PyMeta parses them): {command}",
        f"stale record {tmp_path / 'native_catalogue.json'} (the kernel's native functions as semantic-kernel "
        f"sees them): {command}",
    ]
    assert rewrite["code"] == 0 and len(rewrite["out"].splitlines()) == 2 and not rewrite["err"]
    assert clean == {"code": 0, "out": "", "err": ""}
    # What it wrote is the shipped record, byte for byte.
    for shipped in (GRAMMARS, native_catalogue.DATA_FILE):
        assert (tmp_path / shipped.name).read_bytes() == shipped.read_bytes(), shipped.name


@pytest.mark.e2e  # a fresh Python process
def test_regenerate_refuses_once_pymeta_is_imported() -> None:
    code = "import pybars\nfrom kernel_app.kernel import records\nraise SystemExit(records.main(['regenerate']))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=120
    )
    assert done.returncode == 2
    command = "python -m kernel_app.kernel.records regenerate"
    assert done.stderr.strip() == f"error: PyMeta is already imported: run `{command}` in a fresh interpreter"


def test_installed_versions_are_read_from_the_dist_info_folders_name() -> None:
    # Read from the folder's name (importlib.metadata would cost `plugins list` ~0.05 s): the same answer.
    assert records.installed_version("pymeta", "pymeta3") == version("pymeta3")
    assert records.installed_version("semantic_kernel", "semantic-kernel") == version("semantic-kernel")
    assert records.installed_version("no_such_package_here", "no-such-package-here") is None


def test_the_records_ship_as_package_data() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for module_name, _ in records.RECORDS:
        path = __import__(module_name, fromlist=["DATA_FILE"]).DATA_FILE
        relative = path.relative_to(ROOT / "kernel_app").as_posix()
        assert f'"{relative}"' in pyproject, f"add {relative} to [tool.setuptools.package-data] kernel_app"
