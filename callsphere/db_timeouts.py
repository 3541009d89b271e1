"""Per-role statement timeouts: a slow analytics query cannot hold a connection for long, and a webhook that
must answer Twilio within seconds never waits minutes on the database.

``DB_STATEMENT_TIMEOUTS`` (settings) maps a path prefix to milliseconds; the first match sets the session's
``statement_timeout`` before the view runs (0 or no match: the server's default). The value is reset when the
response is not streamed; a streamed response (an export) keeps it for its COPY, and its connection is closed
at the end of the request (the web process runs with ``CONN_MAX_AGE=0``), so it never leaks into another role.
Celery workers do not pass through here: their time limits are Celery's.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection


def _timeout_for(path: str) -> int:
    for prefix, ms in getattr(settings, "DB_STATEMENT_TIMEOUTS", {}).items():
        if path.startswith(prefix):
            return int(ms)
    return 0


class StatementTimeoutMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ms = _timeout_for(request.path)
        if not ms:
            return self.get_response(request)
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{ms}ms"])
        response = self.get_response(request)
        if not getattr(response, "streaming", False) and connection.connection is not None:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("RESET statement_timeout")
            except Exception:  # noqa: BLE001 - a broken connection is closed at request end anyway
                pass
        return response
