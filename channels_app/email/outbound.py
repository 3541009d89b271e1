"""Outbound email: threaded replies and confirmations, prepared once and delivered once via Django's backend.

Headers (RFC 5322 §3.6.4): a reply carries ``In-Reply-To: <the message answered>`` and ``References: <its
References> <its Message-ID>``; every message has our own ``Message-ID`` (chosen before sending, so a retried
send reuses it) and ``Reply-To: frontdesk+<token>@…`` (the conversation's reply token). Our messages are
automatic responses, so they carry ``Auto-Submitted: auto-replied`` / ``auto-generated`` (RFC 3834 §5) and
``X-Auto-Response-Suppress: All`` (Exchange): well-behaved autoresponders never answer them — no mail loops.
Sending goes through ``django.core.mail`` (``EMAIL_BACKEND``: SMTP or any anymail ESP); SMTP 4xx / network
errors and anymail API errors 429/5xx are transient (the task retries), other refusals mark the row failed.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import uuid
from email.utils import formataddr

from django.core.mail import EmailMessage, get_connection
from django.db import transaction

from channels_app.delivery import (
    Claim,
    delivery_claim,
    delivery_record_failed,
    delivery_record_sent,
    delivery_release,
)
from channels_app.email.threading import reply_address, tenant_address, tenant_mailbox, thread_for
from channels_app.models import InboundEmail, OutboundEmail
from conversations.models import ChannelMessage, Interaction
from conversations.services import message_prepare_outbound
from providers import ProviderTransientError

logger = logging.getLogger(__name__)

_MSGID_NAMESPACE = uuid.UUID("1b1f0f7e-0f7c-4b57-9a8c-3d9e6f0b8a11")
MAX_REFERENCES = 20


def make_message_id(*, tenant_id, key: str, domain: str) -> str:
    """A Message-ID derived from the tenant and the idempotency key: the same send always has the same id."""
    return f"<{uuid.uuid5(_MSGID_NAMESPACE, f'{tenant_id}:{key}').hex}@{domain}>"


def _from_header(tenant) -> str:
    mailbox = tenant_mailbox(tenant)
    return formataddr(((mailbox.display_name if mailbox else "") or tenant.short_name, tenant_address(tenant)))


def reply_subject(subject: str) -> str:
    """``Re: <subject>`` unless it already starts with a reply prefix."""
    subject = (subject or "").strip()
    return subject if subject.lower().startswith(("re:", "aw:", "sv:")) else f"Re: {subject}".strip()


def email_prepare(
    *,
    interaction: Interaction,
    to: str,
    body: str,
    subject: str,
    kind: str,
    idempotency_key: str,
    in_reply_to: str = "",
    references: list[str] | None = None,
    ics: str = "",
    role: str = "agent",
    turn_extra: dict | None = None,
) -> tuple[ChannelMessage, bool]:
    """Create the pending outbound email (transcript turn, ChannelMessage, headers) once per key.

    ``interaction`` is an ``email`` row; returns ``(message, created)``. Delivery is queued on commit. ``role`` and
    ``turn_extra`` shape the transcript turn (a staff reply: role ``staff`` with the staff user's id).
    """
    from channels_app.email.tasks import email_deliver_task

    tenant = interaction.tenant
    with transaction.atomic():
        message, created = message_prepare_outbound(
            interaction=interaction,
            sender=tenant_address(tenant),
            recipient=to,
            body=body,
            idempotency_key=idempotency_key,
            role=role,
            turn_extra=turn_extra,
        )
        if not created:
            return message, False
        thread = thread_for(conversation=interaction.conversation, subject=subject)
        refs = list(dict.fromkeys(references or []))[-MAX_REFERENCES:]
        OutboundEmail.objects.create(
            channel_message=message,
            kind=kind,
            subject=subject[:255],
            from_header=_from_header(tenant)[:400],
            reply_to=reply_address(tenant=tenant, thread=thread),
            in_reply_to=in_reply_to,
            references=" ".join(refs),
            message_id=make_message_id(
                tenant_id=tenant.pk, key=idempotency_key, domain=tenant_address(tenant).rpartition("@")[2]
            ),
            ics=ics,
        )
        transaction.on_commit(lambda: email_deliver_task.delay(message.pk))
    return message, True


def email_reply_prepare(*, inbound: InboundEmail, body: str) -> tuple[ChannelMessage, bool]:
    """Prepare the threaded answer to an accepted inbound email (key ``email-reply:<inbound id>``)."""
    references = [*inbound.references.split(), inbound.message_id]
    return email_prepare(
        interaction=inbound.interaction,
        to=inbound.from_address,
        body=body,
        subject=reply_subject(inbound.subject),
        kind=OutboundEmail.Kind.REPLY,
        idempotency_key=f"email-reply:{inbound.pk}",
        in_reply_to=inbound.message_id,
        references=references,
    )


def conversation_email_ids(conversation_id) -> list[str]:
    """Message-IDs of the conversation's emails, oldest first (for ``References`` of a message we start)."""
    sent = (
        OutboundEmail.objects.filter(channel_message__interaction__conversation_id=conversation_id)
        .order_by("created_at")
        .values_list("message_id", "created_at")
    )
    received = InboundEmail.objects.filter(
        interaction__conversation_id=conversation_id, status=InboundEmail.Status.ACCEPTED
    ).values_list("message_id", "received_at")
    return [mid for mid, _ in sorted([*sent, *received], key=lambda pair: pair[1])]


def verified_email_of(customer) -> str | None:
    """The patient's first verified email address, or None. Only a verified address (authenticated mail received
    from it, or a code proven in chat): a forged ``From`` must never receive a patient's appointment details."""
    from identity.models import CustomerIdentifier, IdentifierKind

    return (
        CustomerIdentifier.objects.filter(customer=customer, kind=IdentifierKind.EMAIL, verified=True)
        .order_by("created_at")
        .values_list("value", flat=True)
        .first()
    )


def email_to_patient(
    *,
    customer,
    to: str,
    body: str,
    subject: str,
    kind: str,
    idempotency_key: str,
    ics: str = "",
    in_thread: bool = False,
) -> Interaction:
    """Prepare an email we start (confirmation, reminder, survey) in the patient's email session (opened or
    continued, outbound), threaded after the conversation's emails (``In-Reply-To`` / ``References``), once per
    ``idempotency_key`` (see :func:`email_prepare`). ``in_thread``: use the conversation's thread subject as a
    reply ("Re: …") when it has one, else ``subject``. Returns the email interaction."""
    from channels_app.models import EmailThread
    from conversations.models import Channel
    from conversations.services import session_open

    tenant = customer.tenant
    interaction, _opened = session_open(
        tenant=tenant,
        customer=customer,
        channel=Channel.EMAIL,
        direction="outbound",
        idle_window=tenant.sms_idle_window,
    )
    ids = conversation_email_ids(interaction.conversation_id)
    if in_thread:
        thread = EmailThread.objects.filter(conversation_id=interaction.conversation_id).first()
        subject = thread.subject if thread and thread.subject else subject
        subject = reply_subject(subject) if ids else subject
    email_prepare(
        interaction=interaction,
        to=to,
        body=body,
        subject=subject,
        kind=kind,
        idempotency_key=idempotency_key,
        in_reply_to=ids[-1] if ids else "",
        references=ids,
        ics=ics,
    )
    return interaction


def _is_transient(exc: Exception) -> bool:
    if isinstance(
        exc, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, socket.timeout, ConnectionError, TimeoutError)
    ):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    status = getattr(exc, "status_code", None)  # anymail.exceptions.AnymailAPIError
    if exc.__class__.__module__.startswith("anymail"):
        return status is None or status == 429 or status >= 500
    return isinstance(exc, OSError)


def build_message(message: ChannelMessage, headers: OutboundEmail) -> EmailMessage:
    """The Django ``EmailMessage`` for one prepared outbound row (headers, text body, optional .ics)."""
    extra = {
        "Message-ID": headers.message_id,
        "Reply-To": headers.reply_to,
        "Auto-Submitted": "auto-replied" if headers.kind == OutboundEmail.Kind.REPLY else "auto-generated",
        "X-Auto-Response-Suppress": "All",
    }
    if headers.in_reply_to:
        extra["In-Reply-To"] = headers.in_reply_to
    if headers.references:
        extra["References"] = headers.references
    email = EmailMessage(
        subject=headers.subject,
        body=message.body,
        from_email=headers.from_header,
        to=[message.recipient],
        headers=extra,
    )
    if headers.ics:
        method = "CANCEL" if "METHOD:CANCEL" in headers.ics else "PUBLISH"
        email.attach("appointment.ics", headers.ics, f"text/calendar; method={method}; charset=utf-8")
    return email


def _skip_reason(message: ChannelMessage) -> tuple[str, str] | None:
    """Why a claimed email must not be sent: its header row is missing (a half-written prepare)."""
    if not OutboundEmail.objects.filter(channel_message=message).exists():
        return "no_headers", "outbound email has no header row"
    return None


def email_deliver(*, message_id: int) -> ChannelMessage:
    """Send one pending outbound email at most once per attempt, with a fixed Message-ID.

    Claim (committed lease, see :mod:`channels_app.delivery`) → SMTP/ESP send with no transaction or row lock
    held across the network → record. Transient failures (connection refused/dropped, SMTP 4xx, ESP 429/5xx)
    release the claim and raise :class:`~providers.ProviderTransientError` so the task retries;
    permanent ones (SMTP 5xx, ESP 4xx) mark the row ``failed`` with the exception class and code only, unless
    this attempt outlived its lease and a newer claim superseded it (that attempt's outcome decides). SMTP has
    no way to ask "did you get it?", so a worker killed after the server accepted the DATA may lead to one
    resend; it carries the same Message-ID (RFC 5322 §3.6.4), which mail clients use to collapse duplicates.
    """
    claim = delivery_claim(message_id=message_id, skip=_skip_reason)
    if not isinstance(claim, Claim):
        return claim
    message = claim.message
    headers = OutboundEmail.objects.get(channel_message=message)
    try:
        get_connection(fail_silently=False).send_messages([build_message(message, headers)])
    except Exception as exc:
        if _is_transient(exc):
            delivery_release(claim=claim, request_sent=False)
            raise ProviderTransientError(type(exc).__name__, request_sent=False) from exc
        # Only the class and SMTP code: the server's text ("<jane@…>: Recipient address rejected") carries
        # the address, and error fields end up in logs, admin lists and exports.
        code = getattr(exc, "smtp_code", None) or getattr(exc, "status_code", None) or ""
        if delivery_record_failed(
            claim=claim, error_code=type(exc).__name__[:20], error_message=f"{type(exc).__name__} {code}".strip()
        ):
            logger.warning("outbound email %s failed permanently: %s %s", message.pk, type(exc).__name__, code)
        return message
    delivery_record_sent(message=message, provider_id=headers.message_id, status=ChannelMessage.Status.SENT)
    return message
