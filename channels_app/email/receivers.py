"""Email reactions: anymail's ``inbound`` signal → the ingest service; the email confirmation companion.

Imported from :mod:`channels_app.receivers` (connected once, at app ready).
"""

from __future__ import annotations

import logging

from anymail.signals import inbound

from channels_app.confirmations import register_confirmation_companion
from channels_app.email import tasks as _tasks  # noqa: F401  (registers the email tasks with Celery)
from channels_app.email.confirmations import email_confirmation_send
from channels_app.email.quarantine import email_ingest_or_quarantine
from channels_app.models import InboundEmail

logger = logging.getLogger(__name__)


def on_anymail_inbound(sender, event, esp_name, **kwargs) -> None:
    """Receiver of anymail's ``inbound`` signal: the ESP's normalised message goes to :func:`email_ingest`.

    Anymail has already authenticated the request (``ANYMAIL["WEBHOOK_SECRET"]`` basic auth and, where the
    ESP signs, its signature). Bad messages are stored as rejected or quarantined (200 to the ESP: retrying
    cannot help); a transient database error propagates, anymail answers 5xx and the ESP retries later.
    """
    message = event.message
    if message is None:
        return
    envelope = [message.envelope_recipient] if getattr(message, "envelope_recipient", None) else []
    result = email_ingest_or_quarantine(
        raw=message.as_bytes(),
        source=InboundEmail.Source.WEBHOOK,
        envelope_recipients=envelope,
        spam=bool(getattr(message, "spam_detected", False)),
    )
    logger.info("%s inbound email → %s%s", esp_name, result.status, " (duplicate)" if result.duplicate else "")


inbound.connect(on_anymail_inbound, dispatch_uid="channels_app.email.anymail_inbound")
register_confirmation_companion("email", email_confirmation_send)
