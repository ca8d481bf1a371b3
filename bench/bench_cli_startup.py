"""Start-up cost of the commands run most: ``--help``, ``plugins list``, ``plugins lint``, ``run Math.add``,
and the time until ``chat`` shows its prompt.

Each command runs as a fresh process (as a user runs it), N times; the median is reported beside a bare
``python -c pass`` measured in the same run, and, with ``--before REV``, beside the same commands run
from a git worktree of REV (e.g. the commit before a change), so the ratio says what the change cost.
``chat`` runs on a pseudo-terminal (pexpect, as a person's terminal): the time is from the start of the
process to the prompt ``you>``, on the tiny tier (the model is not what is measured), then it leaves;
its data folder is the default one (``$XDG_DATA_HOME``, a temporary folder here), as a user's is.

    python bench/bench_cli_startup.py                 # this checkout only
    python bench/bench_cli_startup.py --before HEAD~5 # this checkout against HEAD~5
    python bench/bench_cli_startup.py --only chat     # only the commands whose name starts so
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
    "run Math.add": ["run", "Math.add", "--var", "a=2", "--var", "b=3"],
}
CHAT = "chat: time to prompt"
CHAT_ARGS = ["--model", "smollm2-135m", "chat"]


def run_seconds(argv: list[str], cwd: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    return time.perf_counter() - start


def prompt_seconds(cwd: Path, data: str) -> float:
    """The time from starting ``kernel-app chat`` on a pseudo-terminal to its prompt."""
    import pexpect

    # No KERNEL_APP_MEMORY_DIR: finding the default folder is part of what a user's start pays for.
    env = {k: v for k, v in os.environ.items() if k != "KERNEL_APP_MEMORY_DIR"}
    env.update(PYTHONPATH=str(cwd), XDG_DATA_HOME=data, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    start = time.perf_counter()
    child = pexpect.spawn(
        sys.executable, ["-m", "kernel_app", *CHAT_ARGS], cwd=str(cwd), env=env, encoding="utf-8", timeout=120
    )
    child.expect("you>")
    seconds = time.perf_counter() - start
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    return seconds


def measure(trees: list[Path], runs: int, only: list[str]) -> list[dict[str, float]]:
    """Median seconds per command for each tree. The trees take turns run by run, so a change in the
    machine's load during the bench falls on all of them alike (measured one tree after the other on a
    busy machine, --help read 3.9x "slower" than the same code interleaved, 1.02x)."""
    chosen = [name for name in [*COMMANDS, CHAT] if not only or any(name.startswith(o) for o in only)]
    times: list[dict[str, list[float]]] = [{name: [] for name in chosen} for _ in trees]
    with tempfile.TemporaryDirectory() as data:
        for name in chosen:
            for _ in range(runs):
                for tree, found in zip(trees, times, strict=True):
                    if name == CHAT:
                        found[name].append(prompt_seconds(tree, data))
                    else:
                        found[name].append(run_seconds([sys.executable, "-m", "kernel_app", *COMMANDS[name]], tree))
    return [{name: statistics.median(values) for name, values in found.items()} for found in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", metavar="REV", help="also measure a git worktree of REV")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="commands starting so")
    args = parser.parse_args()

    bare = statistics.median(run_seconds([sys.executable, "-c", "pass"], ROOT) for _ in range(args.runs))
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
                after, before = measure([ROOT, tree], args.runs, args.only)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    else:
        (after,) = measure([ROOT], args.runs, args.only)
    print(f"bare python -c pass: {bare * 1000:.0f} ms (median of {args.runs})")
    header = f"{'command':<26}{'now':>10}" + (f"{'before':>10}{'now/before':>12}" if before else "")
    print(header)
    for name, seconds in after.items():
        line = f"{name:<26}{seconds * 1000:>8.0f}ms"
        if before:
            line += f"{before[name] * 1000:>8.0f}ms{seconds / before[name]:>11.2f}x"
        print(line)


if __name__ == "__main__":
    main()
