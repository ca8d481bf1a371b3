"""``--report FILE.html``: one self-contained HTML file (inline CSS, no script, no external asset).

Everything a model wrote is escaped by jinja2's autoescape: an output holding ``<script>`` shows as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kernel_app.kernel.evals.report import summary, totals_line
from kernel_app.kernel.evals.runner import CaseResult

if TYPE_CHECKING:
    from kernel_app.kernel.evals.baseline import Comparison

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.pass { background: #e6f4e6; } .fail { background: #fbe7e7; }
.verdict { font-weight: 600; } .reason { color: #555; font-size: 90%; }
.regressed, .score-dropped { outline: 2px solid #c00; } .improved, .score-rose { outline: 2px solid #080; }
pre { background: #f8f8f8; border: 1px solid #ddd; padding: .6em; white-space: pre-wrap; word-break: break-word; }
details { margin: .4em 0 1.2em; } ul.asserts { padding-left: 1.2em; } .muted { color: #777; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p id="summary">{{ totals }} on {{ models | join(", ") }}.</p>
{% if comparison %}
<h2>Compared with the baseline</h2>
<p id="baseline">{{ comparison.headline }}.</p>
{% if comparison.changes %}<ul>{% for line in comparison.changes %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
{% endif %}
<table id="grid">
<thead><tr><th>Function</th><th>Case</th>{% for model in models %}<th>{{ model }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr><td>{{ row.function }}</td><td>{{ row.case }}: {{ row.description }}</td>
{% for cell in row.cells %}{% if cell %}<td class="{{ 'pass' if cell.passed else 'fail' }} {{ cell.change }}">
<span class="verdict">{{ cell.verdict }}</span>
{% if cell.reason %}<div class="reason">{{ cell.reason }}</div>{% endif %}</td>
{% else %}<td>-</td>{% endif %}{% endfor %}</tr>
{% endfor %}</tbody>
</table>
<h2>Runs</h2>
{% for run in runs %}<section class="run {{ 'pass' if run.pass else 'fail' }}">
<h3>{{ 'PASS' if run.pass else 'FAIL' }} {{ run.function }} {{ run.case }} on {{ run.model }}
{%- if run.repeat > 1 %} (run {{ run.repeat }}){% endif %}</h3>
<p class="muted">{{ run.description }} · latency {{ '%.2f' % run.latency_s }} s ·
{{ run.usage.completion_tokens }} completion tokens{% if run.cached %} · from the cache{% endif %}</p>
<p>Vars: <code>{{ run.vars | tojson }}</code></p>
{% if run.error %}<p class="fail">Error: {{ run.error }}</p>{% endif %}
<ul class="asserts">{% for a in run.assertions %}
<li class="{{ 'pass' if a.pass else 'fail' }}">{{ '✅' if a.pass else '❌' }} <code>{{ a.type }}</code>
({{ '%.2f' % a.score }}): {{ a.reason }}</li>{% endfor %}</ul>
<details><summary>Output</summary><pre>{{ run.output }}</pre></details>
{% if run.expected %}<details><summary>Expected</summary><pre>{{ run.expected }}</pre></details>{% endif %}
</section>
{% endfor %}
</body>
</html>
"""


def html(results: Sequence[CaseResult], title: str = "kernel-app eval", comparison: Comparison | None = None) -> str:
    """The summary, the case × model grid, what changed since a baseline, and each run's output and reasons."""
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    models = list(summary(results)["models"])
    return environment.from_string(TEMPLATE).render(
        title=title,
        totals=totals_line(results),
        models=models,
        comparison=_changes(comparison),
        rows=_rows(results, models, comparison),
        runs=[r.to_dict() for r in results],
    )


def _rows(results: Sequence[CaseResult], models: list[str], comparison: Comparison | None) -> list[dict[str, Any]]:
    runs: dict[tuple[str, str, str], dict[str, list[CaseResult]]] = {}
    for r in results:
        runs.setdefault((r.function, r.case.id, r.case.description), {}).setdefault(r.model, []).append(r)
    rows = []
    for (function, case, description), by_model in runs.items():
        cells = [_cell(by_model.get(model, []), comparison) for model in models]
        rows.append({"function": function, "case": case, "description": description, "cells": cells})
    return rows


def _cell(runs: list[CaseResult], comparison: Comparison | None) -> dict[str, Any] | None:
    if not runs:
        return None
    passed = sum(1 for r in runs if r.passed)
    score = sum(r.score for r in runs) / len(runs)
    count = f" {passed}/{len(runs)}" if len(runs) > 1 else ""
    failing = next((r for r in runs if not r.passed), None)
    first = runs[0]
    change = comparison.kind_of(first.function, first.case.id, first.model) if comparison is not None else None
    return {
        "passed": passed == len(runs),
        "verdict": f"{'PASS' if passed == len(runs) else 'FAIL'}{count} {score:.2f}",
        "reason": failing.reason if failing is not None else "",
        "change": (change or "").replace(" ", "-"),
    }


def _changes(comparison: Comparison | None) -> dict[str, Any] | None:
    if comparison is None:
        return None
    headline, *changes = comparison.lines()
    return {"headline": headline, "changes": changes}
