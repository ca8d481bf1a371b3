"""Assertions that score the output against a reference text: ``similar``, ``bleu``, ``rouge-l``.

The reference is the assertion's ``value`` or, without one, the case's ``expected`` (the loader refuses
a case with neither). Each passes when its score reaches ``threshold`` and has a ``not-…`` form that
passes below it. BLEU and ROUGE-L come from sacrebleu and rouge-score (the ``eval`` extra), not a metric
of our own; ``similar`` is the cosine of the bundled embedder's vectors, the embedder memory uses.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import DependencyMissingError
from kernel_app.kernel.evals.assertions import AssertionResult, Check, Output, register

if TYPE_CHECKING:
    from memories.embedders import Embedder

EVAL_EXTRA = "eval"
INSTALL = f"pip install 'kernel-app[{EVAL_EXTRA}]'"

# promptfoo's defaults, so a file moved between the two means the same
DEFAULT_THRESHOLDS = {"similar": 0.75, "bleu": 0.5, "rouge-l": 0.75}
# the package each metric imports (its distribution: sacrebleu, rouge-score)
LIBRARIES = {"bleu": "sacrebleu", "rouge-l": "rouge_score"}

_PARAMS: Mapping[str, tuple[tuple[type, ...], bool]] = {"value": ((str,), False), "threshold": ((int, float), False)}

_embedder: Embedder | None = None  # None: the bundled default (memories.embedders.default_embedder)


@contextmanager
def embedder_for_similar(embedder: Embedder) -> Iterator[None]:
    """Use ``embedder`` for ``similar`` inside the block (tests use the hashing embedder: no model load)."""
    global _embedder
    previous, _embedder = _embedder, embedder
    try:
        yield
    finally:
        _embedder = previous


def missing_library(type_name: str) -> str | None:
    """The one-line error for a metric whose library is not installed, or None when it is."""
    module = LIBRARIES.get(type_name.removeprefix("not-"))
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return f"{type_name} needs {module}, from the [{EVAL_EXTRA}] extra: {INSTALL}"


def _validator(type_name: str) -> Callable[[Mapping[str, Any]], str | None]:
    def validate(params: Mapping[str, Any]) -> str | None:
        missing = missing_library(type_name)
        if missing is not None:  # a setup problem, not a typo in the file: said before any model runs
            raise DependencyMissingError(missing)
        threshold = params.get("threshold")
        if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
            return f"threshold: {threshold} is outside [0, 1]"
        return None

    return validate


def _scored(name: str, negate: bool, measure: Callable[[str, str], float], what: str) -> Check:
    full = f"not-{name}" if negate else name

    def check(output: Output, params: Mapping[str, Any], expected: str | None) -> AssertionResult:
        reference = params.get("value", expected)
        if reference is None:  # the loader refuses this; a case built in code may still lack it
            return AssertionResult(full, False, 0.0, "no reference text: give `value` or the case's `expected`")
        score = min(max(measure(output.text, str(reference)), 0.0), 1.0)
        threshold = float(params.get("threshold", DEFAULT_THRESHOLDS[name]))
        reached = score >= threshold
        passed = reached != negate
        relation = "at least" if reached else "below"
        reason = f"{what} {score:.2f}, {relation} the threshold {threshold:g}"
        return AssertionResult(full, passed, 1.0 - score if negate else score, reason)

    return check


def cosine_similarity(output: str, reference: str) -> float:
    """The cosine of the two texts' vectors (the embedder's rows are unit length: a dot product)."""
    from memories.embedders import default_embedder

    embedder = _embedder or default_embedder()
    vectors = embedder.embed([output, reference])
    return float(vectors[0] @ vectors[1])


def bleu(output: str, reference: str) -> float:
    """Sentence BLEU (sacrebleu's defaults: 13a tokens, exponential smoothing), scaled to [0, 1]."""
    from sacrebleu.metrics.bleu import BLEU

    return BLEU(effective_order=True).sentence_score(output, [reference]).score / 100.0


class _WordTokenizer:
    """Lowercase Unicode words. rouge-score's default tokenizer keeps only ``[a-z0-9]``, so "mañana"
    becomes "ma ana" and a Greek or Chinese answer scores 0 against itself; a Translate eval needs words."""

    _WORD = re.compile(r"\w+")

    def tokenize(self, text: str) -> list[str]:
        return self._WORD.findall(text.lower())


def rouge_l(output: str, reference: str) -> float:
    """ROUGE-L F-measure (the longest common subsequence of words), by rouge-score."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], tokenizer=_WordTokenizer())
    return float(scorer.score(reference, output)["rougeL"].fmeasure)


_METRICS: dict[str, tuple[Callable[[str, str], float], str]] = {
    "similar": (cosine_similarity, "similarity"),
    "bleu": (bleu, "BLEU"),
    "rouge-l": (rouge_l, "ROUGE-L"),
}

for _name, (_measure, _what) in _METRICS.items():
    for _negate in (False, True):
        _full = f"not-{_name}" if _negate else _name
        register(_full, _PARAMS, _validator(_full), needs_reference=True)(_scored(_name, _negate, _measure, _what))
