"""Engine overhead per prompt-function call, and cold `kernel-app --help` time.

Not a test: prints figures and ratios against baselines measured in the same run.

    python bench/bench_engine.py [--calls 2000]

* Overhead: our path (strict-loaded plugin, required-variable filter, run_chain with usage accounting)
  vs a raw ``kernel.invoke`` of the same prompt function on a bare semantic-kernel Kernel, both on the
  same scripted chat service, so only engine cost is compared. Goal: ratio <= 1.1.
* Start-up: wall time of ``kernel-app --help`` in a fresh interpreter vs ``python -c pass``. Goal <= 0.3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def _time_calls(invoke, calls: int) -> float:
    for _ in range(50):  # warm-up: template parsing caches, pydantic validators
        await invoke()
    start = time.perf_counter()
    for _ in range(calls):
        await invoke()
    return (time.perf_counter() - start) / calls


async def overhead(calls: int, rounds: int = 5) -> tuple[float, float]:
    from semantic_kernel import Kernel
    from semantic_kernel.functions import KernelArguments, KernelFunctionFromPrompt

    from kernel_app.base.config import Settings
    from kernel_app.kernel.builder import build_kernel
    from kernel_app.kernel.runner import resolve_function, run_chain
    from kernel_app.providers.scripted import ScriptedChatCompletion

    ours = build_kernel(Settings(), chat_service=ScriptedChatCompletion(default="ok"))
    function = resolve_function(ours.kernel, "Writer.Summarize")

    raw_kernel = Kernel()
    raw_kernel.add_service(ScriptedChatCompletion(default="ok"))
    raw_function = KernelFunctionFromPrompt(
        function_name="Summarize",
        plugin_name="Writer",
        prompt_template_config=function.prompt_template.prompt_template_config.model_copy(deep=True),
    )

    async def ours_call() -> None:
        await run_chain(ours.kernel, [function], input="a long text about pizza")

    async def raw_call() -> None:
        await raw_kernel.invoke(raw_function, KernelArguments(input="a long text about pizza"))

    ours_times, raw_times = [], []
    for _ in range(rounds):  # interleave so drift in machine load hits both sides alike
        raw_times.append(await _time_calls(raw_call, calls))
        ours_times.append(await _time_calls(ours_call, calls))
    return statistics.median(ours_times), statistics.median(raw_times)


def startup(runs: int = 7) -> tuple[float, float]:
    def timed(args: list[str]) -> float:
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(args, capture_output=True, check=True, cwd=ROOT)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    return timed([sys.executable, "-m", "kernel_app", "--help"]), timed([sys.executable, "-c", "pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    ours, raw = asyncio.run(overhead(args.calls))
    print(
        f"prompt-function call: kernel-app {ours * 1e6:8.1f} us   raw kernel.invoke {raw * 1e6:8.1f} us   "
        f"ratio {ours / raw:.3f}x (goal <= 1.1x)"
    )
    help_time, python_time = startup()
    print(
        f"cold `kernel-app --help`: {help_time * 1000:6.0f} ms   bare python: {python_time * 1000:6.0f} ms   "
        f"ratio {help_time / python_time:.2f}x   ours alone {1000 * (help_time - python_time):.0f} ms (goal <= 300 ms)"
    )


if __name__ == "__main__":
    main()
