"""Every Python example in docs/python-api.md runs, offline, as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.cli import ROOT

DOC = ROOT / "docs" / "python-api.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_doc_has_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_example_runs(number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write under ./data
    namespace: dict[str, object] = {"__name__": f"python_api_example_{number}"}
    exec(compile(EXAMPLES[number], f"{DOC.name}[{number}]", "exec"), namespace)  # asserts inside
