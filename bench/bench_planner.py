"""Parallel plan execution: independent steps run at once, so a plan takes its longest path, not the sum.

Not a test: prints figures and the ratio measured / sum-of-steps.

    python bench/bench_planner.py [--steps 3] [--ms 100] [--rounds 5] [--chain]

Three (``--steps``) independent steps of 100 ms each (``--ms``; a native function that sleeps
asynchronously, as a model call over HTTP waits) are run through :class:`planners.PlanExecutor`. The
sequential sum is steps × ms; the ideal ratio is 1/steps. With ``--chain`` the steps depend on each
other instead, and the ratio should be ~1.0 (the executor adds no concurrency that is not there).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _sleeper_plugin():
    from semantic_kernel.functions import kernel_function

    class Sleeper:
        @kernel_function(name="wait", description="Wait a while, then return the label.")
        async def wait(self, label: Annotated[str, "returned"], ms: Annotated[float, "milliseconds"] = 100) -> str:
            await asyncio.sleep(float(ms) / 1000)
            return label

    return Sleeper()


async def measure(steps: int, ms: float, rounds: int, chain: bool) -> list[float]:
    from kernel_app.base.config import Settings
    from kernel_app.kernel.builder import build_kernel
    from planners import Plan, PlanExecutor, PlanStep

    kernel = build_kernel(Settings(), with_service=False).kernel
    kernel.add_plugin(_sleeper_plugin(), plugin_name="Sleeper")
    plan = Plan(
        goal="benchmark",
        steps=[
            PlanStep(
                function="Sleeper.wait",
                args={"label": f"$s{i - 1}" if chain and i else f"step {i}", "ms": ms},
                output=f"s{i}",
            )
            for i in range(steps)
        ],
    )
    executor = PlanExecutor(kernel)
    await executor.execute(plan)  # warm-up
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        await executor.execute(plan)
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--ms", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chain", action="store_true", help="make each step depend on the previous one")
    args = parser.parse_args()
    timings = asyncio.run(measure(args.steps, args.ms, args.rounds, args.chain))
    sequential = args.steps * args.ms / 1000
    median = statistics.median(timings)
    shape = "a chain of" if args.chain else "independent"
    print(f"{args.steps} {shape} steps of {args.ms:g} ms, {args.rounds} rounds")
    print(f"  sequential sum : {sequential * 1000:8.1f} ms")
    print(f"  measured median: {median * 1000:8.1f} ms (min {min(timings) * 1000:.1f}, max {max(timings) * 1000:.1f})")
    print(f"  ratio          : {median / sequential:8.2f} (ideal {1.0 if args.chain else 1 / args.steps:.2f})")


if __name__ == "__main__":
    main()
