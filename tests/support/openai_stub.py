"""A real OpenAI-compatible HTTP server on 127.0.0.1 for protocol tests.

It speaks the chat-completions wire format (JSON and server-sent-event streaming) on both the OpenAI
path (``/v1/chat/completions``) and the Azure one (``/openai/deployments/{name}/chat/completions``),
answers from a queue, and records every request — headers included — so tests can assert what the
real ``openai`` client, driven by semantic-kernel, actually sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def prompt(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.body.get("messages", []))


@dataclass
class Failure:
    """Queue one of these to make the server answer an HTTP error."""

    status: int
    message: str = "scripted failure"


class OpenAIStubServer:
    def __init__(self) -> None:
        self.answers: deque[str | Failure] = deque()
        self.requests: list[RecordedRequest] = []
        self.default_answer: str | None = None
        self.word_delay = 0.0  # seconds between streamed words: a slow model, for a turn to be cut mid-way
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def queue(self, *answers: str | Failure) -> None:
        self.answers.extend(answers)

    def start(self) -> OpenAIStubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def next_answer(self) -> str | Failure:
        if self.answers:
            return self.answers.popleft()
        if self.default_answer is not None:
            return self.default_answer
        return Failure(500, "the stub server has no scripted answer left")


def _handler_for(server: OpenAIStubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            server.requests.append(
                RecordedRequest("POST", parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if not parts.path.endswith("/chat/completions"):
                self._send_json(404, {"error": {"message": f"no route {parts.path}", "type": "not_found"}})
                return
            answer = server.next_answer()
            if isinstance(answer, Failure):
                self._send_json(answer.status, {"error": {"message": answer.message, "type": "server_error"}})
                return
            model = body.get("model")
            if not model and "/deployments/" in parts.path:
                model = parts.path.split("/")[3]
            usage = {
                "prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in body.get("messages", [])),
                "completion_tokens": len(answer.split()),
            }
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            if body.get("stream"):
                self._stream(
                    answer, model or "stub", usage, bool((body.get("stream_options") or {}).get("include_usage"))
                )
            else:
                self._send_json(
                    200,
                    {
                        "id": "chatcmpl-stub",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model or "stub",
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
                        ],
                        "usage": usage,
                    },
                )

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, answer: str, model: str, usage: dict[str, int], include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            words = answer.split(" ")
            base = {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
            }
            for index, word in enumerate(words):
                if index:
                    time.sleep(server.word_delay)
                piece = word if index == len(words) - 1 else word + " "
                delta = {"content": piece} if index else {"role": "assistant", "content": piece}
                self._chunk(dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}]))
            self._chunk(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
            if include_usage:
                self._chunk(dict(base, choices=[], usage=usage))
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")

        def _chunk(self, payload: dict[str, Any]) -> None:
            self._write_chunk(f"data: {json.dumps(payload)}\n\n".encode())

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler
