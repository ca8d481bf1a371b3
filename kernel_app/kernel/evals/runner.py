"""Run eval files: get each case's output from a model, then check it.

Getting the output (:func:`produce`) and checking it (:func:`check`) are separate steps so that a later
cache of outputs, or judges that call a model of their own, slot in between without changing either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel_app.base.errors import KernelAppError
from kernel_app.kernel.evals.assertions import ASSERTIONS, AssertionResult, Output
from kernel_app.kernel.evals.judge import Judge, grade
from kernel_app.kernel.evals.planning import produce_plan
from kernel_app.kernel.evals.spec import EvalCase, EvalFile

if TYPE_CHECKING:
    from semantic_kernel import Kernel
    from semantic_kernel.functions import KernelFunction

    from kernel_app.kernel.evals.cache import OutputStore


@dataclass
class Target:
    """One model to evaluate on: its display name and a kernel with its chat service."""

    name: str
    kernel: Kernel
    report: Any = None  # the plugin LoadReport, to say why a function did not load


@dataclass
class CaseResult:
    file: str
    function: str
    case: EvalCase
    model: str
    repeat: int
    output: Output
    assertions: list[AssertionResult] = field(default_factory=list)
    cached: bool = False  # the output came from the cache (no model time)

    @property
    def passed(self) -> bool:
        return self.output.error is None and all(a.passed for a in self.assertions)

    @property
    def score(self) -> float:
        if self.output.error is not None or not self.assertions:
            return 0.0
        return sum(a.score for a in self.assertions) / len(self.assertions)

    @property
    def reason(self) -> str:
        """Why it failed: the error, or the first failing assertion's reason; empty when it passed."""
        if self.output.error is not None:
            return f"error: {self.output.error}"
        failed = next((a for a in self.assertions if not a.passed), None)
        return f"{failed.type}: {failed.reason}" if failed else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "function": self.function,
            "case": self.case.id,
            "description": self.case.description,
            "model": self.model,
            "repeat": self.repeat,
            "pass": self.passed,
            "score": round(self.score, 4),
            "reason": self.reason,
            "vars": {k: str(v) for k, v in self.case.vars.items()},
            "expected": self.case.expected,
            "output": self.output.text,
            "error": self.output.error,
            "latency_s": round(self.output.latency_s, 3),
            "usage": self.output.usage.to_dict(),
            "cached": self.cached,
            "assertions": [a.to_dict() for a in self.assertions],
        }


Progress = Callable[[int, int, str], None]
OnResult = Callable[[CaseResult], None]


async def produce(kernel: Kernel, function: KernelFunction, case: EvalCase) -> Output:
    """Run ``function`` on the case's variables; a failure of the model becomes the output's error."""
    from kernel_app.kernel.runner import run_chain

    variables = dict(case.vars)
    text = variables.pop("input", None)
    started = time.perf_counter()
    try:
        result = await run_chain(kernel, [function], input=None if text is None else str(text), variables=variables)
    except KernelAppError as exc:
        return Output(
            "", time.perf_counter() - started, error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        )
    return Output(result.result, time.perf_counter() - started, result.usage)


def check(output: Output, case: EvalCase) -> list[AssertionResult]:
    """Every assertion of ``case`` on ``output`` (none when the run failed: the error is the reason)."""
    if output.error is not None:
        return []
    return [ASSERTIONS[spec.type].check(output, spec.params, case.expected) for spec in case.asserts]


async def run_evals(
    files: Sequence[EvalFile],
    targets: Sequence[Target],
    *,
    repeat: int = 1,
    progress: Progress | None = None,
    judge: Judge | None = None,
    cache: OutputStore | None = None,
    on_result: OnResult | None = None,
) -> list[CaseResult]:
    """Every case of ``files`` on every target, ``repeat`` times; ``progress(done, total, label)`` after each.
    ``judge`` grades the ``llm-rubric`` assertions, between producing an output and checking it (verdicts are
    never cached). With ``cache``, an output already produced for the same key is reused (see :mod:`.cache`).
    ``on_result`` gets each result as soon as it is checked, so a long run (the bench) can report and keep
    what finished before an interruption."""
    from kernel_app.kernel.runner import resolve_function

    total = sum(len(f.cases) for f in files) * len(targets) * repeat
    # Resolve every function first: a wrong name is a usage error before any model time is spent.
    functions = {
        (f.path, t.name): None if f.planner else resolve_function(t.kernel, f.function, t.report)
        for f in files
        for t in targets
    }
    results: list[CaseResult] = []
    for eval_file in files:
        for case in eval_file.cases:
            for target in targets:
                function = functions[(eval_file.path, target.name)]
                for round_ in range(1, repeat + 1):
                    if function is None:  # a planner's file: the output is the plan for the case's goal
                        output, cached = await _plan_or_reuse(target, eval_file.planner or "", case, round_, cache)
                    else:
                        output, cached = await _produce_or_reuse(target, function, case, round_, cache)
                    output = await grade(judge, output, case)
                    result = CaseResult(
                        str(eval_file.path), eval_file.function, case, target.name, round_, output, check(output, case)
                    )
                    result.cached = cached
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
                    if progress is not None:
                        label = f"{eval_file.function} {case.id} on {target.name}" + (" (cached)" if cached else "")
                        progress(len(results), total, label)
    return results


async def cached_runs(
    files: Sequence[EvalFile], target: Target, *, repeat: int = 1, cache: OutputStore
) -> set[tuple[str, str, int]]:
    """The runs of ``files`` on ``target`` whose output ``cache`` already holds, as (file, case id, repeat):
    what a rerun will not spend model time on."""
    from kernel_app.kernel.evals.cache import cache_key, plan_key
    from kernel_app.kernel.runner import resolve_function

    found: set[tuple[str, str, int]] = set()
    for eval_file in files:
        function = None if eval_file.planner else resolve_function(target.kernel, eval_file.function, target.report)
        for case in eval_file.cases:
            for round_ in range(1, repeat + 1):
                if function is None:
                    key = plan_key(target.kernel, eval_file.planner or "", case, target.name, round_)
                else:
                    key = await cache_key(target.kernel, function, case, target.name, round_)
                if key is not None and cache.get(key) is not None:
                    found.add((str(eval_file.path), case.id, round_))
    return found


async def _plan_or_reuse(
    target: Target, kind: str, case: EvalCase, repeat: int, cache: OutputStore | None
) -> tuple[Output, bool]:
    """The cached plan for this run when there is one, else a fresh one (stored when the planner made one)."""
    if cache is None:
        return await produce_plan(target.kernel, kind, case), False
    from kernel_app.kernel.evals.cache import plan_key

    key = plan_key(target.kernel, kind, case, target.name, repeat)
    stored = cache.get(key)
    if stored is not None:
        return stored, True
    output = await produce_plan(target.kernel, kind, case)
    if output.error is None:
        cache.put(key, f"planner:{kind}", target.name, output)
    return output, False


async def _produce_or_reuse(
    target: Target, function: KernelFunction, case: EvalCase, repeat: int, cache: OutputStore | None
) -> tuple[Output, bool]:
    """The cached output for this run when there is one, else a fresh one (stored when it has no error)."""
    if cache is None:
        return await produce(target.kernel, function, case), False
    from kernel_app.kernel.evals.cache import cache_key

    key = await cache_key(target.kernel, function, case, target.name, repeat)
    stored = cache.get(key) if key is not None else None
    if stored is not None:
        return stored, True
    output = await produce(target.kernel, function, case)
    if key is not None and output.error is None:
        cache.put(key, f"{function.plugin_name}.{function.name}", target.name, output)
    return output, False
