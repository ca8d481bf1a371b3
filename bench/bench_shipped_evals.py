"""The shipped eval files on each embedded model tier: cases passed per function × tier, and the time.

Not a test: it runs every ``evals.yaml`` / ``*.evals.yaml`` under plugins/ (and, with ``--planner``,
planners/goals.evals.yaml) through ``kernel-app eval``'s runner on each installed tier, one tier after the
other, and prints a table of cases passed (runs passed with ``--repeat``) per function and tier, then the
seconds per tier (model load apart). A tier that is not installed is listed as skipped, with its install
command.

    python bench/bench_shipped_evals.py [--tier smollm2-135m] [--repeat 1] [--files 'plugins/Writer/**/*.yaml' ...]
                                        [--planner] [--no-cache]

Outputs are cached as ``kernel-app eval`` caches them (the data folder's eval cache, keyed by rendered prompt,
settings, model and repeat), so a second run only re-checks; ``--no-cache`` runs every case on the model
again, which is what the time column should measure. llm-rubric assertions are graded by the default tier,
as ``kernel-app eval`` does without ``--judge-model``.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PLANNER_GOALS = ROOT / "planners" / "goals.evals.yaml"


@dataclass
class TierRun:
    tier: str
    skipped: str = ""  # why the tier did not run (not installed: the install command)
    # function -> [passed, runs]
    counts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    load_s: float = 0.0
    eval_s: float = 0.0
    cached: int = 0


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


def progress(done: int, total: int, label: str) -> None:
    print(f"  {done}/{total} {label}", file=sys.stderr, flush=True)


async def run_tier(tier_name: str, files: list, repeat: int, use_cache: bool) -> TierRun:
    from kernel_app.base.config import Settings
    from kernel_app.kernel.builder import build_kernel
    from kernel_app.kernel.evals.cache import open_output_cache
    from kernel_app.kernel.evals.judge import Judge, needs_judge
    from kernel_app.kernel.evals.runner import Target, run_evals
    from kernel_app.providers.llama.provider import create_local

    run = TierRun(tier_name)
    settings = Settings(model=tier_name)
    service = create_local(settings)
    built = build_kernel(settings, chat_service=service)
    started = time.perf_counter()
    await asyncio.to_thread(service.model)  # load time is not eval time
    run.load_s = time.perf_counter() - started
    cases = [case for eval_file in files for case in eval_file.cases]
    judge = Judge(create_local(Settings()), "judge") if needs_judge(cases) else None
    cache = open_output_cache(settings) if use_cache else None
    started = time.perf_counter()
    try:
        results = await run_evals(
            files,
            [Target(tier_name, built.kernel, built.report)],
            repeat=repeat,
            progress=progress,
            judge=judge,
            cache=cache,
        )
    finally:
        if cache is not None:
            cache.close()
    run.eval_s = time.perf_counter() - started
    for result in results:
        count = run.counts[result.function]
        count[0] += result.passed
        count[1] += 1
        run.cached += result.cached
    return run


def table(runs: list[TierRun]) -> str:
    ran = [r for r in runs if not r.skipped]
    functions = sorted({f for r in ran for f in r.counts})
    cell = {(r.tier, f): f"{r.counts[f][0]}/{r.counts[f][1]}" for r in ran for f in r.counts}
    width = max([len("function"), *map(len, functions)])
    columns = [max(len(r.tier), 9) for r in ran]
    lines = [f"{'function':<{width}}  " + "  ".join(f"{r.tier:>{w}}" for r, w in zip(ran, columns, strict=True))]
    for function in functions:
        cells = (f"{cell.get((r.tier, function), '-'):>{w}}" for r, w in zip(ran, columns, strict=True))
        lines.append(f"{function:<{width}}  " + "  ".join(cells))
    totals = []
    for r, w in zip(ran, columns, strict=True):
        passed, runs_ = (sum(c[i] for c in r.counts.values()) for i in (0, 1))
        totals.append(f"{f'{passed}/{runs_}':>{w}}")
    lines.append(f"{'total':<{width}}  " + "  ".join(totals))
    lines.append("")
    for r in runs:
        if r.skipped:
            lines.append(f"{r.tier}: skipped ({r.skipped})")
        else:
            cached = f", {r.cached} output(s) from the cache" if r.cached else ""
            lines.append(f"{r.tier}: {r.eval_s:7.1f} s evals, {r.load_s:5.1f} s model load{cached}")
    return "\n".join(lines)


async def main(tiers: list[str], repeat: int, patterns: list[str] | None, planner: bool, use_cache: bool) -> int:
    from kernel_app.kernel.evals import load_eval_file
    from kernel_app.providers.llama.cache import parts_installed
    from kernel_app.providers.llama.tiers import TIERS

    paths = eval_files(patterns, planner)
    if not paths:
        print(f"no eval files match {patterns!r}", file=sys.stderr)
        return 2
    files = [load_eval_file(path) for path in paths]
    cases = sum(len(f.cases) for f in files)
    print(f"{len(files)} eval file(s), {cases} case(s), repeat {repeat}, cache {'on' if use_cache else 'off'}")
    runs = []
    for name in tiers:
        tier = TIERS[name]
        if not parts_installed(tier):
            runs.append(TierRun(name, skipped=f"not installed: {tier.install_command}"))
            continue
        print(f"{name}: running", file=sys.stderr, flush=True)
        runs.append(await run_tier(name, files, repeat, use_cache))
    print(table(runs))
    return 0


if __name__ == "__main__":
    from kernel_app.providers.llama.tiers import TIERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tier", action="append", choices=list(TIERS), help="repeatable [default: every tier]")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--files", action="append", metavar="GLOB", help="eval files to run, repeatable [default: plugins/'s]"
    )
    parser.add_argument("--planner", action="store_true", help="also run planners/goals.evals.yaml")
    parser.add_argument("--no-cache", action="store_true", help="run every case on the model again")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    sys.exit(asyncio.run(main(args.tier or list(TIERS), args.repeat, args.files, args.planner, not args.no_cache)))
