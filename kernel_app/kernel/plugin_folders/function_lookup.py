"""Find a function the way the author of a template meant it: names are case-insensitive, as in .NET.

Semantic Kernel for .NET resolves ``{{time.Date}}`` to ``time.date`` and ``{{recall $x}}`` to the one
plugin that has ``recall``; Python semantic-kernel 1.45 matches names exactly, so samples written for
.NET fail on every run. One rule, used by lint (before anything runs) and by the kernel (when a
template calls a function): exact match first, then case-insensitive, then the old names samples use
for plugins that are ours now (``TextMemorySkill.recall`` is ``TextMemoryPlugin.recall``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

# Plugin names in samples -> the plugin that does that job here, tried after the name itself. Semantic
# Kernel's old "...Skill" names; its core plugins' names (TextMemoryPlugin is a plugin of its own: Semantic
# Kernel's argument names, on our memory; MathPlugin, TextPlugin, WaitPlugin are semantic-kernel's, for
# templates only: kernel_app.kernel.core_plugins); and the names semantic-kernel's docstrings register them
# under ("math", "text", "wait"), for the functions our Math and Text do not have.
PLUGIN_ALIASES = {
    "textmemoryskill": "textmemoryplugin",
    "timeskill": "time",
    "timeplugin": "time",
    "conversationsummaryskill": "conversationsummaryplugin",
    "mathskill": "mathplugin",
    "math": "mathplugin",
    "textskill": "textplugin",
    "text": "textplugin",
    "waitskill": "waitplugin",
    "wait": "waitplugin",
}

Catalogue = Mapping[str, Iterable[str]]  # plugin name -> its function names


def find_function(
    plugins: Catalogue, plugin: str | None, function: str, *, joined: bool = False
) -> tuple[str, str] | None:
    """``(plugin, function)`` as registered, or None. ``joined``: ``function`` is ``Plugin_function``."""
    names = {name: list(functions) for name, functions in plugins.items()}
    if plugin is not None:
        for candidate in _plugin_candidates(names, plugin):
            found = _in_plugin(names[candidate], function)
            if found is not None:
                return candidate, found
        return None
    for exact in (True, False):
        for candidate, functions in names.items():
            found = _in_plugin(functions, function, exact_only=exact)
            if found is not None:
                return candidate, found
    if joined:
        for separator in ("_", "-"):
            parts = function.split(separator)
            for cut in range(1, len(parts)):
                found = find_function(plugins, separator.join(parts[:cut]), separator.join(parts[cut:]))
                if found is not None:
                    return found
    return None


def closest_functions(plugins: Catalogue, wanted: str, limit: int = 3) -> list[str]:
    """The registered ``Plugin.function`` names closest to ``wanted`` (for "did you mean")."""
    every = {f"{p}.{f}".lower(): f"{p}.{f}" for p, functions in plugins.items() for f in functions}
    by_function = {f.lower(): f"{p}.{f}" for p, functions in plugins.items() for f in functions}
    wanted_lower = wanted.lower()
    found = [every[m] for m in difflib.get_close_matches(wanted_lower, list(every), n=limit, cutoff=0.6)]
    tail = wanted_lower.rpartition(".")[2]
    found += [by_function[m] for m in difflib.get_close_matches(tail, list(by_function), n=limit, cutoff=0.75)]
    return list(dict.fromkeys(found))[:limit]


def _plugin_candidates(names: Mapping[str, list[str]], plugin: str) -> list[str]:
    lower = plugin.lower()
    alias = PLUGIN_ALIASES.get(lower)
    candidates = [p for p in names if p == plugin]
    candidates += [p for p in names if p.lower() == lower and p != plugin]
    if alias is not None:
        candidates += [p for p in names if p.lower() == alias]
    return list(dict.fromkeys(candidates))


def _in_plugin(functions: list[str], function: str, *, exact_only: bool = False) -> str | None:
    if function in functions:
        return function
    if exact_only:
        return None
    lower = function.lower()
    return next((f for f in functions if f.lower() == lower), None)
