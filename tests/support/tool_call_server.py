"""A loopback OpenAI-compatible server whose answers may be tool calls (function-calling tests), as JSON or,
when the request asks to stream, as server-sent events (each answer in one chunk).

The shared stub (tests/support/openai_stub.py) answers only text; semantic-kernel's real OpenAI
connector and the real ``openai`` client drive this one, so the tools sent, the calls made and the
results returned are all the real wire format.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ToolCalls = list[tuple[str, dict[str, Any] | str]]


class ToolCallServer:
    """Answers from a queue: a string is a text answer, a list of (tool name, arguments) is a tool-call answer."""

    def __init__(self) -> None:
        self.answers: deque[str | ToolCalls] = deque()
        self.default: str | ToolCalls | None = None
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self._calls = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                server.bodies.append(body)
                server.paths.append(self.path)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                answer = server.answers.popleft() if server.answers else server.default
                if isinstance(answer, list):
                    calls = []
                    for name, arguments in answer:
                        server._calls += 1
                        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
                        calls.append(
                            {
                                "id": f"call_{server._calls}",
                                "type": "function",
                                "function": {"name": name, "arguments": text},
                            }
                        )
                    message = {"role": "assistant", "content": None, "tool_calls": calls}
                    finish = "tool_calls"
                else:
                    message, finish = {"role": "assistant", "content": answer or ""}, "stop"
                payload = {
                    "id": "chatcmpl-tools",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "stub"),
                    "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
                if body.get("stream"):
                    self._stream(payload)
                    return
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, payload: dict[str, Any]) -> None:
                """The same answer as one streamed chunk (tool calls with their ``index``), then the usage."""
                choice = payload["choices"][0]
                delta = dict(choice["message"])
                if delta.get("tool_calls"):
                    delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(delta["tool_calls"])]
                chunk = {**payload, "object": "chat.completion.chunk", "usage": None}
                chunks = [
                    {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                    {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]},
                    {**chunk, "choices": [], "usage": payload["usage"]},
                ]
                data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                raw = data.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def tool_names(self, index: int) -> list[str]:
        return [tool["function"]["name"] for tool in self.bodies[index].get("tools") or []]

    def tool_messages(self, index: int) -> list[str]:
        return [str(m.get("content")) for m in self.bodies[index]["messages"] if m["role"] == "tool"]
