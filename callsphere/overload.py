"""Graceful overload for HTTP: past capacity, answer 503 with ``Retry-After`` before doing any work.

Unbounded, daphne accepted every request and queued it for a thread: under a burst the web process grew to
hundreds of threads, PostgreSQL ran out of connections and every request timed out, the escalation links
included. :class:`ShedLoad` counts the HTTP requests in flight in this process; one past ``limit`` is answered
at once (no body read, no database, no Django), so a client that retries (Twilio with a ``#rc=`` connection
override, our widget, an API client) comes back later instead of waiting in a pile. The escalation paths
(acknowledge links, the on-call call and its callbacks, the health checks) have a budget of their own, so a
flood of patient texts never stands between a clinician and their page. Websockets are not counted here.
"""

from __future__ import annotations

import os

PRIORITY_PREFIXES = ("/a/", "/twilio/escalation/", "/healthz")


def default_limit() -> int:
    """``HTTP_MAX_IN_FLIGHT`` if set, else four times the sync-view threads (``ASGI_THREADS``, see
    callsphere.web): every thread busy and three requests waiting for each. At twice, 20 concurrent voice calls
    on 2 cores were answered 503 739 times in 10 s (a caller hears an error; the retries burned the CPU): at four
    times none were, turns went 16 → 25 a second, and the queue stays far below Twilio's 15 s timeout."""
    if value := os.environ.get("HTTP_MAX_IN_FLIGHT"):
        return max(1, int(value))
    return 4 * max(1, int(os.environ.get("ASGI_THREADS") or 4 * (os.cpu_count() or 1)))


class ShedLoad:
    """ASGI middleware: at most ``limit`` ordinary and ``priority_limit`` escalation HTTP requests in flight."""

    def __init__(self, app, *, limit: int | None = None, priority_limit: int | None = None, retry_after: int = 1):
        self.app = app
        self.limit = limit if limit is not None else default_limit()
        self.priority_limit = priority_limit if priority_limit is not None else max(4, self.limit // 2)
        self.retry_after = retry_after
        self.in_flight = {False: 0, True: 0}
        self.shed = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        priority = scope.get("path", "").startswith(PRIORITY_PREFIXES)
        if self.in_flight[priority] >= (self.priority_limit if priority else self.limit):
            self.shed += 1
            return await self._unavailable(send)
        self.in_flight[priority] += 1
        try:
            return await self.app(scope, receive, send)
        finally:
            self.in_flight[priority] -= 1

    async def _unavailable(self, send) -> None:
        body = b"Service busy, retry shortly.\n"
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"retry-after", str(self.retry_after).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
