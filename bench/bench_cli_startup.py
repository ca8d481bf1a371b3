"""Start-up cost of the commands plugin authors run most: ``--help``, ``plugins list``, ``plugins lint``.

Each command runs as a fresh process (as a user runs it), N times; the median is reported beside a bare
``python -c pass`` measured in the same run, and, with ``--before REV``, beside the same commands run
from a git worktree of REV (e.g. the commit before a change), so the ratio says what the change cost.

    python bench/bench_cli_startup.py                 # this checkout only
    python bench/bench_cli_startup.py --before HEAD~5 # this checkout against HEAD~5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "--help": ["--help"],
    "plugins list": ["plugins", "list"],
    "plugins lint plugins/": ["plugins", "lint", "plugins"],
}


def median_seconds(argv: list[str], cwd: Path, runs: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(tree: Path, runs: int) -> dict[str, float]:
    return {
        name: median_seconds([sys.executable, "-m", "kernel_app", *args], tree, runs) for name, args in COMMANDS.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", metavar="REV", help="also measure a git worktree of REV")
    args = parser.parse_args()

    bare = median_seconds([sys.executable, "-c", "pass"], ROOT, args.runs)
    after = measure(ROOT, args.runs)
    before: dict[str, float] = {}
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "before"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), args.before],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            try:
                before = measure(tree, args.runs)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    print(f"bare python -c pass: {bare * 1000:.0f} ms (median of {args.runs})")
    header = f"{'command':<24}{'now':>10}" + (f"{'before':>10}{'now/before':>12}" if before else "")
    print(header)
    for name, seconds in after.items():
        line = f"{name:<24}{seconds * 1000:>8.0f}ms"
        if before:
            line += f"{before[name] * 1000:>8.0f}ms{seconds / before[name]:>11.2f}x"
        print(line)


if __name__ == "__main__":
    main()
