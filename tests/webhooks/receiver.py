"""A real HTTP receiver on 127.0.0.1 for webhook tests: scripted answers, recorded requests."""

from __future__ import annotations

import socketserver
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Receiver:
    answers: list[tuple[int, dict]] = field(default_factory=list)  # (status, headers); last one repeats
    requests: list[dict] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/callsphere"


def start(answers: list[tuple[int, dict]] | None = None) -> Receiver:
    receiver = Receiver(answers=list(answers or [(200, {})]))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
            status, headers = receiver.answers.pop(0) if len(receiver.answers) > 1 else receiver.answers[0]
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    return receiver


@dataclass
class Trickler:
    """A receiver that reads the request, then sends its status line and one header byte every ``interval``
    seconds for ``duration`` seconds (each read finishes well within any read timeout), then hangs up."""

    interval: float = 0.1
    duration: float = 20.0
    requests: list[bytes] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/slow"

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_trickle(*, interval: float = 0.1, duration: float = 20.0) -> Trickler:
    trickler = Trickler(interval=interval, duration=duration)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(body) < length:
                body += self.request.recv(4096)
            trickler.requests.append(body)
            try:
                self.request.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                ends = time.monotonic() + trickler.duration
                while time.monotonic() < ends and not trickler.stopped.wait(trickler.interval):
                    self.request.sendall(b"a")
            except OSError:
                return  # the client gave up: what a total deadline is for

    trickler.server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=trickler.server.serve_forever, daemon=True).start()
    return trickler
