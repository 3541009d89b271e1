"""A local stand-in for the OpenAI Chat Completions API (``POST /v1/chat/completions``) on 127.0.0.1.

The real ``openai`` client talks to it through ``base_url``; only the HTTP boundary is replaced. A test gives
a ``responder(request_json) -> assistant message dict`` (``{"content": …}`` or ``{"tool_calls": [...]}``);
:func:`tool_call` and :func:`text` build those. Every request (headers and JSON body) is recorded in
``server.requests``. Response shape: https://platform.openai.com/docs/api-reference/chat/object
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tool_call(name: str, arguments: dict, call_id: str = "call_1") -> dict:
    return {
        "content": None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
        ],
    }


def text(content: str) -> dict:
    return {"content": content}


class _Handler(BaseHTTPRequestHandler):
    server: StubServer

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "json": body}
        )
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        if self.server.fail_status:
            return self._send(self.server.fail_status, {"error": {"message": "stub failure", "type": "server_error"}})
        message = {"role": "assistant", **self.server.responder(body)}
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        self._send(
            200,
            {
                "id": f"chatcmpl-{len(self.server.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "stub"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )

    def _send(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, responder: Callable[[dict], dict]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder = responder
        self.requests: list[dict] = []
        self.fail_status = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request, client_address):
        """A client that timed out and hung up (the point of a slow responder) is no error of the stub."""
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


@contextmanager
def openai_stub(responder: Callable[[dict], dict]):
    """Run the stub in a thread; yields the server (``.base_url``, ``.requests``, ``.fail_status``)."""
    server = StubServer(responder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def llm_serving(settings, responder):
    """Point the agent (and the LLM urgency check) at a stub answering with ``responder`` for the ``with`` block.

    ``settings`` is pytest-django's fixture. Sets ``responder.server``; on exit calls ``responder.release()`` when
    the responder has one (a blocked request must never outlive the test). The client's own timeout is long, so
    only the test (or an explicit deadline) ends a blocked request.
    """
    with openai_stub(responder) as server:
        settings.AGENT_BACKEND = "openai"
        settings.OPENAI_API_KEY = "sk-test-stub"
        settings.OPENAI_BASE_URL = server.base_url
        settings.AGENT_MODEL = "stub-model"
        settings.OPENAI_TIMEOUT_SECONDS = 60
        responder.server = server
        try:
            yield responder
        finally:
            if hasattr(responder, "release"):
                responder.release()


@contextmanager
def in_flight(work, *, waiting, release, timeout: float = 30):
    """Run ``work()`` in a thread and yield once ``waiting`` (a ``threading.Event``) is set — e.g. the stub got
    the request the test wants to hold. On exit ``release()`` is called and the thread joined; the yielded dict
    then holds ``"value"`` (what ``work`` returned). An exception in the thread fails the test. The thread's
    database connection is closed."""
    from django.db import connection

    result: dict = {}

    def run():
        try:
            result["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - reported by the test, not lost in the thread
            result["error"] = exc
        finally:
            connection.close()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        assert waiting.wait(timeout), f"the request never reached the stub: {result}"
        yield result
    finally:
        release()
        worker.join(timeout)
    assert not worker.is_alive()
    assert "error" not in result, result.get("error")


QUIET_SCORES = {"sentiment": 0.1, "intent": "other", "lead_score": 10, "satisfaction": 4, "urgency": 1}


class BlockingLLM:
    """Stub responder for lock tests: the urgency check (a request without ``tools``) answers ``scores`` at once;
    the agent's completion (with ``tools``) sets ``agent_called`` and waits — at most ``wait`` seconds — for
    :meth:`release`, then answers ``agent_reply``. ``block=False`` answers at once too."""

    def __init__(self, agent_reply: str, *, scores: dict | None = None, block: bool = True, wait: float = 30):
        self.agent_reply, self.scores, self.wait = agent_reply, scores or QUIET_SCORES, wait
        self.agent_called, self.released = threading.Event(), threading.Event()
        if not block:
            self.released.set()

    def __call__(self, body: dict) -> dict:
        if "tools" not in body:  # the urgency check (structured output, no tools)
            return text(json.dumps(self.scores))
        self.agent_called.set()
        assert self.released.wait(self.wait), "the test never released the agent's completion"
        return text(self.agent_reply)

    def release(self) -> None:
        self.released.set()

    def agent_requests(self) -> int:
        """How many agent completions (requests with ``tools``) the stub received; needs ``llm_serving``."""
        return sum("tools" in r["json"] for r in self.server.requests)
