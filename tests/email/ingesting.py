"""Ingesting a test email through the guarded path (sender authentication passed, size limits applied)."""

from __future__ import annotations

from channels_app.email.ingest import email_ingest


def ingest_message(msg, **kwargs):
    return email_ingest(raw=msg if isinstance(msg, bytes) else msg.as_bytes(), source="webhook", **kwargs)
