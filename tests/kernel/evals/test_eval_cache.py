"""The output cache: a second run costs no model call, what decides an output is in its key, and the file
stays readable after a crash mid-write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kernel_app.base.config import Settings
from kernel_app.base.errors import UsageError
from kernel_app.kernel.evals import load_eval_file
from kernel_app.kernel.evals.assertions import Output
from kernel_app.kernel.evals.cache import OutputCache, _source_hash
from kernel_app.kernel.evals.report import summary, table
from kernel_app.kernel.evals.runner import cached_runs, run_evals
from tests.support.cli import cli_env
from tests.support.evals import scripted_target, write_eval

ROOT = Path(__file__).resolve().parents[3]

SUMMARY_EVAL = """function: Writer.Summarize
cases:
  - input: A long text about bread.
    assert:
      - {type: icontains, value: bread}
"""


@pytest.fixture
def cache(tmp_path: Path):
    opened = OutputCache(tmp_path / "data" / "eval-cache.sqlite3")
    yield opened
    opened.close()


async def test_a_second_run_after_an_assertion_change_makes_no_model_call(tmp_path: Path, cache: OutputCache) -> None:
    first_file = load_eval_file(write_eval(tmp_path, SUMMARY_EVAL))
    model, service = scripted_target("m", "Bread is good.")
    (first,) = await run_evals([first_file], [model], cache=cache)
    assert len(service.requests) == 1 and first.passed and not first.cached

    stricter = load_eval_file(write_eval(tmp_path, SUMMARY_EVAL.replace("value: bread", "value: cheese")))
    again, again_service = scripted_target("m")  # no answer queued: a model call would fail the run
    labels: list[str] = []
    (second,) = await run_evals([stricter], [again], cache=cache, progress=lambda *p: labels.append(p[2]))
    assert again_service.requests == []
    assert second.cached and second.output.text == "Bread is good." and second.output.usage.completion_tokens == 3
    assert not second.passed and second.reason.startswith("icontains: output does not contain (any case) 'cheese'")
    assert labels == ["Writer.Summarize case-1 on m (cached)"]
    assert summary([second])["cached"] == 1 and second.to_dict()["cached"] is True
    assert table([second]).endswith("0 of 1 runs passed (1 of 1 outputs from the cache)")


async def test_each_repeat_is_its_own_output(tmp_path: Path, cache: OutputCache) -> None:
    eval_file = load_eval_file(write_eval(tmp_path, SUMMARY_EVAL))
    model, _ = scripted_target("m", "Bread one.", "Bread two.")
    fresh = await run_evals([eval_file], [model], repeat=2, cache=cache)
    assert [r.output.text for r in fresh] == ["Bread one.", "Bread two."]
    again, service = scripted_target("m")
    reused = await run_evals([eval_file], [again], repeat=2, cache=cache)
    assert service.requests == [] and [(r.repeat, r.output.text, r.cached) for r in reused] == [
        (1, "Bread one.", True),
        (2, "Bread two.", True),
    ]
    three, service = scripted_target("m", "Bread three.")
    more = await run_evals([eval_file], [three], repeat=3, cache=cache)
    assert [r.cached for r in more] == [True, True, False] and len(service.requests) == 1


async def test_the_model_the_variables_and_the_rendered_prompt_are_in_the_key(
    tmp_path: Path, cache: OutputCache
) -> None:
    function = tmp_path / "my-plugins" / "Writer" / "Summarize"
    function.mkdir(parents=True)
    (function / "skprompt.txt").write_text("Summarize: {{$input}}", encoding="utf-8")
    settings = Settings(plugins_dirs=[tmp_path / "my-plugins"])
    eval_file = load_eval_file(write_eval(tmp_path, SUMMARY_EVAL))
    model, _ = scripted_target("m", "Bread.", settings=settings)
    await run_evals([eval_file], [model], cache=cache)

    other_model, service = scripted_target("other", "Bread too.", settings=settings)
    assert not (await run_evals([eval_file], [other_model], cache=cache))[0].cached and len(service.requests) == 1

    other_input = load_eval_file(write_eval(tmp_path, SUMMARY_EVAL.replace("about bread", "about rye bread")))
    model, service = scripted_target("m", "Rye bread.", settings=settings)
    assert not (await run_evals([other_input], [model], cache=cache))[0].cached and len(service.requests) == 1

    (function / "skprompt.txt").write_text("Summarize in one line: {{$input}}", encoding="utf-8")
    edited, service = scripted_target("m", "Bread, edited.", settings=settings)
    (result,) = await run_evals([eval_file], [edited], cache=cache)
    assert not result.cached and "Summarize in one line: A long text about bread." in service.requests[0].prompt


async def test_an_error_is_not_cached(tmp_path: Path, cache: OutputCache) -> None:
    eval_file = load_eval_file(write_eval(tmp_path, SUMMARY_EVAL))
    failing, _ = scripted_target("m")
    (failed,) = await run_evals([eval_file], [failing], cache=cache)
    assert failed.output.error is not None
    model, service = scripted_target("m", "Bread.")
    (result,) = await run_evals([eval_file], [model], cache=cache)
    assert result.passed and not result.cached and len(service.requests) == 1


async def test_a_native_function_is_keyed_on_its_plugin_folder(tmp_path: Path, cache: OutputCache) -> None:
    eval_file = load_eval_file(ROOT / "plugins" / "BusinessThinking" / "SWOT.evals.yaml")
    draft = "\n".join(
        f"{c}:\n" + "\n".join(f"- Point {i}: it matters because customers notice it every day." for i in range(3))
        for c in ("Strengths", "Weaknesses", "Opportunities", "Threats")
    )
    model, service = scripted_target("m", *[draft] * len(eval_file.cases))
    fresh = await run_evals([eval_file], [model], cache=cache)
    assert all(r.passed for r in fresh) and len(service.requests) == len(eval_file.cases)
    again, service = scripted_target("m")
    reused = await run_evals([eval_file], [again], cache=cache)
    assert service.requests == [] and all(r.cached and r.passed for r in reused)

    plugin = tmp_path / "BusinessThinking"
    (plugin / "Draft").mkdir(parents=True)
    module = plugin / "swot_plugin.py"
    module.write_text("x = 1\n", encoding="utf-8")
    (plugin / "Draft" / "skprompt.txt").write_text("Draft {{$input}}", encoding="utf-8")
    before = _source_hash(module, "BusinessThinking")
    (plugin / "SWOT.evals.yaml").write_text("cases: []\n", encoding="utf-8")
    assert _source_hash(module, "BusinessThinking") == before  # an assertion edit costs no model time
    (plugin / "Draft" / "skprompt.txt").write_text("Draft a SWOT of {{$input}}", encoding="utf-8")
    assert _source_hash(module, "BusinessThinking") != before  # a prompt the native function uses
    assert _source_hash(module, "Elsewhere") != _source_hash(module, "BusinessThinking")  # not a plugin folder


def test_an_unreadable_cache_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "eval-cache.sqlite3"
    path.write_bytes(b"this is not a database, not even close" * 100)
    with pytest.raises(UsageError) as raised:
        OutputCache(path).get("key")
    message = str(raised.value)
    assert message.startswith(f"{path}: the eval cache cannot be used") and message.endswith("pass --no-cache")
    assert "\n" not in message


CRASH = """
import os, sys
from kernel_app.kernel.evals.assertions import Output
from kernel_app.kernel.evals.cache import OutputCache

cache = OutputCache(__import__("pathlib").Path(sys.argv[1]))
cache.put("kept", "Writer.Summarize", "m", Output("kept output", 1.5))
# Die between the row's INSERT and its COMMIT, as a kill -9 mid-write would.
cache._conn.set_trace_callback(lambda sql: os._exit(9) if sql.strip().upper().startswith("COMMIT") else None)
cache.put("lost", "Writer.Summarize", "m", Output("lost output"))
"""


@pytest.mark.e2e  # a subprocess killed mid-transaction
def test_a_crash_mid_write_leaves_the_cache_readable(tmp_path: Path) -> None:
    path = tmp_path / "eval-cache.sqlite3"
    command = [sys.executable, "-c", CRASH, str(path)]
    crashed = subprocess.run(command, cwd=ROOT, env=cli_env(), capture_output=True, timeout=60)
    assert crashed.returncode == 9, crashed.stderr
    cache = OutputCache(path)
    try:
        assert cache.get("kept") == Output("kept output", 1.5)
        assert cache.get("lost") is None
        cache.put("after", "Writer.Summarize", "m", Output("written after the crash"))
        assert cache.get("after") is not None
    finally:
        cache.close()


async def test_cached_runs_says_which_runs_a_rerun_resumes_without_the_model(
    tmp_path: Path, cache: OutputCache
) -> None:
    two_cases = SUMMARY_EVAL + "  - input: A long text about rye.\n    assert: [{type: icontains, value: rye}]\n"
    eval_file = load_eval_file(write_eval(tmp_path, two_cases))
    model, _ = scripted_target("m", "Bread one.")  # case 1's first run only: then the model fails (not cached)
    await run_evals([eval_file], [model], repeat=2, cache=cache)
    again, service = scripted_target("m")
    found = await cached_runs([eval_file], again, repeat=2, cache=cache)
    assert found == {(str(eval_file.path), "case-1", 1)} and service.requests == []
    other, _ = scripted_target("other")
    assert await cached_runs([eval_file], other, repeat=2, cache=cache) == set()
