"""Quarantine: an inbound email that the ingest cannot process is kept, shown and reported — never a wall.

:func:`email_ingest_or_quarantine` is what every inbound path calls (IMAP poller, ``/email/inbound/``, anymail's
webhook). When :func:`~channels_app.email.ingest.email_ingest` fails for one message — a parser or database
refusal (``DataError``, ``IntegrityError``), a bug — the message becomes a ``quarantined``
:class:`~channels_app.models.InboundEmail`: its exact bytes on storage (``raw_path``), the reason, listed in admin
(filter by status); the tenant's admins get an email (no patient data: the row's id, the reason, the admin link).
The caller moves on (the IMAP watermark passes it). Only transient database errors (connection lost, timeout,
deadlock, serialization failure: ``OperationalError`` / ``InterfaceError``) propagate, for the caller to retry
the same message.
"""

from __future__ import annotations

import logging
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from channels_app.email.ingest import IngestResult, _bytes, _guess_message_id, _store, email_ingest
from channels_app.email.threading import find_tenant
from channels_app.models import EmailMailbox, InboundEmail
from identity.models import Tenant
from providers.text import pg_text

logger = logging.getLogger(__name__)

#: Failures that say nothing about the message: the caller retries the same message later.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


def email_ingest_or_quarantine(
    *,
    raw: bytes | Message,
    source: str,
    tenant: Tenant | None = None,
    mailbox: EmailMailbox | None = None,
    envelope_recipients: list[str] | None = None,
    size: int | None = None,
    imap_uid: int | None = None,
    **kwargs,
) -> IngestResult:
    """:func:`email_ingest` in a savepoint; on a failure of this message, :func:`email_quarantine` instead."""
    try:
        with transaction.atomic():
            return email_ingest(
                raw=raw,
                source=source,
                tenant=tenant,
                mailbox=mailbox,
                envelope_recipients=envelope_recipients,
                size=size,
                imap_uid=imap_uid,
                **kwargs,
            )
    except TRANSIENT_DB_ERRORS:
        raise
    except Exception as exc:
        logger.exception("inbound email (%s, uid %s) could not be ingested; quarantining it", source, imap_uid)
        return email_quarantine(
            raw=raw,
            source=source,
            tenant=tenant,
            mailbox=mailbox,
            envelope_recipients=envelope_recipients,
            size=size,
            imap_uid=imap_uid,
            reason=f"{type(exc).__name__}: {exc}",
        )


def _route(data: bytes, envelope_recipients: list[str] | None) -> tuple[Tenant | None, EmailMailbox | None]:
    """Best effort: the tenant of the recipients in the headers (a lenient header-only parse)."""
    try:
        headers = BytesHeaderParser().parsebytes(data)
        fields = [str(v) for name in ("Delivered-To", "X-Original-To", "To", "Cc") for v in headers.get_all(name, [])]
        recipients = [pg_text(a).lower() for _, a in getaddresses(fields) if a]
        return find_tenant([*recipients, *(envelope_recipients or [])])
    except Exception:  # unroutable: kept without a tenant, superusers see it
        logger.warning("quarantined email could not be routed", exc_info=True)
        return None, None


def email_quarantine(
    *,
    raw: bytes | Message,
    source: str,
    reason: str,
    tenant: Tenant | None = None,
    mailbox: EmailMailbox | None = None,
    envelope_recipients: list[str] | None = None,
    size: int | None = None,
    imap_uid: int | None = None,
) -> IngestResult:
    """Keep one message that could not be ingested (see the module docstring); the same Message-ID again is
    the first row (``duplicate``), so a webhook retry does not quarantine it twice or alert twice."""
    from channels_app.email.tasks import email_quarantine_alert_task

    data = _bytes(raw)
    if tenant is None and mailbox is not None:
        tenant = mailbox.tenant
    if tenant is None:
        tenant, mailbox = _route(data, envelope_recipients)
    message_id = _guess_message_id(data) if tenant is not None else ""
    with transaction.atomic():
        if message_id and (existing := InboundEmail.objects.filter(tenant=tenant, message_id=message_id).first()):
            return IngestResult(existing, duplicate=True)
        now = timezone.now()
        where = tenant.pk if tenant is not None else "unrouted"
        row = InboundEmail.objects.create(
            tenant=tenant,
            mailbox=mailbox,
            source=source,
            status=InboundEmail.Status.QUARANTINED,
            reason=pg_text(reason)[:200],
            message_id=message_id,
            size=size if size is not None else len(data),
            raw_path=_store(f"email/quarantine/{where}/{now:%Y/%m}/message.eml", data) if data else "",
            imap_uid=imap_uid,
            received_at=now,
        )
        row_id = str(row.pk)
        transaction.on_commit(lambda: email_quarantine_alert_task.delay(row_id), robust=True)
    logger.error("inbound email %s quarantined: %s", row.pk, row.reason)
    return IngestResult(row)


def email_quarantine_alert(*, email_id) -> int:
    """Email the tenant's admins (superusers when it has no tenant) that a message was quarantined, once per
    row (``alerted_at`` claimed first; an SMTP failure clears it and re-raises for the task's retry). Returns
    the number of recipients. No patient data leaves: the row id, the reason's error class, the admin link."""
    from django.contrib.auth import get_user_model
    from django.core.mail import send_mail

    from identity.models import TenantMembership

    if not InboundEmail.objects.filter(pk=email_id, alerted_at__isnull=True).update(alerted_at=timezone.now()):
        return 0
    row = InboundEmail.objects.select_related("tenant").get(pk=email_id)
    recipients: list[str]
    if row.tenant_id:
        recipients = list(
            TenantMembership.objects.filter(
                tenant_id=row.tenant_id, role=TenantMembership.Role.ADMIN, user__is_active=True
            ).values_list("user__email", flat=True)
        )
    else:
        recipients = list(
            get_user_model().objects.filter(is_superuser=True, is_active=True).values_list("email", flat=True)
        )
    emails = sorted({e for e in recipients if e})
    if not emails:
        logger.error("quarantined email %s: nobody to alert (no admin with an email address)", row.pk)
        return 0
    clinic = row.tenant.short_name if row.tenant else "unrouted mail"
    link = f"{settings.PUBLIC_BASE_URL}/admin/channels_app/inboundemail/{row.pk}/change/"
    try:
        send_mail(
            f"[{clinic}] An inbound email was quarantined",
            f"An inbound email ({row.get_source_display()}, received {row.received_at:%Y-%m-%d %H:%M} UTC) could "
            f"not be processed and was quarantined: {row.reason.split(':')[0]}. It is kept unchanged; please "
            f"open it and follow up with the sender: {link}",
            None,
            emails,
        )
    except OSError:  # smtplib.SMTPException is an OSError
        InboundEmail.objects.filter(pk=email_id).update(alerted_at=None)
        raise
    return len(emails)
