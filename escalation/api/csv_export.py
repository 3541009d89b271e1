"""The SLA CSV of notification attempts, shared by the admin export and the API (streamed, row by row)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse

from escalation.models import NotificationAttempt
from escalation.selectors import sla_breached

COLUMNS = [
    "incident_id",
    "incident_raised_at",
    "incident_status",
    "urgency",
    "step",
    "round",
    "responder",
    "channel",
    "to",
    "status",
    "provider_status",
    "provider_sid",
    "error_code",
    "tries",
    "step_due_at",
    "created_at",
    "sent_at",
    "lateness_ms",
    "status_updated_at",
    "attempt_acknowledged_at",
    "incident_acknowledged_at",
    "acknowledged_by",
    "ack_via",
    "time_to_ack_seconds",
    "sla_due_at",
    "sla_breached",
]


def _iso(value) -> str:
    return value.isoformat() if value else ""


def _text(value: str) -> str:
    """Free text (names) cannot start a spreadsheet formula (OWASP CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def attempt_row(a: NotificationAttempt) -> list:
    """One CSV row (see :data:`COLUMNS`); times are ISO-8601 UTC; lateness = sent_at − step_due_at (ms)."""
    inc = a.incident
    lateness = round((a.sent_at - a.step_due_at).total_seconds() * 1000) if a.sent_at else ""
    tta = round(inc.time_to_ack.total_seconds(), 3) if inc.time_to_ack else ""
    return [
        inc.pk,
        _iso(inc.raised_at),
        inc.status,
        inc.urgency,
        a.step_index + 1,
        a.repeat + 1,
        _text(a.responder.name),
        a.channel,
        a.to_number,
        a.status,
        a.provider_status,
        a.provider_sid,
        a.error_code,
        a.tries,
        _iso(a.step_due_at),
        _iso(a.created_at),
        _iso(a.sent_at),
        lateness,
        _iso(a.status_updated_at),
        _iso(a.acknowledged_at),
        _iso(inc.acknowledged_at),
        _text(inc.acknowledged_by.name) if inc.acknowledged_by else "",
        inc.ack_via,
        tta,
        _iso(inc.sla_due_at),
        "true" if sla_breached(inc) else "false",
    ]


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(attempts: Iterable[NotificationAttempt]) -> Iterator[str]:
    """The header and one line per attempt."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    iterator = attempts.iterator(chunk_size=500) if hasattr(attempts, "iterator") else attempts
    for attempt in iterator:
        yield writer.writerow(attempt_row(attempt))


def csv_response(attempts, *, filename: str) -> StreamingHttpResponse:
    """A streamed ``text/csv`` download of ``attempts``."""
    response = StreamingHttpResponse(csv_lines(attempts), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
