"""`plugins list` and `plugins lint` without semantic-kernel: the same answers as with it, kept true.

They read folders, configs and templates with Kernel App's own code (the template syntax ported from
semantic-kernel, the built-in native functions from a record); these tests hold each piece to what
semantic-kernel itself makes of the same input, so none can drift.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.paths import builtin_plugins_dir
from kernel_app.kernel.builder import build_kernel, other_functions, plugin_directories
from kernel_app.kernel.plugin_folders import sk_syntax
from kernel_app.kernel.plugin_folders.loader import PluginDirectory, load_plugin_directories
from kernel_app.kernel.plugin_folders.specs import FunctionSpec
from tests.support.cli import ROOT, cli_env

CORPUS = ROOT.parent / "shared" / "plugins-real"


def _directories() -> list[Path]:
    found = [builtin_plugins_dir()]
    if CORPUS.is_dir():
        found += sorted(p for p in CORPUS.iterdir() if p.is_dir())
    return found


def _imports_semantic_kernel(*args: str, tmp_path: Path) -> tuple[bool, str]:
    code = (
        "import sys\nfrom kernel_app.interfaces.cli.main import cli\n"
        f"cli.main(args={list(args)!r}, prog_name='kernel-app', standalone_mode=False)\n"
        "print('SK-IMPORTED' if any(m.split('.')[0] == 'semantic_kernel' for m in sys.modules) else 'SK-ABSENT')\n"
    )
    env = cli_env(KERNEL_APP_MEMORY_DIR=str(tmp_path / "memory"), KERNEL_APP_CONFIG=str(tmp_path / "none.toml"))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False
    )
    return "SK-IMPORTED" in done.stdout, done.stdout + done.stderr


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args",
    [("plugins", "list"), ("plugins", "list", "--json"), ("plugins", "lint", "plugins")],
    ids=["list", "list-json", "lint-builtins"],
)
def test_list_and_lint_do_not_import_semantic_kernel(args: tuple[str, ...], tmp_path: Path) -> None:
    imported, output = _imports_semantic_kernel(*args, tmp_path=tmp_path)
    assert not imported, output
    assert "Math.add" in output or '"function": "add"' in output or "function(s) loaded" in output, output


@pytest.mark.e2e
def test_lint_of_a_corpus_directory_does_not_import_semantic_kernel(tmp_path: Path) -> None:
    if not CORPUS.is_dir():
        pytest.skip("the shared real-plugin corpus is absent")
    corpus = [str(p) for p in sorted(CORPUS.iterdir()) if p.is_dir()]
    imported, output = _imports_semantic_kernel("plugins", "lint", *corpus, tmp_path=tmp_path)
    assert not imported and "function(s) loaded" in output, output


@pytest.mark.e2e  # a fresh Python process
def test_the_records_are_what_the_code_and_libraries_make_now() -> None:
    # The native functions' record (and pybars' grammars'): stale after a change to a built-in plugin's Python
    # file or to semantic-kernel. The check CI runs; it names each stale record and the command that rewrites it.
    done = subprocess.run(
        [sys.executable, "-m", "kernel_app.kernel.records", "regenerate", "--check"],
        capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and not done.stdout and not done.stderr, done.stderr


def test_the_version_the_record_is_checked_against_is_semantic_kernels() -> None:
    from importlib.metadata import version

    from kernel_app.kernel.plugin_folders.native_catalogue import _sk_version

    # Read from the dist-info folder's name (importlib.metadata costs list/lint ~0.05 s): the same answer.
    assert _sk_version() == version("semantic-kernel")


@pytest.mark.parametrize("directory", _directories(), ids=lambda p: p.name)
def test_specs_and_problems_are_those_of_the_kernels_functions(directory: Path) -> None:
    builtin = directory == builtin_plugins_dir()
    directories = [PluginDirectory(directory, trusted=True, builtin=builtin)]
    if not builtin:
        directories.append(PluginDirectory(builtin_plugins_dir(), trusted=True, builtin=True))
    full = load_plugin_directories(directories, other_functions=other_functions(Settings()))
    light = load_plugin_directories(directories, other_functions=other_functions(Settings()), specs_only=True)
    assert [str(p) for p in light.problems] == [str(p) for p in full.problems]
    assert light.failed.keys() == full.failed.keys()
    for plugin, functions in full.plugins.items():
        expected = [FunctionSpec.from_metadata(f.metadata).to_dict() for f in functions]
        assert [spec.to_dict() for spec in light.plugins[plugin]] == expected, plugin  # type: ignore[attr-defined]


def test_plugins_list_says_what_the_kernel_has() -> None:
    from kernel_app.interfaces.cli.context import AppContext
    from kernel_app.interfaces.cli.plugins_cmd import list_functions

    for settings in (Settings(), Settings(http_plugin=True)):
        app = AppContext(_settings=settings)
        _, specs = list_functions(app)
        kernel = build_kernel(settings, with_service=False).kernel
        expected = sorted(
            (FunctionSpec.from_metadata(m).to_dict() for m in kernel.get_full_list_of_function_metadata()),
            key=lambda d: (d["plugin_name"], d["name"]),
        )
        assert sorted((s.to_dict() for s in specs), key=lambda d: (d["plugin_name"], d["name"])) == expected
    assert plugin_directories(Settings())  # the same directories build_kernel loads


def _sk_blocks(template: str) -> list[tuple[str, ...]] | str:
    from semantic_kernel.exceptions import BlockSyntaxError
    from semantic_kernel.template_engine.blocks.code_block import CodeBlock
    from semantic_kernel.template_engine.blocks.function_id_block import FunctionIdBlock
    from semantic_kernel.template_engine.blocks.named_arg_block import NamedArgBlock
    from semantic_kernel.template_engine.blocks.var_block import VarBlock
    from semantic_kernel.template_engine.template_tokenizer import TemplateTokenizer

    try:
        blocks = TemplateTokenizer.tokenize(template)
    except BlockSyntaxError as error:
        return str(error).strip().splitlines()[0]

    def token(t: object) -> tuple[str, ...]:
        if isinstance(t, FunctionIdBlock):
            return ("id", t.content, t.plugin_name or "", t.function_name)
        if isinstance(t, NamedArgBlock):
            return ("arg", t.content, t.name or "", t.variable.name if t.variable else "")
        if isinstance(t, VarBlock):
            return ("var", t.content, t.name)
        return ("val", t.content)  # type: ignore[attr-defined]

    return [
        ("code", b.content, *(x for t in b.tokens for x in token(t)))
        if isinstance(b, CodeBlock)
        else token(b)
        if type(b).__name__ != "TextBlock"
        else ("text", b.content)
        for b in blocks
    ]


def _our_blocks(template: str) -> list[tuple[str, ...]] | str:
    try:
        blocks = sk_syntax.tokenize(template)
    except sk_syntax.BlockSyntaxError as error:
        return str(error).strip().splitlines()[0]

    def token(t: object) -> tuple[str, ...]:
        if isinstance(t, sk_syntax.FunctionId):
            return ("id", t.content, t.plugin_name or "", t.function_name)
        if isinstance(t, sk_syntax.NamedArg):
            return ("arg", t.content, t.name, t.variable.name if t.variable else "")
        if isinstance(t, sk_syntax.Var):
            return ("var", t.content, t.name)
        if isinstance(t, sk_syntax.Val):
            return ("val", t.content)
        return ("text", t.content)  # type: ignore[attr-defined]

    return [
        ("code", b.content, *(x for t in b.tokens for x in token(t))) if isinstance(b, sk_syntax.Code) else token(b)
        for b in blocks
    ]


MALFORMED = [
    "{{$}}", "{{$a b}}", "{{ $a $b }}", "{{x.y.z}}", "{{f a=}}", "{{f a=b}}", "{{f 'a' 'b'}}", "{{a=$b}}",
    "{{f $a b=$c d='e'}}", "{{f $a $b}}", "{{'unclosed}}", "{{f 'x'y}}", "{{f \"a\\\"b\"}}", "{{ }}", "{{}}",
    "{{$x", "text {{ {{$x}} }}", "{{f x='a\\'b'}}", "{{f\t$x}}", "{{f\n$x}}", "a}}b{{", "{{f  $x}}", "{{1}}",
    "{{'v'}}", "{{\"v\" x}}", "{{$a1_}}", "{{P.f}}", "{{P-f}}", "x", "{{$x}}{{$y}}", "{{f $x y='it''s'}}",
]  # fmt: skip


def _templates() -> list[str]:
    found = list(MALFORMED)
    for directory in _directories():
        found += [p.read_text(encoding="utf-8-sig") for p in sorted(directory.rglob("skprompt.txt"))]
    return found


def test_the_template_syntax_is_read_as_semantic_kernel_reads_it() -> None:
    templates = _templates()
    assert len(templates) > len(MALFORMED)
    for template in templates:
        assert _our_blocks(template) == _sk_blocks(template), template[:200]
