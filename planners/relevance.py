"""Choosing the functions most relevant to a goal, for catalogues too large to put in one prompt.

The default is TF-IDF over each function's name, description and parameter descriptions, scored by
cosine similarity with the goal: no model, no network, microseconds. A ``Relevance`` hook (sync or
async, e.g. one backed by an embedding model) can replace it.
"""

from __future__ import annotations

import inspect
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from planners.catalogue import FunctionCatalogue, FunctionInfo

# (goal, functions) -> one score per function, higher is more relevant.
Relevance = Callable[[str, Sequence[FunctionInfo]], "Sequence[float] | Awaitable[Sequence[float]]"]

_STOP = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by for from how i in into is it its me my of on or so that the then this to "
        "was we what when which will with you your e g",
    )
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Lower-case words, camelCase split (``ShortPoem`` → short, poem), stop words dropped, crude stemming."""
    words = _WORD.findall(_CAMEL.sub(" ", text).lower())
    return [_stem(w) for w in words if w not in _STOP]


def _stem(word: str) -> str:
    # Enough to match "poems"/"poem", "translates"/"translate"; not a real stemmer.
    for suffix in ("ing", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def function_text(info: FunctionInfo) -> str:
    parts = [info.plugin, info.function, info.description]
    parts += [f"{p.name} {p.description}" for p in info.parameters]
    return " ".join(parts)


def _terms(text: str) -> Counter[str]:
    # A number is material to work on, never what a function is chosen for: the "5" of "Subtract 5 from
    # 20." matched the "5" of DesignThinking.Test's and Empathize's descriptions and ranked them second.
    return Counter(t for t in tokens(text) if not t.isdigit())


def tfidf_scores(goal: str, functions: Sequence[FunctionInfo]) -> list[float]:
    documents = [_terms(function_text(f)) for f in functions]
    count = len(documents)
    frequency: Counter[str] = Counter()
    for document in documents:
        frequency.update(document.keys())
    idf = {term: math.log((1 + count) / (1 + df)) + 1.0 for term, df in frequency.items()}

    def vector(counts: Counter[str]) -> dict[str, float]:
        return {term: n * idf.get(term, 0.0) for term, n in counts.items()}

    query = vector(_terms(goal))
    query_norm = math.sqrt(sum(v * v for v in query.values())) or 1.0
    scores: list[float] = []
    for document in documents:
        weights = vector(document)
        norm = math.sqrt(sum(v * v for v in weights.values())) or 1.0
        scores.append(sum(weight * weights.get(term, 0.0) for term, weight in query.items()) / (norm * query_norm))
    return scores


# The text a goal hands over to be worked on, not what it asks for: a quotation ('Hello World', "..."; an
# apostrophe inside a word, as in "Valentine's", opens none), and what follows a colon to the end of its
# sentence ("Summarize this text: the shop sells pizza every day of the week.").
_QUOTED = re.compile(r"""(?<!\w)(?:'[^'\n]+'|"[^"\n]+"|“[^”\n]+”|‘[^’\n]+’)(?!\w)""")
_AFTER_COLON = re.compile(r""":[ \t]+(?=[^\s'"“‘]).*?(?:[.!?](?=\s+[A-Z])|$)""", re.S)
# How much the whole goal, material included, still counts beside the request alone: it breaks ties,
# and where the "material" was the request after all ("Two tasks: write a poem..."), the order stays
# that of the whole goal.
MATERIAL_WEIGHT = 0.5


def request_text(goal: str) -> str:
    """The goal without the material it hands over (see ``_QUOTED``): what the functions are chosen for."""
    return " ".join(_QUOTED.sub(" ", _AFTER_COLON.sub(":", goal)).split())


async def _scores(relevance: Relevance, text: str, functions: Sequence[FunctionInfo]) -> list[float]:
    scored = relevance(text, functions)
    return list(await scored) if inspect.isawaitable(scored) else list(scored)


async def most_relevant(
    goal: str,
    catalogue: FunctionCatalogue,
    limit: int,
    relevance: Relevance | None = None,
    *,
    unrelated: bool = True,
) -> list[str]:
    """All names, in catalogue order, when the catalogue fits in ``limit``; else the ``limit`` best, best first.

    Best first, because a small model leans on the order: SmolLM2-135M chose the expected function for
    3 of 10 goals from 13 functions in catalogue order, and for 10 of 11 from the 5 best in this order
    (docs/planner.md). Ranked by what the goal asks for (:func:`request_text`), the whole goal weighing
    ``MATERIAL_WEIGHT``: "Summarize this text: ... every day of the week ..." ranked ``Time.dayOfWeek``
    first, and Qwen2.5-Coder-1.5B planned it before ``Writer.Summarize``.

    ``unrelated=False`` leaves out the functions that score nothing and whose plugin scores nothing, as
    long as something scores: the planners pass it, as a function the goal shares no word with is in the
    list only to fill it (see below).
    """
    functions = list(catalogue)
    if len(functions) <= limit:
        return [f.name for f in functions]
    relevance = relevance or tfidf_scores
    scores = await _scores(relevance, goal, functions)
    request = request_text(goal)
    if request and request != " ".join(goal.split()):
        focus = await _scores(relevance, request, functions)
        scores = [f + MATERIAL_WEIGHT * s for f, s in zip(focus, scores, strict=True)]
    # Ties (most often the many functions the goal shares no word with) go to the plugins of the best
    # matches: padded in name order, "Subtract 5 from 20." was offered Math.subtract and seven
    # BusinessThinking prompt functions, and Qwen2.5-Coder-1.5B planned BusinessThinking.BasicStrategies;
    # padded with Math's other functions, a number question is offered functions that compute (and a
    # planner, passing unrelated=False, is offered nothing else).
    plugin_best: dict[str, float] = {}
    for function, score in zip(functions, scores, strict=True):
        plugin_best[function.plugin] = max(score, plugin_best.get(function.plugin, score))
    ranked = sorted(
        range(len(functions)),
        key=lambda i: (-scores[i], -plugin_best[functions[i].plugin], functions[i].name),
    )
    if not unrelated and any(score > 0 for score in scores):
        ranked = [i for i in ranked if plugin_best[functions[i].plugin] > 0]
    return [functions[i].name for i in ranked[:limit]]
