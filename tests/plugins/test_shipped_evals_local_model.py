"""One shipped eval case on the default embedded model (Qwen2.5-Coder-1.5B on llama.cpp), for real.

Writer.Summarize answers in one short sentence (max_tokens 60), so its first case is the fastest that
still means something: the answer is a bounded, single, on-topic sentence. The other shipped evals are
measured with `kernel-app eval` (the README's Evaluate section), not here: a SWOT alone takes minutes
on two busy cores. Skipped when the default tier is not installed.
"""

from __future__ import annotations

from kernel_app.base.config import Settings
from kernel_app.base.paths import builtin_plugins_dir
from kernel_app.kernel.builder import build_kernel
from kernel_app.kernel.evals import load_eval_file
from kernel_app.kernel.evals.runner import Target, run_evals
from kernel_app.providers.llama.tiers import DEFAULT_TIER, get_tier
from tests.support.native_plugins import local_model_marks

pytestmark = local_model_marks(get_tier(DEFAULT_TIER))


async def test_the_summarize_eval_passes_its_first_case_on_the_default_tier() -> None:
    from kernel_app.providers.llama.provider import create_local

    eval_file = load_eval_file(builtin_plugins_dir() / "Writer" / "Summarize" / "evals.yaml")
    eval_file.cases = eval_file.cases[:1]
    settings = Settings(model=DEFAULT_TIER)
    built = build_kernel(settings, chat_service=create_local(settings))
    (result,) = await run_evals([eval_file], [Target(DEFAULT_TIER, built.kernel, built.report)])
    assert result.passed, f"{result.reason}; the answer: {result.output.text!r}"
    assert result.output.usage.completion_tokens > 0
