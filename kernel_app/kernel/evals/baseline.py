"""``--baseline FILE``: compare a run with an earlier one (what ``--json`` printed) case × model.

A cell is one (function, case, model); its repeats are summed up as the table does (it passes when every
repeat passes; its score is their mean). Cells are matched on the function, the case id, the case's
variables and the model: a case whose input was edited is a new case, not a regression of the old one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel_app.base.errors import UsageError
from kernel_app.kernel.evals.runner import CaseResult

SCORE_STEP = 0.005  # a score that moved less than this (rounding) has not moved

REGRESSED, SCORE_DROPPED, IMPROVED, SCORE_ROSE, NEW = "regressed", "score dropped", "improved", "score rose", "new"
WORSE = (REGRESSED, SCORE_DROPPED)
BETTER = (IMPROVED, SCORE_ROSE)

CellKey = tuple[str, str, str, str]  # function, case id, variables as JSON, model


@dataclass(frozen=True)
class Cell:
    passed: bool
    score: float
    reason: str = ""

    def verdict(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.score:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return {"pass": self.passed, "score": round(self.score, 4), "reason": self.reason}


@dataclass(frozen=True)
class Change:
    kind: str
    function: str
    case: str
    description: str
    model: str
    before: Cell | None
    after: Cell

    def line(self) -> str:
        where = f"{self.kind.upper()}: {self.function} {self.case} on {self.model}"
        if self.before is None:
            return f"{where}: {self.after.verdict()} (not in the baseline)"
        why = f" ({self.after.reason})" if self.kind in WORSE and self.after.reason else ""
        return f"{where}: {self.before.verdict()} -> {self.after.verdict()}{why}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "function": self.function,
            "case": self.case,
            "description": self.description,
            "model": self.model,
            "before": self.before.to_dict() if self.before is not None else None,
            "after": self.after.to_dict(),
        }


@dataclass
class Comparison:
    file: str
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    missing: int = 0  # cells of the baseline this run did not have (a case removed, a model not run)

    def of_kind(self, *kinds: str) -> list[Change]:
        return [c for c in self.changes if c.kind in kinds]

    def counts(self) -> dict[str, int]:
        counts = {kind: len(self.of_kind(kind)) for kind in (REGRESSED, SCORE_DROPPED, IMPROVED, SCORE_ROSE, NEW)}
        return {**counts, "unchanged": self.unchanged, "missing": self.missing}

    def headline(self) -> str:
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts().items() if n or kind in (REGRESSED, IMPROVED))
        return f"Compared with {self.file}: {counts}"

    def lines(self) -> list[str]:
        """The headline, then each change, the worse ones first."""
        ordered = self.of_kind(*WORSE) + self.of_kind(*BETTER) + self.of_kind(NEW)
        return [self.headline(), *(change.line() for change in ordered)]

    def kind_of(self, function: str, case: str, model: str) -> str | None:
        return next((c.kind for c in self.changes if (c.function, c.case, c.model) == (function, case, model)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "counts": self.counts(),
            "regressed": [c.to_dict() for c in self.of_kind(*WORSE)],
            "improved": [c.to_dict() for c in self.of_kind(*BETTER)],
            "new": [c.to_dict() for c in self.of_kind(NEW)],
        }


def load_baseline(path: Path) -> dict[CellKey, Cell]:
    """The cells of an earlier ``--json`` output; a one-line error for anything else."""
    from kernel_app.kernel.evals.report import JSON_VERSION

    hint = "pass a file that `kernel-app eval --json` wrote"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read the baseline ({error}): {hint}") from error
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}:{error.lineno}: the baseline is not JSON ({error.msg}): {hint}") from error
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise UsageError(f"{path}: not an eval run (no `results` list): {hint}")
    if data.get("version") != JSON_VERSION:
        raise UsageError(f"{path}: version {data.get('version')!r}, this kernel-app reads {JSON_VERSION}: {hint}")
    runs: dict[CellKey, list[Cell]] = {}
    for index, raw in enumerate(data["results"]):
        problem = _shape_problem(raw)
        if problem is not None:
            raise UsageError(f"{path}: results[{index}].{problem}: {hint}")
        key = (raw["function"], raw["case"], _vars_key(raw.get("vars") or {}), raw["model"])
        runs.setdefault(key, []).append(Cell(raw["pass"], float(raw["score"]), str(raw.get("reason") or "")))
    return {key: _summed(cells) for key, cells in runs.items()}


def compare(results: Sequence[CaseResult], baseline: Mapping[CellKey, Cell], file: str) -> Comparison:
    """This run's cells against ``baseline``'s."""
    now: dict[CellKey, list[Cell]] = {}
    described: dict[CellKey, str] = {}
    for r in results:
        key = (r.function, r.case.id, _vars_key(r.case.vars), r.model)
        now.setdefault(key, []).append(Cell(r.passed, r.score, r.reason))
        described[key] = r.case.description
    comparison = Comparison(file, missing=sum(1 for key in baseline if key not in now))
    for key, cells in now.items():
        after, before = _summed(cells), baseline.get(key)
        kind = _kind(before, after)
        if kind is None:
            comparison.unchanged += 1
            continue
        function, case, _, model = key
        comparison.changes.append(Change(kind, function, case, described[key], model, before, after))
    return comparison


def _kind(before: Cell | None, after: Cell) -> str | None:
    if before is None:
        return NEW
    if before.passed and not after.passed:
        return REGRESSED
    if after.passed and not before.passed:
        return IMPROVED
    if after.score < before.score - SCORE_STEP:
        return SCORE_DROPPED
    if after.score > before.score + SCORE_STEP:
        return SCORE_ROSE
    return None


def _summed(cells: list[Cell]) -> Cell:
    failing = next((c for c in cells if not c.passed), None)
    return Cell(failing is None, sum(c.score for c in cells) / len(cells), failing.reason if failing else "")


def _vars_key(variables: Mapping[str, Any]) -> str:
    return json.dumps({str(k): str(v) for k, v in variables.items()}, sort_keys=True, ensure_ascii=False)


def _shape_problem(raw: Any) -> str | None:
    """What is wrong with one result of a baseline (``field: expected ...``), or None."""
    if not isinstance(raw, dict):
        return "result: expected an object"
    for key in ("function", "case", "model"):
        if not isinstance(raw.get(key), str):
            return f"{key}: expected text"
    if not isinstance(raw.get("pass"), bool):
        return "pass: expected true/false"
    score = raw.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        return "score: expected a number"
    if not isinstance(raw.get("vars", {}), dict):
        return "vars: expected an object"
    return None
