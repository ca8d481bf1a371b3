"""Reading a near-miss argument name as the parameter it unambiguously means: ``topic`` → ``input``.

Small models write ``{"topic": "the sea"}`` for ``Writer.ShortPoem(input)``, or ``lang`` for
``language``. Repairing that costs a whole model turn (tens of seconds on the embedded model) for a
name the catalogue already explains. The rule is deliberately narrow, so that no wrong plan can pass:

- only a name-like name (letters, digits, ``_``, ``-``) that is NOT a parameter is mapped, and only
  onto a parameter the step does NOT give;
- the evidence is in the catalogue itself: the same name spelled differently (``day-name``,
  ``dayName`` → ``day_name``), one name a prefix or suffix of the other (``lang`` → ``language``,
  ``target_language`` → ``language``), or every word of the name in the parameter's name and
  description (``topic`` → ``input``: "The topic or situation the poem is about");
- exactly ONE free parameter may fit, and no two names may claim the same one; otherwise nothing is
  mapped and validation reports the unknown argument (a repair turn).

Every mapping is recorded as a note on the step (``argument 'topic' read as 'input'``), which the plan
prints and saves: the user sees what was read. Saved plans get no such leniency (``Plan.load``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from planners.catalogue import FunctionInfo, ParameterInfo
from planners.plan import reference_name
from planners.quoting import quoted
from planners.relevance import tokens

MIN_AFFIX = 3  # "lang" → "language" yes; "a" → "amount" no: one letter is no evidence
# Only a name-like key is read as a near miss: one with a newline, quotes or 100 KB of text is junk that
# a repair turn must show the model, not something to guess the meaning of.
_NAME_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9_ -]{0,63}$")


def _squashed(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _words(name: str) -> set[str]:
    # relevance.tokens splits camelCase, drops stop words and stems crudely: "the_topics" → {"topic"}
    return set(tokens(name.replace("_", " ").replace("-", " ")))


def fits(name: str, parameter: ParameterInfo) -> bool:
    """Whether the catalogue gives evidence that argument ``name`` means ``parameter``."""
    if not _NAME_LIKE.fullmatch(name):
        return False
    key, target = _squashed(name), _squashed(parameter.name)
    if not key or not target:
        return False
    if key == target:
        return True
    shorter, longer = sorted((key, target), key=len)
    if len(shorter) >= MIN_AFFIX and (longer.startswith(shorter) or longer.endswith(shorter)):
        return True
    words = _words(name)
    return bool(words) and words <= _words(f"{parameter.name} {parameter.description}")


def map_near_misses(info: FunctionInfo, args: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``args`` with each unambiguous near-miss name replaced by its parameter, and a note per mapping."""
    names = set(info.parameter_names)
    unknown = [key for key in args if key not in names]
    if not unknown:
        return dict(args), []
    free = [p for p in info.parameters if p.name not in args]
    claims = {key: [p.name for p in free if fits(key, p)] for key in unknown}
    claimed = Counter(found[0] for found in claims.values() if len(found) == 1)
    mapping = {key: found[0] for key, found in claims.items() if len(found) == 1 and claimed[found[0]] == 1}
    mapped = {mapping.get(key, key): value for key, value in args.items()}
    notes = [f"argument {quoted(key)} read as '{target}'" for key, target in mapping.items()]
    return mapped, notes


# An output name that no prose would be: snake_case, a digit, an inner capital, or one run of 20+ letters.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LONG_RUN = 20


def names_not_words(value: str) -> bool:
    """True for ``swot_bakery``, ``step1``, ``poemFrench``, ``Ourbakeryopensatsixbakesourdough``; False for
    ``poem`` or ``Summary``, which may be the text meant."""
    if not _NAME.fullmatch(value):
        return False
    return (
        "_" in value
        or any(c.isdigit() for c in value)
        or any(c.isupper() for c in value[1:])
        or len(value) >= _LONG_RUN
    )


def read_bare_references(
    info: FunctionInfo, args: Mapping[str, Any], earlier: Mapping[str, int]
) -> tuple[dict[str, Any], list[str]]:
    """An argument given the bare name of an earlier output, read as ``"$name"`` with a note, where that
    is its only reading: a NUMBER (or integer, boolean) parameter given text (``"a": "sum"``), or a text
    parameter given a name no text would be (``"input": "swot_bakery"``). For a text parameter given a
    word, ``"input": "poem"`` may be the word: the planner asks again instead (``validation.bare_references``).
    """
    mapped = dict(args)
    notes: list[str] = []
    for parameter in info.parameters:
        value = args.get(parameter.name)
        if not isinstance(value, str) or value not in earlier:
            continue
        if parameter.type in ("number", "integer", "boolean") or names_not_words(value):
            mapped[parameter.name] = f"${value}"
            notes.append(
                f"argument '{parameter.name}': {quoted(value)} read as ${value}, the output of step {earlier[value]}"
            )
    return mapped, notes


MIN_SHARED_STEM = 5  # "summary" / "summarized_text" share "summar"; "text" / "texture" share too little


def same_output(reference: str, output: str) -> bool:
    """Whether ``$reference`` is a near-miss spelling of ``output``: the same letters (``summaryText`` →
    ``summary_text``), one the start or end of the other (``summary`` → ``summary_text``, ``poem`` →
    ``short_poem``), or one stem of at least 5 letters at the start of both (``summary`` →
    ``summarized_text``)."""
    key, target = _squashed(reference), _squashed(output)
    if not key or not target:
        return False
    shorter, longer = sorted((key, target), key=len)
    if len(shorter) >= MIN_AFFIX and (longer.startswith(shorter) or longer.endswith(shorter)):
        return True
    return len(shorter) >= MIN_SHARED_STEM and key[:MIN_SHARED_STEM] == target[:MIN_SHARED_STEM]


def read_near_miss_references(
    args: Mapping[str, Any], earlier: Mapping[str, int], outputs: set[str]
) -> tuple[dict[str, Any], list[str]]:
    """A ``$name`` that no step defines, read as the ONE earlier output it is a near miss of, with a note.

    Qwen2.5-Coder-1.5B named a summary's output ``summarized_text`` and passed ``"$summary"`` to the
    translation, and kept doing so through every repair turn, although the repair named the outputs
    defined. The ``$`` says that an earlier result is meant; the name says which, where exactly one
    earlier output fits (:func:`same_output`). A name that fits none (``"$language"``) or several, or
    that a LATER step defines (an order problem, not a spelling one), is left to validation: a repair.
    """
    mapped = dict(args)
    notes: list[str] = []
    for key, value in args.items():
        name = reference_name(value)
        if name is None or name in outputs or not _NAME_LIKE.fullmatch(name):
            continue
        fitting = [output for output in earlier if same_output(name, output)]
        if len(fitting) == 1:
            (output,) = fitting
            mapped[key] = f"${output}"
            notes.append(
                f"argument {quoted(key)}: {quoted('$' + name)} read as ${output}, the output of step {earlier[output]}"
            )
    return mapped, notes
