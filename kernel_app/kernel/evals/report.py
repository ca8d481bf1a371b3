"""An eval run's results as a terminal table, JSON, JUnit XML and a self-contained markdown report
(the HTML report is :mod:`.html_report`). With a baseline (:mod:`.baseline`), each says what changed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from kernel_app.kernel.evals.runner import CaseResult

if TYPE_CHECKING:
    from kernel_app.kernel.evals.baseline import Comparison

JSON_VERSION = 1  # bumped when a key changes meaning, so CI scripts can tell


def summary(results: Sequence[CaseResult]) -> dict[str, Any]:
    passed = sum(1 for r in results if r.passed)
    return {
        "runs": len(results),
        "passed": passed,
        "failed": len(results) - passed,
        "cached": sum(1 for r in results if r.cached),  # outputs reused from the cache: no model time
        "models": list(dict.fromkeys(r.model for r in results)),
    }


def payload(results: Sequence[CaseResult], comparison: Comparison | None = None) -> dict[str, Any]:
    """What ``--json`` prints (and ``POST /v1/evals`` answers last): the summary, each run, the comparison."""
    data: dict[str, Any] = {"version": JSON_VERSION, "summary": summary(results)}
    if comparison is not None:
        data["baseline"] = comparison.to_dict()
    data["results"] = [r.to_dict() for r in results]
    return data


def to_json(results: Sequence[CaseResult], comparison: Comparison | None = None) -> str:
    return json.dumps(payload(results, comparison), indent=2, ensure_ascii=False)


def totals_line(results: Sequence[CaseResult]) -> str:
    """ "3 of 4 runs passed", and how many outputs came from the cache when any did."""
    totals = summary(results)
    line = f"{totals['passed']} of {totals['runs']} runs passed"
    if totals["cached"]:
        line += f" ({totals['cached']} of {totals['runs']} outputs from the cache)"
    return line


def _grid(results: Sequence[CaseResult]) -> tuple[list[tuple[str, str, str]], list[str], dict[Any, list[CaseResult]]]:
    """Rows (function, case id, description), columns (models), and the runs of each (row, model) cell."""
    rows = list(dict.fromkeys((r.function, r.case.id, r.case.description) for r in results))
    models = list(dict.fromkeys(r.model for r in results))
    cells: dict[Any, list[CaseResult]] = {}
    for r in results:
        cells.setdefault(((r.function, r.case.id, r.case.description), r.model), []).append(r)
    return rows, models, cells


def _cell(runs: list[CaseResult], width: int | None = None) -> str:
    if not runs:
        return "-"
    passed = sum(1 for r in runs if r.passed)
    score = sum(r.score for r in runs) / len(runs)
    verdict = "PASS" if passed == len(runs) else "FAIL"
    count = f" {passed}/{len(runs)}" if len(runs) > 1 else ""
    text = f"{verdict}{count} {score:.2f}"
    failing = next((r for r in runs if not r.passed), None)
    if failing is not None:
        text += f" {failing.reason}"
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def table(results: Sequence[CaseResult], width: int = 60, comparison: Comparison | None = None) -> str:
    """Case × model: pass/score and, for a failure, the first failing assertion's reason; then the totals
    and, with a baseline, what regressed and what improved."""
    rows, models, cells = _grid(results)
    header = ["function", "case", *models]
    body = [
        [function, f"{case_id} {description}"[:40], *(_cell(cells.get((row, m), []), width) for m in models)]
        for row in rows
        for function, case_id, description in [row]
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"\n{totals_line(results)}")
    if comparison is not None:
        lines += ["", *comparison.lines()]
    return "\n".join(lines)


def junit(results: Sequence[CaseResult]) -> str:
    """One test suite per (eval file, model); a case that fails carries every failing reason."""
    suites = ElementTree.Element("testsuites", name="kernel-app eval")
    grouped: dict[tuple[str, str], list[CaseResult]] = {}
    for r in results:
        grouped.setdefault((r.file, r.model), []).append(r)
    for (file, model), runs in grouped.items():
        failures = sum(1 for r in runs if not r.passed)
        suite = ElementTree.SubElement(
            suites,
            "testsuite",
            name=f"{runs[0].function} [{model}]",
            tests=str(len(runs)),
            failures=str(failures),
            time=f"{sum(r.output.latency_s for r in runs):.3f}",
            file=file,
        )
        for r in runs:
            name = f"{r.case.id} {r.case.description}" + (f" #{r.repeat}" if r.repeat > 1 else "")
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"{r.function}.{model}", name=name, time=f"{r.output.latency_s:.3f}"
            )
            if not r.passed:
                reasons = (
                    [r.reason] if r.output.error else [f"{a.type}: {a.reason}" for a in r.assertions if not a.passed]
                )
                failure = ElementTree.SubElement(case, "failure", message=reasons[0])
                failure.text = "\n".join(reasons) + "\n\noutput:\n" + r.output.text
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(
    results: Sequence[CaseResult], title: str = "kernel-app eval", comparison: Comparison | None = None
) -> str:
    """A report that needs nothing else: the summary grid, what changed since a baseline, then each run's
    assertions and output."""
    rows, models, cells = _grid(results)
    out = [f"# {title}", "", f"{totals_line(results)} on {', '.join(models)}.", ""]
    out += ["| Function | Case | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for row in rows:
        function, case_id, description = row
        verdicts = " | ".join(_md_escape(_cell(cells.get((row, m), []))) for m in models)
        out.append(f"| {function} | {case_id}: {_md_escape(description)} | {verdicts} |")
    if comparison is not None:
        headline, *changes = comparison.lines()
        out += [
            "",
            "## Compared with the baseline",
            "",
            f"{headline}.",
            *(["", *(f"- {c}" for c in changes)] if changes else []),
        ]
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        out += ["", f"## {mark} {r.function} {r.case.id} on {r.model}" + (f" (run {r.repeat})" if r.repeat > 1 else "")]
        out += ["", f"Vars: `{json.dumps({k: str(v) for k, v in r.case.vars.items()}, ensure_ascii=False)}`"]
        cached = " (from the cache)" if r.cached else ""
        out += [
            "",
            f"Latency {r.output.latency_s:.2f} s, {r.output.usage.completion_tokens} completion tokens{cached}.",
            "",
        ]
        if r.output.error:
            out.append(f"Error: {r.output.error}")
        for a in r.assertions:
            out.append(f"- {'✅' if a.passed else '❌'} `{a.type}` ({a.score:.2f}): {a.reason}")
        fence = "````" if "```" in r.output.text else "```"
        out += ["", "<details><summary>Output</summary>", "", fence, r.output.text, fence, "", "</details>"]
    return "\n".join(out) + "\n"
