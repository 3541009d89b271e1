"""The one ingest service both inbound paths (IMAP poller, anymail inbound webhook) hand messages to.

``email_ingest(raw=…)`` takes an RFC 5322 message (bytes or an ``email.message.Message``) and decides:

- ``rejected`` (stored with a reason, never answered, never raises): larger than ``EMAIL_INBOUND_MAX_BYTES``,
  malformed (unparsable, no sender), addressed to no tenant, flagged as spam by the ESP;
- ``ignored`` (stored, never answered): auto-replies, bounces (a DSN marks our reported message
  ``undelivered``), mailing lists, mail we sent ourselves (a loop);
- ``accepted``: one customer turn in the ``email`` row of the right conversation (see
  :mod:`channels_app.email.threading`), attachments on the default storage, and on commit the
  EmailTriageAgent task (queuing it may fail, e.g. the broker is down: that is logged, the caller still gets
  the accepted row, and :func:`channels_app.email.triage.email_triage_redrive` queues it a minute later).

A Message-ID seen before for the tenant (IMAP after a restart, a webhook retry, the same mail by both paths) is
a duplicate: nothing is written and the first row is returned. Database errors propagate (the caller retries).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from channels_app.email.parse import MalformedEmail, ParsedEmail, message_ids, parse
from channels_app.email.reply_text import reply_of
from channels_app.email.threading import find_tenant, resolve_thread
from channels_app.models import EmailAttachment, EmailMailbox, InboundEmail, OutboundEmail
from conversations.models import Channel, ChannelMessage
from conversations.services import (
    interaction_set_metadata,
    interaction_set_workflow,
    message_receive,
    message_status_update,
)
from identity.models import CustomerIdentifier, IdentifierKind, Tenant
from identity.services import customer_resolve
from providers.text import pg_text

logger = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """``email`` the stored row (None only if storing itself was impossible); ``duplicate`` for a redelivery."""

    email: InboundEmail
    duplicate: bool = False

    @property
    def status(self) -> str:
        return self.email.status

    @property
    def reason(self) -> str:
        return self.email.reason


def _bytes(raw: bytes | Message) -> bytes:
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    try:
        return raw.as_bytes()
    except Exception:  # noqa: BLE001 - a message object that cannot serialise is malformed
        return b""


def _store(path: str, data: bytes) -> str:
    return default_storage.save(path, ContentFile(data))


def _guess_message_id(data: bytes) -> str:
    found = re.search(rb"^message-id:[ \t]*(<[^<>\s]+>)", data[:65536], re.I | re.M)
    return pg_text(found.group(1).decode("ascii", "replace")[:255]) if found else ""


def _reject(
    *,
    tenant: Tenant | None,
    mailbox: EmailMailbox | None,
    source: str,
    reason: str,
    data: bytes,
    size: int,
    imap_uid: int | None,
    parsed: ParsedEmail | None = None,
    status: str = InboundEmail.Status.REJECTED,
) -> IngestResult:
    message_id = parsed.message_id if parsed else _guess_message_id(data)
    if tenant is not None and message_id:
        existing = InboundEmail.objects.filter(tenant=tenant, message_id=message_id).first()
        if existing:
            return IngestResult(existing, duplicate=True)
    now = timezone.now()
    raw_path = ""
    if data and len(data) <= settings.EMAIL_INBOUND_MAX_BYTES:
        raw_path = _store(f"email/raw/{tenant.pk if tenant else 'unrouted'}/{now:%Y/%m}/rejected.eml", data)
    try:
        with transaction.atomic():
            row = InboundEmail.objects.create(
                tenant=tenant,
                mailbox=mailbox,
                source=source,
                status=status,
                reason=pg_text(reason)[:200],
                message_id=message_id if tenant is not None else "",
                size=size,
                raw_path=raw_path,
                imap_uid=imap_uid,
                received_at=now,
                from_address=parsed.from_address if parsed else "",
                from_name=parsed.from_name if parsed else "",
                subject=parsed.subject if parsed else "",
                to_addresses=parsed.recipients if parsed else [],
                in_reply_to=" ".join(parsed.in_reply_to)[:255] if parsed else "",
                references=" ".join(parsed.references) if parsed else "",
                text=(parsed.text if parsed else "")[:100_000],
                html=(parsed.html if parsed else "")[:200_000],
            )
    except IntegrityError:
        return IngestResult(InboundEmail.objects.get(tenant=tenant, message_id=message_id), duplicate=True)
    logger.info("inbound email %s: %s (%s)", row.pk, status, reason)
    return IngestResult(row)


def _mark_bounced(tenant: Tenant, parsed: ParsedEmail) -> None:
    for message_id in parsed.dsn_message_ids:
        sent = OutboundEmail.objects.filter(channel_message__tenant=tenant, message_id=message_id).first()
        if sent:
            message_status_update(
                channel=Channel.EMAIL,
                provider_id=message_id,
                status="undelivered",
                error_code="bounce",
                error_message="delivery status notification",
                tenant=tenant,
            )


def _customer_for(tenant: Tenant, parsed: ParsedEmail, thread_conversation):
    """``(customer, identity_confirmed)``: the sender's customer, or the thread's when the sender is unknown.

    A From header is trivially forged, so the sender is confirmed only when our receiving MTA vouches for it
    (``parsed.sender_authenticated``: DMARC / aligned DKIM pass, see :mod:`channels_app.email.authres`) —
    which also marks their email identifier verified — and the identifier it matches is verified. Otherwise
    the message is still attached (to the thread's or the address's customer) but flagged: the agent then
    treats the sender as someone else and changes no booking. A brand-new address is its own new customer.
    """
    known = (
        CustomerIdentifier.objects.filter(tenant=tenant, kind=IdentifierKind.EMAIL, value=parsed.from_address)
        .select_related("customer")
        .first()
    )
    if known is not None and parsed.sender_authenticated and not known.verified:
        customer_resolve(tenant=tenant, email=parsed.from_address, verified_kinds=("email",))
        known.refresh_from_db()
    sender = known.customer if known else None
    while sender is not None and sender.merged_into_id:
        sender = sender.merged_into
    vouched = known is not None and known.verified and parsed.sender_authenticated
    if thread_conversation is not None:
        owner = thread_conversation.customer
        return owner, vouched and sender is not None and sender.pk == owner.pk
    if sender is not None:
        return sender, vouched
    verified = ("email",) if parsed.sender_authenticated else ()
    return customer_resolve(
        tenant=tenant, email=parsed.from_address, display_name=parsed.from_name, verified_kinds=verified
    ).customer, True


def _save_attachments(row: InboundEmail, parsed: ParsedEmail) -> list[dict]:
    summary = []
    for index, attachment in enumerate(parsed.attachments):
        size = len(attachment.payload)
        path = ""
        if size <= settings.EMAIL_ATTACHMENT_MAX_BYTES:
            name = get_valid_filename(attachment.filename or f"attachment-{index}") or f"attachment-{index}"
            path = _store(f"email/attachments/{row.tenant_id}/{row.pk}/{index}-{name[:100]}", attachment.payload)
        EmailAttachment.objects.create(
            email=row,
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=size,
            sha256=hashlib.sha256(attachment.payload).hexdigest(),
            storage_path=path,
            inline=attachment.inline,
        )
        summary.append({"filename": attachment.filename, "content_type": attachment.content_type, "size": size})
    return summary


def email_ingest(
    *,
    raw: bytes | Message,
    source: str,
    tenant: Tenant | None = None,
    mailbox: EmailMailbox | None = None,
    envelope_recipients: list[str] | None = None,
    size: int | None = None,
    imap_uid: int | None = None,
    spam: bool = False,
    at: datetime | None = None,
) -> IngestResult:
    """Ingest one RFC 5322 message (see the module docstring); never raises for bad input.

    ``tenant`` / ``mailbox`` are known on the IMAP path; webhooks route by recipients (plus
    ``envelope_recipients``). ``size`` is the full message size when ``raw`` holds only its headers (an
    oversize IMAP message is not downloaded). ``source`` is an :class:`InboundEmail.Source` value.
    """
    data = _bytes(raw)
    size = size if size is not None else len(data)
    if tenant is None and mailbox is not None:
        tenant = mailbox.tenant
    common = {"mailbox": mailbox, "source": source, "data": data, "size": size, "imap_uid": imap_uid}
    if size > settings.EMAIL_INBOUND_MAX_BYTES:
        return _reject(tenant=tenant, reason=f"oversize: {size} bytes > {settings.EMAIL_INBOUND_MAX_BYTES}", **common)
    if not data:
        return _reject(tenant=tenant, reason="malformed: empty message", **common)
    try:
        parsed = parse(data)
    except MalformedEmail as exc:
        return _reject(tenant=tenant, reason=f"malformed: {exc}", **common)
    if tenant is None and (
        ours := OutboundEmail.objects.filter(message_id=parsed.message_id)
        .select_related("channel_message__tenant")
        .first()
    ):
        tenant = ours.channel_message.tenant  # our own message came back (BCC, forward rule, sent folder)
    if tenant is None:
        tenant, found = find_tenant([*parsed.recipients, *(envelope_recipients or [])])
        common["mailbox"] = mailbox = found
        if tenant is None:
            return _reject(tenant=None, reason="no tenant for the recipients", parsed=parsed, **common)
    if existing := InboundEmail.objects.filter(tenant=tenant, message_id=parsed.message_id).first():
        logger.info("duplicate inbound email %s", parsed.message_id)
        return IngestResult(existing, duplicate=True)
    ignored = {"status": InboundEmail.Status.IGNORED, "parsed": parsed, "tenant": tenant}
    if spam:
        return _reject(tenant=tenant, reason="spam (flagged by the ESP)", parsed=parsed, **common)
    own = set(EmailMailbox.objects.filter(tenant=tenant).values_list("address", flat=True))
    if parsed.from_address in own or OutboundEmail.objects.filter(message_id=parsed.message_id).exists():
        return _reject(reason="loop: sent by us", **ignored, **common)
    if parsed.is_automatic:
        _mark_bounced(tenant, parsed)
        return _reject(reason=parsed.auto_reason, **ignored, **common)
    return _accept(tenant=tenant, parsed=parsed, at=at or timezone.now(), **common)


def _accept(*, tenant: Tenant, parsed: ParsedEmail, at: datetime, mailbox, source, data, size, imap_uid):
    from channels_app.email.tasks import email_triage_task

    text = reply_of(parsed)
    try:
        with transaction.atomic():
            match = resolve_thread(tenant=tenant, thread_ids=parsed.thread_ids, recipients=parsed.recipients)
            customer, confirmed = _customer_for(tenant, parsed, match.conversation)
            provider_id = parsed.message_id
            if (
                ChannelMessage.objects.filter(channel=Channel.EMAIL, provider_id=provider_id)
                .exclude(tenant=tenant)
                .exists()
            ):  # the same mail sent to two tenants: keep their rows apart
                provider_id = f"{tenant.pk}/{parsed.message_id}"[:255]
            row = InboundEmail.objects.create(
                tenant=tenant,
                mailbox=mailbox,
                source=source,
                status=InboundEmail.Status.ACCEPTED,
                message_id=parsed.message_id,
                in_reply_to=" ".join(parsed.in_reply_to)[:255],
                references=" ".join(parsed.references),
                from_address=parsed.from_address,
                from_name=parsed.from_name,
                to_addresses=parsed.recipients,
                subject=parsed.subject,
                text=parsed.text[:100_000],
                reply_text=text[:20_000],
                html=parsed.html[:200_000],
                size=size,
                imap_uid=imap_uid,
                identity_confirmed=confirmed,
                received_at=at,
                raw_path=_store(f"email/raw/{tenant.pk}/{at:%Y/%m}/message.eml", data),
                reason=f"thread: {match.matched_by}" if match.matched_by else "",
            )
            attachments = _save_attachments(row, parsed)
            extra = {"subject": parsed.subject[:255]}
            if attachments:
                extra["attachments"] = attachments
            if not confirmed:
                extra["identity"] = "unconfirmed"
                extra["from"] = parsed.from_address
            received = message_receive(
                tenant=tenant,
                customer=customer,
                channel=Channel.EMAIL,
                provider_id=provider_id,
                sender=parsed.from_address,
                recipient=mailbox.address if mailbox else "",
                at=at,
                text=text or ("(attachments only)" if attachments else "(no text)"),
                idle_window=tenant.sms_idle_window,
                turn_extra=extra,
            )
            interaction = received.interaction
            ids = list((interaction.metadata or {}).get("message_ids", []))
            updates = {"message_ids": [*ids, parsed.message_id][-50:], "subject": parsed.subject[:255]}
            interaction_set_metadata(interaction=interaction, updates=updates)
            if not confirmed:
                # The agent treats the session as someone else's: no remembered state, no booking changes.
                interaction_set_workflow(
                    interaction=interaction, updates={"identity": "other", "identity_unconfirmed": parsed.from_address}
                )
            InboundEmail.objects.filter(pk=row.pk).update(interaction=interaction, channel_message=received.message)
            row.interaction, row.channel_message = interaction, received.message
            row_id = row.pk
            # robust: the email is stored either way, so a broker outage must not fail the ESP's request (its
            # retry would only be a duplicate); email_triage_redrive (beat) queues the triage later.
            transaction.on_commit(lambda: email_triage_task.delay(str(row_id)), robust=True)
    except IntegrityError:
        existing = InboundEmail.objects.filter(tenant=tenant, message_id=parsed.message_id).first()
        if existing is None:
            raise
        return IngestResult(existing, duplicate=True)
    logger.info("inbound email %s accepted into interaction %s", row.pk, interaction.pk)
    return IngestResult(row)


def message_id_of(raw: bytes) -> str:
    """The first Message-ID token of raw headers ("" when none) — used before a message is parsed."""
    return next(iter(message_ids(_guess_message_id(raw))), "")
