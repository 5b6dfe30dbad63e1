"""A scriptable OpenAI-compatible HTTP server on loopback, for the OpenAI backend's tests."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer. ``body=None`` answers with a well-formed completion of ``text``.
    ``delay``: seconds of silence before the answer; ``drip``: seconds between the bytes of the
    body, sent one at a time after the headers (a server that is slow but never idle)."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0
    text: str = "ok"
    usage: tuple[int, int] | None = None


def error_reply(status: int, message: str, **kwargs: Any) -> Reply:
    body = {"error": {"message": message, "type": "test_error", "param": None, "code": None}}
    return Reply(status=status, body=body, **kwargs)


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


def _words(request: dict[str, Any]) -> int:
    if "messages" in request:
        return sum(len(m["content"].split()) for m in request["messages"])
    return len(str(request.get("prompt", "")).split())


def completion_body(path: str, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    tokens_in, tokens_out = reply.usage or (_words(request), len(reply.text.split()))
    usage = {
        "prompt_tokens": tokens_in,
        "completion_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }
    common = {"created": int(time.time()), "model": request.get("model", "?"), "usage": usage}
    if path.endswith("/chat/completions"):
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": reply.text},
            "finish_reason": "stop",
            "logprobs": None,
        }
        return {"id": "chatcmpl-test", "object": "chat.completion", "choices": [choice], **common}
    choice = {"index": 0, "text": reply.text, "finish_reason": "length", "logprobs": None}
    return {"id": "cmpl-test", "object": "text_completion", "choices": [choice], **common}


class OpenAIServer:
    """Serves POST /v1/chat/completions and /v1/completions from a queue of :class:`Reply`.

    Once the queue is empty every request gets ``Reply()``. Records each request in ``hits``
    and the most requests it was serving at once in ``max_inflight``.
    """

    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.hits: list[Hit] = []
        self.inflight = 0
        self.max_inflight = 0
        self.default = Reply()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._running = False

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def push(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def start(self) -> None:
        self._thread.start()
        self._running = True

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._stopping.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(5)

    def _next(self, hit: Hit) -> Reply:
        with self._lock:
            self.hits.append(hit)
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            return self.script.popleft() if self.script else self.default

    def _done(self) -> None:
        with self._lock:
            self.inflight -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                hit = Hit(self.path, headers, request, time.monotonic())
                if self.path not in ("/v1/chat/completions", "/v1/completions"):
                    self._send(error_reply(404, f"no route {self.path}"), request)
                    return
                reply = server._next(hit)
                try:
                    if reply.delay:
                        server._stopping.wait(reply.delay)
                    self._send(reply, request)
                except OSError:
                    pass  # the client gave up (timeout) and closed the connection
                finally:
                    server._done()

            def _send(self, reply: Reply, request: dict[str, Any]) -> None:
                body = reply.body
                if body is None:
                    body = completion_body(self.path, request, reply)
                data = json.dumps(body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if not reply.drip:
                    self.wfile.write(data)
                    return
                self.wfile.flush()
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    if server._stopping.wait(reply.drip):
                        return

        return Handler
