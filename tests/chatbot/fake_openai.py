"""A small local OpenAI-compatible server (``POST /v1/chat/completions``) with scripted replies, for tests.

Stdlib ``http.server`` on 127.0.0.1 and a free port. Each request takes the next scripted step:

- ``reply(text)``: 200 with a chat completion whose message content is ``text``;
- ``status(code)``: that HTTP status with an OpenAI-style error body (``retry-after-ms: 10`` so retries are quick);
- ``hang()``: no answer until the server stops (the client's timeout must fire).

When the script is used up, every further request gets HTTP 500. ``requests`` holds every request body received.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Step:
    """One scripted answer."""

    kind: str  # "reply" | "status" | "hang"
    text: str = ""
    code: int = 200


def reply(text: str) -> Step:
    """A successful completion with ``text`` as the assistant's message."""
    return Step("reply", text=text)


def status(code: int) -> Step:
    """An HTTP error status."""
    return Step("status", code=code)


def hang() -> Step:
    """Never answer (until the server stops)."""
    return Step("hang")


class FakeOpenAI:
    """The server; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self) -> None:
        self.script: list[Step] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        """What to give the client as ``base_url``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def play(self, *steps: Step) -> FakeOpenAI:
        """Replace the script."""
        with self._lock:
            self.script = list(steps)
            self.requests.clear()
        return self

    def start(self) -> FakeOpenAI:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, stop serving and close the socket."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, body: dict[str, Any]) -> Step:
        with self._lock:
            self.requests.append(body)
            return self.script.pop(0) if self.script else Step("status", code=500)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                step = server._next(body)
                if step.kind == "hang":
                    server._stopping.wait(60)
                    self.close_connection = True
                    return
                if step.kind == "status":
                    return self._send(step.code, {"error": {"message": f"scripted HTTP {step.code}",
                                                            "type": "rate_limit_error" if step.code == 429 else
                                                            "server_error", "code": None}},
                                      headers={"retry-after-ms": "10"})
                return self._send(200, {
                    "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": step.text}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })

            def _send(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
