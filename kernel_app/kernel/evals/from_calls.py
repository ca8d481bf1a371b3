"""Logged model calls as eval cases (``kernel-app logs --to-eval FILE``): yesterday's answer, a regression case.

Each chosen call becomes a case of the function it was made for: the function's arguments are the
case's ``vars`` and what it returned its ``expected`` (the model's answer, or the result of the native
function the call was made inside, when that is the case's function). Its assertions are drawn from the answer and
kept only where the logged answer passes them (the tables it had, complete sentences, no CJK, valid JSON,
at least half its words), so the file passes today and fails when a prompt or model change loses them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from kernel_app.base.errors import UsageError
from kernel_app.kernel.evals.assertions import ASSERTIONS, Output
from kernel_app.providers.call_log import CallRecord


@dataclass
class CallCases:
    """The eval file's text, the function it names (None when the calls were of several), and the calls left out."""

    text: str
    function: str | None
    cases: int
    skipped: list[str] = field(default_factory=list)


def eval_file_from_calls(records: list[CallRecord], function: str | None = None) -> CallCases:
    """An eval file of ``records``' cases; ``function`` (the ``--function`` filter) picks whose arguments become
    ``vars`` when the call was made inside it: by default the outermost function (what the user ran)."""
    cases: list[dict[str, Any]] = []
    functions: list[str] = []
    skipped: list[str] = []
    for record in sorted(records, key=lambda r: (r.started_at, r.id or 0)):
        name = function if function and function in {f["name"] for f in record.functions} else record.root_function
        if name is None:
            skipped.append(f"#{record.id}: made outside any function (a chat turn or a planner), nothing to run")
            continue
        if record.error or not expected_of(record, name).strip():
            skipped.append(f"#{record.id}: {record.error or 'no text in the answer (a function call?)'}")
            continue
        functions.append(name)
        cases.append(_case(record, name))
    if not cases:
        reasons = "; ".join(skipped) or "no calls chosen"
        raise UsageError(f"no call can become an eval case ({reasons}): choose calls made by a function (--function)")
    named = functions[0] if len(set(functions)) == 1 else None
    document: dict[str, Any] = {}
    if named is not None:
        document["function"] = named
    document["description"] = f"regression cases from {len(cases)} logged call{'s' if len(cases) != 1 else ''}"
    document["cases"] = cases
    header = "# Written by `kernel-app logs --to-eval`: each case's `expected` is the answer the model gave then.\n"
    if named is None:
        header += (
            f"# The calls were of several functions ({', '.join(sorted(set(functions)))}): an eval file runs one,\n"
            "# so run this with --function, or choose the calls of one function (kernel-app logs --function ...).\n"
        )
    return CallCases(
        header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120),
        named,
        len(cases),
        skipped,
    )


def _case(record: CallRecord, function: str) -> dict[str, Any]:
    when = datetime.fromtimestamp(record.started_at).astimezone().strftime("%Y-%m-%d %H:%M")
    expected = expected_of(record, function)
    case: dict[str, Any] = {
        "description": f"call #{record.id} of {when} on {record.model or record.service}",
        "vars": record.arguments_of(function),
        "expected": expected,
        "assert": _assertions(expected),
    }
    return case


def expected_of(record: CallRecord, function: str) -> str:
    """What ``function`` gave then: the outermost function's own result when it is the case's function (a
    native function such as BusinessThinking.SWOT renders its model's JSON as tables), else the answer."""
    if function == record.root_function and record.root_result is not None:
        return record.root_result
    return record.answer


_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]")


def _assertions(answer: str) -> list[dict[str, Any]]:
    """What the logged answer has that a later answer should keep; only those it passes itself."""
    from kernel_app.kernel.evals.assertions import markdown_tables

    candidates: list[dict[str, Any]] = []
    tables, _ = markdown_tables(answer)
    if tables:
        candidates.append({"type": "markdown-tables", "count": len(tables)})
    if _is_json(answer):
        candidates.append({"type": "is-json"})
    else:
        candidates.append({"type": "sentences-complete"})
    if not _CJK.search(answer):
        candidates.append({"type": "no-cjk"})
    candidates.append({"type": "words", "min": max(1, len(answer.split()) // 2)})
    output = Output(answer)
    kept: list[dict[str, Any]] = []
    for assertion in candidates:
        kind = ASSERTIONS.get(assertion["type"])
        params = {k: v for k, v in assertion.items() if k != "type"}
        if kind is not None and kind.check(output, params, answer).passed:
            kept.append(assertion)
    return kept or [{"type": "words", "min": 1}]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class _Dumper(yaml.SafeDumper):
    """Multi-line text as a literal block (``|``), so an answer reads in the file as it read on screen."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _text)
