"""Loopback stand-ins for the hosted content screens, speaking their wire protocols: OpenAI's
``POST /v1/moderations`` and Azure AI Content Safety's ``POST /contentsafety/text:analyze`` and
``text:shieldPrompt`` (Prompt Shields). Each records what it was sent (headers included) and flags a text
by the trigger words in it, so a test decides the verdict:

- ``VIOLENT``: OpenAI flags ``violence``; Azure rates Violence at severity 6.
- ``RUDE``: Azure rates Hate at severity 2 (under the default threshold of 4).
- ``ATTACK``: Prompt Shields detects an attack (in the user prompt or the documents).
- ``FAIL``: the service answers HTTP 500.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any]


class ModerationStub:
    """Both services on one loopback port: ``url`` is the OpenAI base URL's root and the Azure endpoint."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> ModerationStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        texts = [str(body.get(k, "")) for k in ("input", "text", "userPrompt")] + [
            str(d) for d in body.get("documents", []) or []
        ]
        if any("FAIL" in t for t in texts):
            return 500, {"error": {"code": "InternalServerError", "message": "scripted failure"}}
        if path == "/v1/moderations":
            text = str(body["input"])
            categories = {name: name == "violence" and "VIOLENT" in text for name in OPENAI_CATEGORIES}
            result = {
                "flagged": any(categories.values()),
                "categories": categories,
                "category_scores": {name: 0.9 if on else 0.01 for name, on in categories.items()},
                "category_applied_input_types": {name: ["text"] for name in OPENAI_CATEGORIES},
            }
            return 200, {"id": "modr-stub", "model": body.get("model"), "results": [result]}
        if path == "/contentsafety/text:analyze":
            text = str(body["text"])
            severities = {"Hate": 2 if "RUDE" in text else 0, "SelfHarm": 0, "Sexual": 0, "Violence": 0}
            if "VIOLENT" in text:
                severities["Violence"] = 6
            analysis = [{"category": c, "severity": s} for c, s in severities.items()]
            return 200, {"blocklistsMatch": [], "categoriesAnalysis": analysis}
        if path == "/contentsafety/text:shieldPrompt":
            prompt = body.get("userPrompt")
            answer: dict[str, Any] = {
                "documentsAnalysis": [{"attackDetected": "ATTACK" in str(d)} for d in body.get("documents", [])]
            }
            if prompt is not None:
                answer["userPromptAnalysis"] = {"attackDetected": "ATTACK" in str(prompt)}
            return 200, answer
        return 404, {"error": {"code": "NotFound", "message": path}}


def _handler(stub: ModerationStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            stub.received.append(Received(parts.path, parse_qs(parts.query), headers, body))
            status, payload = stub.answer(parts.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
