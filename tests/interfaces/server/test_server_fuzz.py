"""Schema fuzzing of the whole OpenAPI surface (schemathesis) on a small budget: no 5xx but the
model's own failures, no traceback in any response. Against uvicorn on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from tests.support.server import make_app, running
from tests.support.tool_scripted import ToolScripted

pytestmark = pytest.mark.e2e  # the app served by uvicorn on loopback

EXAMPLES = 5  # per operation and mode: a smoke budget, not an exhaustive run


def test_fuzz_the_openapi_surface(tmp_path: Path) -> None:
    service = ToolScripted(default="ok")
    with running(make_app(tmp_path, service, mcp=False, request_timeout=10)) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        checked = 0
        problems: list[str] = []
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def probe(case: schemathesis.Case) -> None:
                    nonlocal checked
                    response = case.call(base_url=url, timeout=30)
                    checked += 1
                    text = response.text
                    # 502 is the model's failure, reported as such; anything else 5xx is ours.
                    if (response.status_code >= 500 and response.status_code != 502) or "Traceback" in text:
                        problems.append(f"{case.method} {case.formatted_path}: {response.status_code} {text[:200]}")

                try:
                    probe()
                except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
                    assert mode is GenerationMode.NEGATIVE
    assert checked > 80, checked
    assert problems == []
