"""Planning quality on an embedded model tier: valid plans, exact function sequences, outputs wired.

Not a test: it plans each goal of planners/goals.evals.yaml once on the real model, as ``kernel-app plan
GOAL`` does (every built-in plugin loaded, the tier's own ``planner_max_functions``, grammar on,
temperature 0, up to 3 repairs), and prints one line per goal and a summary with the markdown row for docs/planner.md.

    python bench/bench_planner_quality.py [--model qwen2.5-coder-1.5b] [--only 1,2] [--max-functions 8]

- **valid**: the planner returned a plan that passed validation (within its repair budget);
- **exact**: its function sequence is the expected one (where two functions do the same job, e.g.
  ``Time.today``/``Time.date``, either counts; nothing else does, no extra step);
- **wired**: in an exact multi-step plan, every step that should use an earlier result names it
  (``"input": "$poem"``), instead of repeating the goal's text;
- **mapped**: arguments the planner read under a near-miss name (``topic`` → ``input``), per step note.

Nothing is executed. ``--deadline`` (seconds) stops after the goal that passes it and reports what ran.
``--processes N`` splits the goals over N processes, each loading its own copy of the model (llama.cpp
serves one request at a time): the answers are the same (temperature 0), the seconds per plan are
those of N models sharing the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Goal:
    text: str
    # One entry per expected step: the function, or "A|B" where either does the job.
    functions: tuple[str, ...]
    # (step, earlier step): step (0-based) must take the earlier step's output as one of its arguments.
    wires: tuple[tuple[int, int], ...] = ()


GOALS_FILE = ROOT / "planners" / "goals.evals.yaml"


def load_goals(path: Path = GOALS_FILE) -> list[Goal]:
    """The goals of ``kernel-app eval planners/goals.evals.yaml``: one home for them, read the eval way."""
    from kernel_app.kernel.evals import load_eval_file
    from kernel_app.kernel.evals.planning import expected_wires

    goals = []
    for case in load_eval_file(path).cases:
        params = next(a.params for a in case.asserts if a.type == "plan-functions")
        wires = tuple((step - 1, earlier - 1) for step, earlier in expected_wires(params))  # 0-based here
        goals.append(Goal(str(case.vars["input"]), tuple(params["value"]), wires))
    return goals


GOALS: list[Goal] = load_goals()


@dataclass
class Outcome:
    goal: Goal
    functions: list[str] = field(default_factory=list)
    valid: bool = False
    exact: bool = False
    wired: bool = False
    answers: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str = ""


def judge(goal: Goal, plan) -> tuple[bool, bool]:
    """(exact, wired) of a valid plan against the goal's expectation."""
    from planners.plan import reference_name

    functions = plan.functions
    exact = len(functions) == len(goal.functions) and all(
        name in expected.split("|") for name, expected in zip(functions, goal.functions, strict=True)
    )
    if not exact:
        return False, False
    for step, earlier in goal.wires:
        wanted = plan.steps[earlier].output
        if not any(reference_name(value) == wanted for value in plan.steps[step].args.values()):
            return True, False
    return True, True


async def run(
    model: str, goals: list[Goal], deadline: float, first_number: int = 1, max_functions: int | None = None
) -> tuple[list[Outcome], str, float]:
    from kernel_app.base.config import Settings
    from kernel_app.kernel.builder import build_kernel
    from kernel_app.providers.llama.provider import create_local
    from planners import PlanningError, SequentialPlanner

    settings = Settings(model=model)
    service = create_local(settings)
    kernel = build_kernel(settings, chat_service=service).kernel
    started = time.perf_counter()
    await asyncio.to_thread(service.model)  # load time is not planning time
    load = time.perf_counter() - started
    outcomes = []
    bench_started = time.perf_counter()
    for number, item in enumerate(goals, first_number):
        planner = SequentialPlanner(kernel, max_functions=max_functions)  # None: the tier's own
        outcome = Outcome(item)
        began = time.perf_counter()
        try:
            plan = await planner.create_plan(item.text)
        except PlanningError as error:
            outcome.error = str(error)
        else:
            outcome.valid = True
            outcome.functions = plan.functions
            outcome.exact, outcome.wired = judge(item, plan)
            outcome.notes = [f"{step.function}: {note}" for step in plan.steps for note in step.notes]
        outcome.seconds = time.perf_counter() - began
        outcome.answers = len(planner.last_attempts)
        outcomes.append(outcome)
        mark = "exact" if outcome.exact else ("valid" if outcome.valid else "FAILED")
        wiring = "" if len(item.functions) < 2 or not outcome.exact else (" wired" if outcome.wired else " NOT wired")
        print(
            f"{number:2}. {mark}{wiring} {outcome.seconds:5.1f} s {outcome.answers} answer(s) "
            f"{' → '.join(outcome.functions) or outcome.error}  [{item.text[:60]}]",
            flush=True,
        )
        for note in outcome.notes:
            print(f"      note: {note}", flush=True)
        for attempt in planner.last_attempts:  # why an answer was repaired, for the docs
            if attempt.error is not None:
                print(f"      repaired: {str(attempt.error)[:160]}", flush=True)
        if outcome.valid and not outcome.wired and (len(item.functions) > 1 or not outcome.exact):
            for step in plan.steps:  # what a wrong plan looked like, for the docs
                print(f"      {step.output} = {step.call_text()}", flush=True)
        if time.perf_counter() - bench_started > deadline:
            print(f"deadline of {deadline:g} s passed: stopping after {number} goal(s)", flush=True)
            break
    return outcomes, service.ai_model_id, load


def run_slice(
    model: str, goals: list[Goal], deadline: float, first_number: int, max_functions: int | None = None
) -> tuple[list[Outcome], str, float]:
    """One worker process: its own copy of the model (llama.cpp serves one request at a time)."""
    return asyncio.run(run(model, goals, deadline, first_number, max_functions))


def run_all(
    model: str, goals: list[Goal], deadline: float, processes: int, max_functions: int | None = None
) -> tuple[list[Outcome], str, float]:
    if processes <= 1:
        return run_slice(model, goals, deadline, 1, max_functions)
    from concurrent.futures import ProcessPoolExecutor

    # Contiguous slices, so each worker's goal numbers read in order in the log.
    size = -(-len(goals) // processes)
    slices = [(goals[i : i + size], i + 1) for i in range(0, len(goals), size)]
    with ProcessPoolExecutor(len(slices)) as pool:
        jobs = [(model, g, deadline, n, max_functions) for g, n in slices]
        parts = list(pool.map(run_slice, *zip(*jobs, strict=True)))
    outcomes = [o for part, _, _ in parts for o in part]
    return outcomes, parts[0][1], max(load for _, _, load in parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="a tier name or a .gguf path")
    parser.add_argument("--only", default="", help="comma-separated goal numbers (1-based) to run")
    parser.add_argument("--deadline", type=float, default=1800.0, help="stop after this many seconds")
    parser.add_argument(
        "--processes", type=int, default=1, help="plan in N processes, each with its own model (one thread each)"
    )
    parser.add_argument(
        "--max-functions", type=int, default=None, help="functions offered (default: the tier's planner_max_functions)"
    )
    args = parser.parse_args()
    goals = GOALS
    if args.only:
        goals = [GOALS[int(n) - 1] for n in args.only.split(",")]
    outcomes, title, load = run_all(args.model, goals, args.deadline, args.processes, args.max_functions)
    count = len(outcomes)
    valid = sum(o.valid for o in outcomes)
    exact = sum(o.exact for o in outcomes)
    multi = [o for o in outcomes if len(o.goal.functions) > 1]
    wired = sum(o.wired for o in multi)
    repairs = sum(max(o.answers - 1, 0) for o in outcomes)
    mapped = sum(len(o.notes) for o in outcomes)
    seconds = [o.seconds for o in outcomes]
    print()
    offered = args.max_functions or "the tier's"
    print(f"model: {title} (loaded in {load:.1f} s; {args.processes} process(es), one thread each)")
    print(f"functions offered: {offered}")
    print(f"valid plans     : {valid}/{count}")
    print(f"exact sequences : {exact}/{count}")
    print(f"wired (multi)   : {wired}/{len(multi)} multi-step goals exact and wired")
    print(f"repair turns    : {repairs}; arguments mapped: {mapped}")
    median = statistics.median(seconds)
    print(f"seconds per plan: median {median:.1f}, max {max(seconds):.1f}, total {sum(seconds):.0f}")
    print("markdown row:")
    print(
        f"| {args.model} | {count} | {valid} | {exact} | {wired}/{len(multi)} | {repairs} | "
        f"{statistics.median(seconds):.0f} s |"
    )


if __name__ == "__main__":
    main()
