"""Optional error reporting through Sentry (``sentry-sdk``), on only when ``SENTRY_DSN`` is set.

Nothing that identifies a patient leaves: ``send_default_pii`` is off (no user, cookies, IPs), request bodies
are never sent, local variables are never attached, sentry's :class:`~sentry_sdk.scrubber.EventScrubber`
removes known secret keys (``authorization``, ``password``, ``token``, …) recursively, and
:func:`scrub_event` then rewrites every remaining string of the event — exception messages, log messages,
breadcrumbs, URLs, tags — so phone numbers, email addresses and the secrets of ack/chat links
(:mod:`callsphere.redaction`) become ``[phone]``, ``[email]`` and ``[redacted]``.
"""

from __future__ import annotations

import re
from typing import Any

from callsphere.redaction import redact

# E.164 and loosely written phone numbers: 7+ digits with optional separators and an optional leading "+".
_PHONE = re.compile(r"(?<![\w.])\+?\d(?:[\s().-]*\d){6,}(?![\w])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Event keys whose values are identifiers Sentry needs, never patient data (ids, hashes, timings).
_KEEP = {"event_id", "trace_id", "span_id", "parent_span_id", "timestamp", "start_timestamp", "level", "platform"}


def scrub_text(text: str) -> str:
    """``text`` with link secrets, email addresses and phone numbers replaced."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", redact(text)))


def _scrub(value: Any, key: str = "") -> Any:
    if key in _KEEP:
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """sentry's ``before_send``: the event without request bodies, cookies or users, every string scrubbed."""
    request = event.get("request") or {}
    for field in ("data", "cookies", "query_string", "env"):
        request.pop(field, None)
    event.pop("user", None)
    return _scrub(event)


def scrub_breadcrumb(crumb: dict, hint: dict | None = None) -> dict:
    """sentry's ``before_breadcrumb``: every string of the breadcrumb scrubbed (SQL parameters dropped)."""
    crumb = dict(crumb)
    if isinstance(crumb.get("data"), dict):
        crumb["data"] = {k: v for k, v in crumb["data"].items() if k not in {"params", "db.params"}}
    return _scrub(crumb)


def init_sentry(*, dsn: str, environment: str, release: str = "") -> None:
    """Start reporting errors of Django and Celery to ``dsn`` (PHI scrubbed before send, no tracing)."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.scrubber import EventScrubber

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        event_scrubber=EventScrubber(recursive=True),
        before_send=scrub_event,  # type: ignore[arg-type]
        before_breadcrumb=scrub_breadcrumb,
        traces_sample_rate=0.0,
    )
