"""The recorded parse of pybars' grammars (kernel_app/kernel/pybars_grammars.py) changes nothing but the time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_app.kernel import pybars_grammars
from tests.support.cli import ROOT, cli_env

pytestmark = pytest.mark.e2e  # fresh Python processes, to time and compare imports

# A handlebars template that exercises the grammar: blocks, else, helpers with arguments, escaping, paths.
RENDER = r"""
import asyncio, json, sys
{first}
import semantic_kernel
from semantic_kernel import Kernel
from semantic_kernel.functions import KernelArguments
from semantic_kernel.prompt_template import HandlebarsPromptTemplate, PromptTemplateConfig

template = (
    "{{{{#each items}}}}<li>{{{{this.name}}}}: {{{{#if this.ok}}}}yes{{{{else}}}}no{{{{/if}}}}</li>{{{{/each}}}}"
    "{{{{! a comment }}}}{{{{raw}}}} {{{{{{raw}}}}}} {{{{concat 'a' 'b'}}}} {{{{#with who}}}}{{{{first}}}}{{{{/with}}}}"
)
config = PromptTemplateConfig(template=template, template_format="handlebars", allow_dangerously_set_content=True)
arguments = KernelArguments(
    items=[{{"name": "x", "ok": True}}, {{"name": "<y>", "ok": False}}], raw="<b>&</b>", who={{"first": "Ada"}}
)
text = asyncio.run(HandlebarsPromptTemplate(prompt_template_config=config).render(Kernel(), arguments))
from kernel_app.kernel import pybars_grammars
print(json.dumps({{"text": text, "hits": len(pybars_grammars.hits)}}))
"""


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


INSTALL = "from kernel_app.kernel import pybars_grammars; pybars_grammars.install()"


def test_a_template_renders_the_same_with_the_record_as_without() -> None:
    recorded = json.loads(_python(RENDER.format(first=INSTALL)))
    parsed = json.loads(_python(RENDER.format(first="import kernel_app")))  # a library user: no record
    assert recorded["hits"] == 5 and parsed["hits"] == 0  # all five grammars came from the record, or none
    assert recorded["text"] == parsed["text"]
    assert "<li>x: yes</li>" in recorded["text"] and "Ada" in recorded["text"]


def test_the_record_is_what_pymeta_parses_today_and_writes_the_same_python() -> None:
    # Stale after pybars or PyMeta change: rewrite it with `python -m kernel_app.kernel.records regenerate`.
    code = (
        "from kernel_app.kernel.pybars_grammars import parse_all, _recorded_trees\n"
        "from pymeta.builder import writePython\n"
        "trees, recorded = parse_all(), _recorded_trees()\n"
        "print(sorted(trees) == sorted(recorded))\n"
        "print(all(trees[k] == recorded[k] and writePython(trees[k]) == writePython(recorded[k]) for k in trees))\n"
    )
    assert _python(code).split() == ["True", "True"]


def test_a_tree_survives_json_with_its_tuples() -> None:
    tree = ["Rule", "x", ["Apply", "digit", "x", ()], ["Apply", "token", "x", ("'a'",)]]
    assert json.loads(json.dumps(pybars_grammars._encode(tree)), object_hook=pybars_grammars._decode) == tree
    with pytest.raises(TypeError, match=r"holds a 'int': teach pybars_grammars\._encode"):
        pybars_grammars._encode(["Rule", 1])


def test_a_grammar_nobody_recorded_is_parsed_as_before() -> None:
    code = (
        f"{INSTALL}\n"
        "from pymeta.grammar import OMeta\n"
        "before = len(pybars_grammars.hits)\n"
        "Digits = OMeta.makeGrammar(\"digits ::= <digit>+:ds => ''.join(ds)\\n\", {}, 'Digits')\n"
        "print(Digits('2024').apply('digits')[0], len(pybars_grammars.hits) - before)\n"
    )
    assert _python(code).split() == ["2024", "0"]


# PyMeta as the library left it: its own makeGrammar, no class hook, no finder of ours.
UNTOUCHED = (
    "import pybars\n"
    "from pymeta.grammar import OMeta\n"
    "from pymeta.runtime import OMetaBase\n"
    "from kernel_app.kernel import pybars_grammars\n"
    "print(OMeta.__dict__['makeGrammar'].__func__.__module__ == 'pymeta.grammar',\n"
    "      '__init_subclass__' not in OMetaBase.__dict__, len(pybars_grammars.hits),\n"
    "      any(type(f).__module__.startswith('kernel_app') for f in sys.meta_path))\n"
)


def test_a_library_users_import_leaves_the_import_system_and_pymeta_alone() -> None:
    code = (
        "import sys\n"
        "finders = list(sys.meta_path)\n"
        "import kernel_app\n"
        "kernel_app.build_kernel  # a public name loaded: still nothing installed\n"
        "print(sys.meta_path == finders, 'pymeta' in sys.modules)\n" + UNTOUCHED
    )
    assert _python(code).split() == ["True", "False", "True", "True", "0", "False"]


def test_a_record_written_by_another_pymeta_is_not_used(tmp_path: Path) -> None:
    # Another PyMeta could write another tree from the same grammar text: the record must miss, and PyMeta
    # is then imported untouched (no hook on its classes).
    record = json.loads(pybars_grammars.DATA_FILE.read_text(encoding="utf-8"))
    record["pymeta3"] = "0.4.0"
    other = tmp_path / "pybars_grammars.json"
    other.write_text(json.dumps(record), encoding="utf-8")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from kernel_app.kernel import pybars_grammars\n"
        f"pybars_grammars.DATA_FILE = Path({str(other)!r})\n"
        "pybars_grammars.install()\n" + UNTOUCHED
    )
    assert _python(code).split() == ["True", "True", "0", "False"]


def test_the_command_line_uses_the_record() -> None:
    # `python -m kernel_app run Math.add` as a user runs it (runpy, as -m does), then count the record's hits.
    code = (
        "import atexit, runpy, sys\n"
        "sys.argv = ['kernel-app', 'run', 'Math.add', '--var', 'a=2', '--var', 'b=3']\n"
        "atexit.register(lambda: print('hits', len(sys.modules['kernel_app.kernel.pybars_grammars'].hits)))\n"
        "runpy.run_module('kernel_app', run_name='__main__', alter_sys=True)\n"
    )
    assert _python(code).split() == ["5", "hits", "5"]


def test_the_command_line_reads_nothing_until_semantic_kernel_is_imported() -> None:
    code = (
        "import sys\n"
        "from kernel_app.interfaces.cli.main import main\n"
        "from kernel_app.kernel import pybars_grammars\n"
        "main(['plugins', 'list', '--json'])\n"
        "print('pymeta' in sys.modules, pybars_grammars._recorded_trees.cache_info().currsize, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=120
    )
    assert done.returncode == 0 and done.stderr.split()[-2:] == ["False", "0"], done.stderr[-2000:]
