"""``POST /v1/evals`` on uvicorn at 127.0.0.1, driven over HTTP: progress as SSE then the ``--json`` result,
the output cache, and what a caller may make the server read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_app.base.config import Settings
from kernel_app.conversation import ConversationStore
from kernel_app.interfaces.server import create_app
from kernel_app.providers.scripted import ScriptedChatCompletion
from tests.support import postgres as pg_support
from tests.support.server import running

postgres_server = pg_support.postgres_server  # the fixtures, by name (tests/support/postgres.py)
postgres_url = pg_support.postgres_url

pytestmark = pytest.mark.e2e  # the app served by uvicorn on loopback

EVAL = """function: Writer.Summarize
cases:
  - description: mentions bread
    input: A long text about bread.
    assert:
      - {type: icontains, value: bread}
  - input: A long text about cheese.
    assert:
      - {type: icontains, value: cheese}
"""
KEY = "k" * 24


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    """A user's plugin folder with their own Writer.Summarize and its eval file, and a secret beside it."""
    function = tmp_path / "my-plugins" / "Writer" / "Summarize"
    function.mkdir(parents=True)
    (function / "skprompt.txt").write_text("MY PROMPT: {{$input}}", encoding="utf-8")
    (function / "evals.yaml").write_text(EVAL.replace("function: Writer.Summarize\n", ""), encoding="utf-8")
    (tmp_path / "secret.evals.yaml").write_text(EVAL, encoding="utf-8")
    (tmp_path / "secret.csv").write_text("input\nthe server's secret\n", encoding="utf-8")
    return tmp_path / "my-plugins"


def serve(
    tmp_path: Path, plugins: Path, database_url: str | None = None, **options: Any
) -> tuple[Any, ScriptedChatCompletion]:
    service = ScriptedChatCompletion(ai_model_id="scripted-model")
    settings = Settings(memory_dir=tmp_path / "memory", plugins_dirs=[plugins], database_url=database_url)
    store = ConversationStore(tmp_path / "memory" / "conversations.sqlite3")
    return create_app(settings, chat_service=service, store=store, **options), service


@pytest.fixture
def served(tmp_path: Path, plugins: Path) -> Iterator[tuple[str, ScriptedChatCompletion]]:
    app, service = serve(tmp_path, plugins)
    with running(app) as url:
        yield url, service


def events_of(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for block in response.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_a_posted_eval_streams_progress_then_the_json_result(served: tuple[str, ScriptedChatCompletion]) -> None:
    url, service = served
    service.queue("Bread is good.", "Nothing here.")
    response = httpx.post(f"{url}/v1/evals", json={"eval": EVAL}, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = events_of(response)
    assert [name for name, _ in events] == ["started", "progress", "progress", "result"]
    assert events[0][1] == {"type": "started", "runs": 2, "model": "scripted-model", "functions": ["Writer.Summarize"]}
    assert [(e["done"], e["total"], e["label"]) for _, e in events[1:3]] == [
        (1, 2, "Writer.Summarize case-1 on scripted-model"),
        (2, 2, "Writer.Summarize case-2 on scripted-model"),
    ]
    result = events[-1][1]  # what `kernel-app eval --json` prints
    assert result["version"] == 1 and set(result) == {"version", "summary", "results"}
    assert result["summary"] == {"runs": 2, "passed": 1, "failed": 1, "cached": 0, "models": ["scripted-model"]}
    assert [(r["case"], r["pass"], r["output"]) for r in result["results"]] == [
        ("case-1", True, "Bread is good."),
        ("case-2", False, "Nothing here."),
    ]
    assert "MY PROMPT: A long text about bread." in service.requests[0].prompt  # the user's copy ran

    # Again: both outputs from the server's cache, no model call; as plain JSON this time.
    again = httpx.post(f"{url}/v1/evals", json={"eval": EVAL, "stream": False}, timeout=60)
    assert again.status_code == 200 and len(service.requests) == 2
    assert again.json()["summary"]["cached"] == 2 and [r["cached"] for r in again.json()["results"]] == [True, True]
    service.queue("Bread again.", "Cheese again.")
    fresh = httpx.post(f"{url}/v1/evals", json={"eval": EVAL, "stream": False, "cache": False}, timeout=60).json()
    assert fresh["summary"] == {"runs": 2, "passed": 2, "failed": 0, "cached": 0, "models": ["scripted-model"]}


def test_an_eval_file_under_a_plugin_folder_runs_by_its_relative_path(
    served: tuple[str, ScriptedChatCompletion],
) -> None:
    url, service = served
    service.queue("Bread is good.", "Cheese is good.")
    ran = httpx.post(f"{url}/v1/evals", json={"path": "Writer/Summarize", "stream": False}, timeout=60)
    assert ran.status_code == 200, ran.text
    assert ran.json()["summary"]["passed"] == 2 and ran.json()["results"][0]["function"] == "Writer.Summarize"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"path": "../secret.evals.yaml"}, 400, "give it relative to a plugin folder"),
        ({"path": "/etc/passwd"}, 400, "give it relative to a plugin folder"),
        ({"path": "Writer/Summarize/skprompt.txt"}, 400, "not an eval file"),
        ({"path": "Writer/Nothing/evals.yaml"}, 404, "no eval file or folder"),
        ({"path": "Linked/evals.yaml"}, 403, "leads out of the plugin folders"),
        ({"eval": EVAL + "dataset: ../secret.csv\n"}, 400, "dataset: not read here"),
        ({"eval": EVAL, "path": "Writer/Summarize"}, 400, "give either `path`"),
        ({"eval": EVAL.replace("icontains", "icontain", 1)}, 400, "did you mean 'icontains'?"),
        ({"eval": EVAL.replace("Writer.Summarize", "Writer.Sumarize")}, 404, "did you mean Writer.Summarize?"),
    ],
)
def test_what_the_server_refuses_to_read_or_run(
    served: tuple[str, ScriptedChatCompletion], plugins: Path, body: dict[str, Any], status: int, message: str
) -> None:
    url, service = served
    (plugins / "Linked").mkdir()
    (plugins / "Linked" / "evals.yaml").symlink_to(plugins.parent / "secret.evals.yaml")
    refused = httpx.post(f"{url}/v1/evals", json=body, timeout=30)
    assert refused.status_code == status, refused.text
    error = refused.json()["error"]["message"]
    assert message in error and "\n" not in error
    assert "the server's secret" not in refused.text and service.requests == []


def test_with_api_keys_an_eval_needs_one(tmp_path: Path, plugins: Path) -> None:
    app, service = serve(tmp_path, plugins, api_keys=[KEY])
    service.queue("Bread.", "Cheese.")
    with running(app) as url:
        anonymous = httpx.post(f"{url}/v1/evals", json={"eval": EVAL}, timeout=30)
        assert anonymous.status_code == 401 and service.requests == []
        keyed = httpx.post(
            f"{url}/v1/evals", json={"eval": EVAL, "stream": False}, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert keyed.status_code == 200 and keyed.json()["summary"]["passed"] == 2


def test_with_a_database_url_the_instances_share_the_cache_in_postgresql(
    tmp_path: Path, plugins: Path, postgres_url: str
) -> None:
    # Two servers on one database, as `serve --workers 2` or two machines: what one produced, the other reuses.
    first, first_service = serve(tmp_path / "one", plugins, postgres_url)
    second, second_service = serve(tmp_path / "two", plugins, postgres_url)
    first_service.queue("Bread is good.", "Cheese is good.")
    with running(first) as url:
        ran = httpx.post(f"{url}/v1/evals", json={"eval": EVAL, "stream": False}, timeout=60).json()
    assert ran["summary"]["cached"] == 0 and len(first_service.requests) == 2
    with running(second) as url:
        again = httpx.post(f"{url}/v1/evals", json={"eval": EVAL, "stream": False}, timeout=60).json()
    assert again["summary"] == {"runs": 2, "passed": 2, "failed": 0, "cached": 2, "models": ["scripted-model"]}
    assert second_service.requests == []
    assert not list(tmp_path.rglob("eval-cache.sqlite3"))  # nothing in the data folders


def test_an_unusable_cache_is_one_line_and_frees_the_queue(tmp_path: Path, plugins: Path) -> None:
    app, service = serve(tmp_path, plugins)
    (tmp_path / "memory").mkdir(exist_ok=True)
    (tmp_path / "memory" / "eval-cache.sqlite3").write_bytes(b"this is not a database, not even close" * 100)
    with running(app) as url:
        broken = httpx.post(f"{url}/v1/evals", json={"eval": EVAL}, timeout=30)
        events = events_of(broken)
        assert [name for name, _ in events] == ["started", "error"] and service.requests == []
        assert "the eval cache cannot be used" in events[1][1]["message"] and "\n" not in events[1][1]["message"]
        service.queue("Bread.", "Cheese.")
        uncached = httpx.post(f"{url}/v1/evals", json={"eval": EVAL, "stream": False, "cache": False}, timeout=30)
        assert uncached.status_code == 200 and uncached.json()["summary"]["passed"] == 2
