"""The shipped eval files on each embedded model tier: a function × tier table of cases and assertions passed
and the model time per case.

Not a test: it runs every ``evals.yaml`` / ``*.evals.yaml`` under plugins/ (and, with ``--planner``,
planners/goals.evals.yaml) through ``kernel-app eval``'s runner on each installed tier, one tier after the
other, and prints the table, the time of each tier relative to the baseline tier (the default one) when both
ran in this run, and every failing case with its failing assertion's reason. A tier that is not installed is
listed as skipped, with its install command.

    python bench/bench_shipped_evals.py [--tier qwen2.5-coder-0.5b] [--repeat 1] [--files GLOB ...] [--planner]
                                        [--no-cache | --refresh] [--markdown] [--json FILE]

Built for hours on a busy machine:

- **It resumes.** Each output goes into ``kernel-app eval``'s output cache as soon as it is produced (the data
  folder's ``eval-cache.sqlite3``, keyed by rendered prompt, settings, model and repeat), and before a tier
  starts the bench says how many of its runs the cache already holds. Stopped (Ctrl-C, a kill, a reboot),
  the same command again runs only what is missing; Ctrl-C still prints the table of what finished. The
  planner's plans (``--planner``) are cached too, keyed on the planners package's files and the functions
  offered. ``--no-cache`` runs every case on the model again; ``--refresh`` does too and stores the new
  outputs, so that outputs an earlier run cached (under another load) are re-timed and the next run
  reuses these.
- **It shows progress**: after each case, the tier, the function and case, pass or fail, its model time,
  the elapsed time, an estimate of what is left (each remaining uncached case at the mean time of the
  same function's fresh cases on this tier, else of every fresh case on it) and the load average.
- **``--tier``** (repeatable) runs only the tiers named, in that order.

The time per case is the model time of each case's output: measured now for a fresh one, and for one from
the cache when it was produced (marked ``*``: that was another run, maybe under another load; ``--no-cache``
to time every case in this run). llm-rubric assertions are graded by the default tier, as ``kernel-app eval``
does without ``--judge-model``.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from kernel_app.kernel.evals.assertions import Output
    from kernel_app.kernel.evals.cache import OutputStore
    from kernel_app.kernel.evals.runner import CaseResult
    from kernel_app.kernel.evals.spec import EvalFile

PLANNER_GOALS = ROOT / "planners" / "goals.evals.yaml"
PROMPTS = ("plugins", "planners")  # the folders whose files decide the outputs


@dataclass
class Row:
    """One function on one tier: what its runs gave."""

    cases: int = 0
    cases_passed: int = 0
    asserts: int = 0
    asserts_passed: int = 0
    seconds: float = 0.0  # model time of every run's output
    from_cache: int = 0

    def add(self, result: CaseResult) -> None:
        self.cases += 1
        self.cases_passed += result.passed
        self.asserts += len(result.case.asserts)
        self.asserts_passed += sum(a.passed for a in result.assertions)
        self.seconds += result.output.latency_s
        self.from_cache += result.cached

    @property
    def per_case(self) -> float:
        return self.seconds / self.cases if self.cases else 0.0


@dataclass
class TierRun:
    tier: str
    skipped: str = ""  # why the tier did not run (not installed: the install command)
    rows: dict[str, Row] = field(default_factory=lambda: defaultdict(Row))
    results: list[CaseResult] = field(default_factory=list)
    load_s: float = 0.0
    wall_s: float = 0.0
    planned: int = 0  # runs this tier was to make
    finished: bool = False
    loads: list[float] = field(default_factory=list)  # the 1-minute load average after each case

    def total(self) -> Row:
        total = Row()
        for result in self.results:
            total.add(result)
        return total


def prompt_versions() -> str:
    """Which prompts the figures are for: the git trees of plugins/ and planners/ (the same tree is the same
    prompts, whatever the commit), and whether the working copy differs from them."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        trees = ", ".join(f"{folder}/ tree {git('rev-parse', '--short', f'HEAD:{folder}')}" for folder in PROMPTS)
        changed = git("status", "--porcelain", "--", *PROMPTS)
    except (OSError, subprocess.CalledProcessError):
        return "prompts: not in a git checkout"
    return f"prompts: {trees}" + (" (with uncommitted changes)" if changed else "")


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not on every platform
        return float("nan")


def clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def eval_files(patterns: list[str] | None, planner: bool) -> list[Path]:
    """The shipped eval files, or those matching ``patterns`` (globs, ``**`` allowed)."""
    from kernel_app.kernel.evals import discover

    if not patterns:
        paths = discover([ROOT / "plugins"])
    else:
        paths = [Path(p) for p in sorted({m for pattern in patterns for m in glob.glob(pattern, recursive=True)})]
    if planner and PLANNER_GOALS.resolve() not in {p.resolve() for p in paths}:
        paths.append(PLANNER_GOALS)
    return paths


class Progress:
    """One line per finished case on stderr: what it was, elapsed, what is left and how long it may take."""

    def __init__(self, run: TierRun, order: list[tuple[str, str, str, int]], cached: set[tuple[str, str, int]]):
        self.run = run
        self.order = order  # (file, function, case id, repeat) in the runner's order
        self.cached = cached
        self.started = time.perf_counter()
        self.fresh: dict[str, list[float]] = defaultdict(list)  # function -> model seconds of fresh outputs

    def __call__(self, result: CaseResult) -> None:
        run = self.run
        run.results.append(result)
        run.rows[result.function].add(result)
        run.loads.append(load_average())
        if not result.cached:
            self.fresh[result.function].append(result.output.latency_s)
        done = len(run.results)
        verdict = "pass" if result.passed else f"FAIL ({result.reason.split(':')[0]})"
        source = "cached" if result.cached else "fresh"
        elapsed = time.perf_counter() - self.started
        print(
            f"[{run.tier} {done}/{run.planned}] {result.function} {result.case.id}"
            + (f" #{result.repeat}" if result.repeat > 1 else "")
            + f": {verdict}, {result.output.latency_s:.0f} s {source}"
            + f" | elapsed {clock(elapsed)}, {self.left(done)} | load {run.loads[-1]:.1f}",
            file=sys.stderr,
            flush=True,
        )
        if done < len(self.order):
            _, function, case, repeat = self.order[done]
            print(f"    next: {function} {case}" + (f" #{repeat}" if repeat > 1 else ""), file=sys.stderr, flush=True)

    def left(self, done: int) -> str:
        pending = [(f, fn) for f, fn, case, r in self.order[done:] if (f, case, r) not in self.cached]
        if not pending:
            return "nothing left to run"
        everything = [s for times in self.fresh.values() for s in times]
        if not everything:
            return f"{len(pending)} to run, time left unknown until one is fresh"
        overall = sum(everything) / len(everything)
        estimate = sum(
            sum(self.fresh[fn]) / len(self.fresh[fn]) if self.fresh.get(fn) else overall for _, fn in pending
        )
        return f"{len(pending)} to run, ~{clock(estimate)} left"


class Refreshing:
    """An output cache that is written but never read: every case runs again, and its new output replaces
    the one stored (so that a later run reuses outputs all timed in one run)."""

    def __init__(self, store: OutputStore) -> None:
        self.store = store

    def get(self, key: str) -> Output | None:
        return None

    def put(self, key: str, function: str, model: str, output: Output) -> None:
        self.store.put(key, function, model, output)

    def close(self) -> None:
        self.store.close()


async def run_tier(run: TierRun, files: list[EvalFile], repeat: int, use_cache: str, cache_path: Path | None) -> None:
    """Every case of ``files`` on ``run``'s tier; ``use_cache``: on, off or refresh (see :class:`Refreshing`)."""
    from kernel_app.base.config import Settings
    from kernel_app.kernel.builder import build_kernel
    from kernel_app.kernel.evals.cache import open_output_cache
    from kernel_app.kernel.evals.judge import Judge, needs_judge
    from kernel_app.kernel.evals.runner import Target, cached_runs, run_evals
    from kernel_app.providers.llama.provider import create_local
    from kernel_app.providers.llama.service import LocalLlamaChatCompletion

    settings = Settings(model=run.tier)
    service = create_local(settings)
    assert isinstance(service, LocalLlamaChatCompletion)  # a tier is always the embedded model
    built = build_kernel(settings, chat_service=service)
    target = Target(run.tier, built.kernel, built.report)
    order = [
        (str(f.path), f.function, case.id, round_) for f in files for case in f.cases for round_ in range(1, repeat + 1)
    ]
    run.planned = len(order)
    cache: OutputStore | None = None if use_cache == "off" else open_output_cache(settings)
    if cache is not None and use_cache == "refresh":
        cache = Refreshing(cache)
    cached: set[tuple[str, str, int]] = set()
    if cache is not None and use_cache == "on":
        cached = await cached_runs(files, target, repeat=repeat, cache=cache)
        where = cache_path or "the database's eval_outputs table"
        print(
            f"{run.tier}: {len(cached)} of {len(order)} runs already in the output cache ({where}): "
            f"{'resuming, ' if cached else ''}{len(order) - len(cached)} to run on the model",
            file=sys.stderr,
            flush=True,
        )
    started = time.perf_counter()
    try:
        if len(cached) < len(order):
            await asyncio.to_thread(service.model)  # load time is not eval time
        run.load_s = time.perf_counter() - started
        cases = [case for eval_file in files for case in eval_file.cases]
        judge = Judge(create_local(Settings()), "judge") if needs_judge(cases) else None
        print(f"    next: {order[0][1]} {order[0][2]}", file=sys.stderr, flush=True)
        await run_evals(
            files, [target], repeat=repeat, judge=judge, cache=cache, on_result=Progress(run, order, cached)
        )
        run.finished = True
    finally:
        run.wall_s = time.perf_counter() - started
        if cache is not None:
            cache.close()


# -- the table ---------------------------------------------------------------------------------------------------


def short(tier: str) -> str:
    """A tier's size, as the table's headings name it: qwen2.5-coder-1.5b -> 1.5b."""
    return tier.rsplit("-", 1)[-1]


def columns(runs: list[TierRun], baseline: str) -> list[tuple[str, str, Any]]:
    """(tier, heading, cell(row, function) -> text) for every column: cases, assertions, seconds per case, and
    the ratio of seconds per case to the baseline tier's for every other tier, when the baseline ran."""
    base = next((r for r in runs if r.tier == baseline and r.results), None)
    found: list[tuple[str, str, Any]] = []
    for run in runs:
        name = short(run.tier)
        found += [
            (run.tier, f"{name} cases", lambda row, _: f"{row.cases_passed}/{row.cases}"),
            (run.tier, f"{name} asserts", lambda row, _: f"{row.asserts_passed}/{row.asserts}"),
            (run.tier, f"{name} s/case", lambda row, _: f"{row.per_case:.0f}" + ("*" if row.from_cache else "")),
        ]
        if base is not None and run is not base:
            found.append((run.tier, f"{name} time ÷ {short(base.tier)}", _ratio_to(base, run)))
    return found


def _ratio_to(base: TierRun, run: TierRun) -> Any:
    """Seconds per case on ``run`` ÷ on ``base``; the total over the functions both ran."""

    def combined(of: TierRun, functions: set[str]) -> Row:
        total = Row()
        for result in of.results:
            if result.function in functions:
                total.add(result)
        return total

    def cell(row: Row, function: str) -> str:
        if function == "total":
            shared = set(base.rows) & set(run.rows)
            row, base_row = combined(run, shared), combined(base, shared)
        else:
            base_row = base.rows.get(function)
        if base_row is None or not base_row.per_case or not row.cases:
            return "-"
        mixed = "*" if row.from_cache or base_row.from_cache else ""  # not both timed in this run
        return f"{row.per_case / base_row.per_case:.2f}{mixed}"

    return cell


def grid(runs: list[TierRun], baseline: str) -> tuple[list[str], list[list[str]]]:
    """The table's headings and rows (the last row is the total), each cell as text."""
    ran = [r for r in runs if r.results]
    functions = sorted({f for r in ran for f in r.rows})
    cols = columns(ran, baseline)
    headings = ["function", *(heading for _, heading, _ in cols)]
    lines = []
    for function in [*functions, "total"]:
        cells = [function]
        for tier, _, cell in cols:
            run = next(r for r in ran if r.tier == tier)
            row = run.total() if function == "total" else run.rows.get(function)
            cells.append("-" if row is None else cell(row, function))
        lines.append(cells)
    return headings, lines


def text_table(runs: list[TierRun], baseline: str) -> str:
    headings, rows = grid(runs, baseline)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headings)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headings), *(line(r) for r in rows)])


def markdown_table(runs: list[TierRun], baseline: str) -> str:
    """The table with one more column: each failing run's first failing assertion, shortened."""
    headings, rows = grid(runs, baseline)
    lines = [
        "| " + " | ".join([*headings, "what failed"]) + " |",
        "| --- |" + " ---: |" * (len(headings) - 1) + " --- |",
    ]
    for cells in rows:
        failed = [
            f"{short(run.tier)} {result.case.id}: {shorten(result.reason)}"
            for run in runs
            for result in run.results
            if result.function == cells[0] and not result.passed
        ]
        lines.append("| " + " | ".join([*cells, "; ".join(failed).replace("|", "\\|")]) + " |")
    return "\n".join(lines)


def shorten(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def footer(runs: list[TierRun]) -> list[str]:
    lines = [", ".join(f"{short(r.tier)} = {r.tier}" for r in runs if r.results)]
    for run in runs:
        if run.skipped:
            lines.append(f"{run.tier}: skipped ({run.skipped})")
            continue
        total = run.total()
        fresh = total.cases - total.from_cache
        state = "" if run.finished else f", INTERRUPTED after {len(run.results)} of {run.planned} runs"
        loads = [x for x in run.loads if x == x]  # without NaN
        load = f", load average {min(loads):.1f}-{max(loads):.1f}" if loads else ""
        lines.append(
            f"{run.tier}: {total.seconds:.0f} s model time ({fresh} fresh, {total.from_cache} from the cache), "
            f"{run.wall_s:.0f} s wall, {run.load_s:.1f} s model load{load}{state}"
        )
    if any(r.rows.get(f) and r.rows[f].from_cache for r in runs for f in r.rows):
        lines.append("* some outputs from the cache: their time was measured when they were produced")
    failures = [(r.tier, result) for r in runs for result in r.results if not result.passed]
    if failures:
        lines += ["", "failing runs:"]
        lines += [
            f"  {tier}  {result.function} {result.case.id}"
            + (f" #{result.repeat}" if result.repeat > 1 else "")
            + f": {result.reason}"
            for tier, result in failures
        ]
    return lines


def write_json(path: Path, runs: list[TierRun]) -> None:
    records = [{"tier": r.tier, **result.to_dict()} for r in runs for result in r.results]
    path.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")


# -- main --------------------------------------------------------------------------------------------------------


async def bench(runs: list[TierRun], tiers: list[str], repeat: int, files: list[EvalFile], use_cache: str) -> None:
    from kernel_app.base.config import Settings
    from kernel_app.kernel.evals.cache import default_cache_path
    from kernel_app.providers.llama.cache import parts_installed
    from kernel_app.providers.llama.tiers import TIERS

    settings = Settings()
    cache_path = None if settings.database_url else default_cache_path(settings.memory_dir)
    for name in tiers:
        tier = TIERS[name]
        if not parts_installed(tier):
            runs.append(TierRun(name, skipped=f"not installed: {tier.install_command}"))
            continue
        run = TierRun(name)
        runs.append(run)
        await run_tier(run, files, repeat, use_cache, cache_path)


def main() -> int:
    from kernel_app.kernel.evals import load_eval_file
    from kernel_app.providers.llama.tiers import DEFAULT_TIER, TIERS

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tier", action="append", choices=list(TIERS), help="repeatable [default: every tier]")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--files", action="append", metavar="GLOB", help="eval files to run, repeatable [default: plugins/'s]"
    )
    parser.add_argument("--planner", action="store_true", help="also run planners/goals.evals.yaml")
    cache_use = parser.add_mutually_exclusive_group()
    cache_use.add_argument("--no-cache", action="store_true", help="run every case on the model again")
    cache_use.add_argument(
        "--refresh",
        action="store_true",
        help="run every case on the model again and store the new outputs (to re-time what an earlier run cached)",
    )
    parser.add_argument(
        "--baseline", default=DEFAULT_TIER, choices=list(TIERS), help="the tier the others' times are compared with"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every run's result (and output) to FILE")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat: at least 1")

    paths = eval_files(args.files, args.planner)
    if not paths:
        print(f"no eval files match {args.files!r}", file=sys.stderr)
        return 2
    files = [load_eval_file(path) for path in paths]
    cases = sum(len(f.cases) for f in files)
    use_cache = "off" if args.no_cache else "refresh" if args.refresh else "on"
    print(
        f"{len(files)} eval file(s), {cases} case(s), repeat {args.repeat}, cache {use_cache}, "
        f"load average {load_average():.1f} on {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"{prompt_versions()}"
    )
    # A kill reads as Ctrl-C, so that what finished is still printed (and stays in the cache either way).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    runs: list[TierRun] = []
    interrupted = False
    try:
        asyncio.run(bench(runs, args.tier or list(TIERS), args.repeat, files, use_cache))
    except KeyboardInterrupt:
        interrupted = True
    print(markdown_table(runs, args.baseline) if args.markdown else text_table(runs, args.baseline))
    print("\n".join(["", *footer(runs)]))
    if args.json:
        write_json(args.json, runs)
    if interrupted:
        print("interrupted: the same command again resumes from the output cache", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
