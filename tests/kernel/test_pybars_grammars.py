"""The recorded parse of pybars' grammars (kernel_app/kernel/pybars_grammars.py) changes nothing but the time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.cli import ROOT

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
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_template_renders_the_same_with_the_record_as_without() -> None:
    recorded = json.loads(_python(RENDER.format(first="import kernel_app")))
    parsed = json.loads(_python(RENDER.format(first="")))  # pybars imported before kernel_app: no record
    assert recorded["hits"] == 5 and parsed["hits"] == 0  # all five grammars came from the record, or none
    assert recorded["text"] == parsed["text"]
    assert "<li>x: yes</li>" in recorded["text"] and "Ada" in recorded["text"]


def test_the_record_is_what_pymeta_parses_today_and_writes_the_same_python() -> None:
    # Stale after pybars or PyMeta change their grammars: rewrite it with `python -m kernel_app.kernel.pybars_grammars`.
    code = (
        "from kernel_app.kernel.pybars_grammars import parse_all\n"
        "from kernel_app.kernel._pybars_grammars_data import TREES\n"
        "from pymeta.builder import writePython\n"
        "trees = parse_all()\n"
        "print(sorted(trees) == sorted(TREES))\n"
        "print(all(trees[k] == TREES[k] and writePython(trees[k]) == writePython(TREES[k]) for k in trees))\n"
    )
    assert _python(code).split() == ["True", "True"]


def test_a_grammar_nobody_recorded_is_parsed_as_before() -> None:
    code = (
        "import kernel_app\n"
        "from kernel_app.kernel import pybars_grammars\n"
        "from pymeta.grammar import OMeta\n"
        "before = len(pybars_grammars.hits)\n"
        "Digits = OMeta.makeGrammar(\"digits ::= <digit>+:ds => ''.join(ds)\\n\", {}, 'Digits')\n"
        "print(Digits('2024').apply('digits')[0], len(pybars_grammars.hits) - before)\n"
    )
    assert _python(code).split() == ["2024", "0"]


def test_nothing_is_imported_until_semantic_kernel_is() -> None:
    data = "kernel_app.kernel._pybars_grammars_data"
    code = f"import sys, kernel_app; print('pymeta' in sys.modules, '{data}' in sys.modules)"
    assert _python(code).split() == ["False", "False"]
