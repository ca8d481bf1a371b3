"""The grammars pybars builds when it is imported, recorded, so that importing semantic-kernel does not
parse them again in every process.

``import semantic_kernel`` imports pybars (for handlebars templates). At import, pybars builds two grammars
with PyMeta, and PyMeta first builds three of its own. Each is built by parsing the grammar's text with
PyMeta's pure-Python OMeta parser. That takes ~0.9 s of every command that builds a kernel (`run`,
`chat`, `serve`, `plan`), about a quarter of semantic-kernel's import. The parse depends only on the text,
so its result (a tree of lists, tuples and strings) is recorded in ``pybars_grammars.json``.

The wrap: ``install()`` puts a finder on ``sys.meta_path`` that waits for ``pymeta.grammar`` to be imported.
Only the command line installs it (``kernel_app.interfaces.cli.main``): a library user's
``import kernel_app`` leaves ``sys.meta_path`` and PyMeta as they are. When ``pymeta.grammar`` is imported,
the finder first checks that the installed PyMeta is the one the record was written with: another version
could write another tree from the same text, so then PyMeta is imported untouched. Otherwise, while that
module runs, ``OMeta.makeGrammar`` is replaced by a version that looks the grammar up in the record (by its
text's sha256, its name and the parser that would read it). On a hit it hands the recorded tree to PyMeta's
own ``moduleFromGrammar``, which writes and compiles the grammar's Python exactly as before. On a miss (a
grammar nobody recorded, e.g. another pybars) PyMeta parses the text as it always did: slower, never
different.
``tests/kernel/test_pybars_grammars.py`` checks that the record is what PyMeta's parser makes of today's
grammars, that PyMeta writes the same Python from it, and that a handlebars template renders the same.
Rewrite it with ``python -m kernel_app.kernel.records regenerate`` (kernel_app/kernel/records.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec, SourceFileLoader

DATA_FILE = Path(__file__).with_name("pybars_grammars.json")
# The distribution whose parser wrote the trees; a record written by another version is not used.
PYMETA = ("pymeta", "pymeta3")  # (import name, distribution name)
# How many grammars came from the record in this process (the tests read it).
hits: list[str] = []


def record_key(parser: type, name: str, grammar: str) -> str:
    import hashlib

    return f"{parser.__qualname__}:{name}:{hashlib.sha256(grammar.encode('utf-8')).hexdigest()}"


def install() -> None:
    """Use the record when PyMeta is imported later in this process (nothing is imported now)."""
    if "pymeta.grammar" in sys.modules or any(isinstance(f, _PyMetaGrammarFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _PyMetaGrammarFinder())


def recorded_tree(parser: type, name: str, grammar: str) -> Any | None:
    trees = _recorded_trees()
    return None if trees is None else trees.get(record_key(parser, name, grammar))


@functools.cache
def _recorded_trees() -> dict[str, Any] | None:
    """The record's trees, or None when there is no record for the installed PyMeta."""
    from kernel_app.kernel.records import installed_version

    try:
        record = json.loads(DATA_FILE.read_text(encoding="utf-8"), object_hook=_decode)
    except FileNotFoundError:  # not written (`python -m kernel_app.kernel.records regenerate` writes it)
        return None
    if record["pymeta3"] != installed_version(*PYMETA):
        return None
    return record["trees"]


# JSON has no tuples; PyMeta's trees hold some (a rule's arguments), written as {"tuple": [...]}.
def _encode(tree: Any) -> Any:
    if isinstance(tree, tuple):
        return {"tuple": [_encode(item) for item in tree]}
    if isinstance(tree, list):
        return [_encode(item) for item in tree]
    if isinstance(tree, str):
        return tree
    raise TypeError(f"PyMeta's tree holds a {type(tree).__name__!r}: teach pybars_grammars._encode to record it")


def _decode(obj: dict[str, Any]) -> Any:
    return tuple(obj["tuple"]) if obj.keys() == {"tuple"} else obj


# Plain classes with the finder and loader protocols' methods: importing importlib.abc for their bases would
# cost every command, `--help` included, ~10 ms.
class _PyMetaGrammarFinder:
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "pymeta.grammar":
            return None
        import importlib.machinery

        sys.meta_path.remove(self)  # once is enough: the module is cached from now on
        if _recorded_trees() is None:  # no record for this PyMeta: import it untouched
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            # Duck-typed, not an importlib.abc.Loader subclass: importing importlib.abc costs ~20 ms at startup.
            spec.loader = cast("Loader", _RecordedGrammarLoader(spec.loader))
        return spec


class _RecordedGrammarLoader:
    def __init__(self, loader: SourceFileLoader) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _make_grammar_replaced(_recorded_or_parsed):
            self._loader.exec_module(module)


MakeGrammar = Callable[..., type]  # (OMeta subclass, grammar text, globals, name) -> grammar class


@contextlib.contextmanager
def _make_grammar_replaced(make: Callable[[MakeGrammar], MakeGrammar]) -> Iterator[None]:
    """While pymeta.grammar is imported, ``OMeta.makeGrammar`` is ``make(PyMeta's own)``.

    pymeta.grammar defines OMeta and then, in the same module body, builds three grammars with it: the only
    moment to swap its makeGrammar is when the class OMeta is created (OMetaBase's ``__init_subclass__``)."""
    from pymeta.runtime import OMetaBase

    def swap(cls: type, **kwargs: Any) -> None:
        if cls.__name__ == "OMeta" and cls.__module__ == "pymeta.grammar":
            cls.makeGrammar = classmethod(make(cls.__dict__["makeGrammar"].__func__))  # type: ignore[attr-defined]

    had_hook = "__init_subclass__" in OMetaBase.__dict__
    OMetaBase.__init_subclass__ = classmethod(swap)  # type: ignore[assignment]
    try:
        yield
    finally:
        if not had_hook:
            del OMetaBase.__init_subclass__


def _recorded_or_parsed(parse_and_build: MakeGrammar) -> MakeGrammar:
    def make_grammar(klass: type, grammar: str, globals: dict[str, Any], name: str = "Grammar") -> type:
        tree = recorded_tree(klass.metagrammarClass, name, grammar)  # type: ignore[attr-defined]
        if tree is None:
            return parse_and_build(klass, grammar, globals, name)
        from pymeta.builder import moduleFromGrammar

        hits.append(name)
        return moduleFromGrammar(tree, name, klass, globals)

    return make_grammar


# region writing the record (run in a fresh interpreter: pybars must not be imported yet)


class PyMetaAlreadyImported(RuntimeError):
    """pybars' grammars are built only when it is first imported: too late to record them in this process."""


@functools.cache  # once a process: pybars builds its grammars only when it is first imported
def parse_all() -> dict[str, Any]:
    """What PyMeta's parser makes of every grammar built while pybars is imported, now."""
    if "pymeta.grammar" in sys.modules:
        raise PyMetaAlreadyImported("PyMeta is already imported: pybars' grammars can be recorded only before")
    # Parse, not look up: the command line may have installed the finder in this process.
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != _PyMetaGrammarFinder.__name__]
    from pymeta.builder import TreeBuilder, moduleFromGrammar

    trees: dict[str, Any] = {}

    def parse_and_record(_: MakeGrammar) -> MakeGrammar:
        def make_grammar(klass: type, grammar: str, globals: dict[str, Any], name: str = "Grammar") -> type:
            parser = klass.metagrammarClass  # type: ignore[attr-defined]
            tree = parser(grammar).parseGrammar(name, TreeBuilder)
            trees[record_key(parser, name, grammar)] = tree
            return moduleFromGrammar(tree, name, klass, globals)

        return make_grammar

    with _make_grammar_replaced(parse_and_record):
        import pybars  # noqa: F401  (builds every grammar)
    return trees


def render_record() -> str:
    """The record's text as it would be written now: one line per grammar, so a change shows in a diff."""
    from kernel_app.kernel.records import installed_version

    trees = parse_all()
    header = f'{{"pymeta3": {json.dumps(installed_version(*PYMETA))}, "trees": {{'
    body = ",\n".join(f"{json.dumps(key)}: {json.dumps(_encode(tree))}" for key, tree in trees.items())
    return f"{header}\n{body}\n}}}}\n"


# endregion
