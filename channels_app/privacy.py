"""channels_app's part of erase and export (see :mod:`identity.privacy`): email bodies, headers, raw messages and
attachment files; outbound email headers; chat verification codes waiting in the cache; texts from the patient's
phones not yet recorded (``InboundSms``: in flight or quarantined)."""

from __future__ import annotations

from django.core.cache import cache
from django.core.files.storage import default_storage

from channels_app.models import EmailAttachment, EmailThread, InboundEmail, InboundSms, OutboundEmail
from identity.models import Customer, IdentifierKind
from identity.privacy import Export, PrivacyHandler


def _inbound(ids):
    return InboundEmail.objects.filter(interaction__customer_id__in=ids)


def _unrecorded_texts(customers: list[Customer]):
    """The ``InboundSms`` rows sent from these customers' phones (their tenant's), any status."""
    rows = InboundSms.objects.none()
    for customer in customers:
        phones = list(customer.identifiers.filter(kind=IdentifierKind.PHONE).values_list("value", flat=True))
        if phones:
            rows = rows | InboundSms.objects.filter(tenant_id=customer.tenant_id, params__From__in=phones)
    return rows


def _delete_file(path: str) -> None:
    if path and default_storage.exists(path):
        default_storage.delete(path)


def erase(customers: list[Customer]) -> dict[str, int]:
    ids = [c.pk for c in customers]
    attachments = EmailAttachment.objects.filter(email__in=_inbound(ids))
    for path in attachments.values_list("storage_path", flat=True):
        _delete_file(path)
    counts = {"attachments": attachments.delete()[0]}
    for path in _inbound(ids).values_list("raw_path", flat=True):
        _delete_file(path)
    counts["inbound_emails"] = _inbound(ids).update(
        from_address="",
        from_name="",
        to_addresses=[],
        subject="",
        text="",
        reply_text="",
        html="",
        references="",
        raw_path="",
        triage={},
    )
    counts["outbound_emails"] = OutboundEmail.objects.filter(channel_message__interaction__customer_id__in=ids).update(
        subject="", reply_to="", references="", ics=""
    )
    counts["email_threads"] = EmailThread.objects.filter(conversation__customer_id__in=ids).update(subject="")
    counts["unrecorded_texts"] = InboundSms.objects.filter(pk__in=_unrecorded_texts(customers).values("pk")).delete()[0]
    for customer in customers:  # pending chat verification codes (they name the phone or email typed)
        for value in customer.identifiers.filter(kind=IdentifierKind.COOKIE).values_list("value", flat=True):
            cache.delete(f"chat-verify:{customer.tenant_id}:{value}")
    return counts


def export(customer: Customer) -> Export:
    emails = _inbound([customer.pk])
    data = {
        "inbound_emails": list(
            emails.values("id", "received_at", "from_address", "from_name", "subject", "text", "to_addresses")
        ),
        "unrecorded_texts": [
            {
                "received_at": r.received_at,
                "status": r.status,
                "from": r.params.get("From"),
                "body": r.params.get("Body"),
            }
            for r in _unrecorded_texts([customer])
        ],
    }
    files = []
    for a in EmailAttachment.objects.filter(email__in=emails).exclude(storage_path=""):
        if default_storage.exists(a.storage_path):
            with default_storage.open(a.storage_path, "rb") as handle:
                files.append((f"{a.email_id}/{a.pk}-{a.filename or 'attachment'}", handle.read()))
    return Export(data=data, files=files)


HANDLER = PrivacyHandler(name="channels_app", erase=erase, export=export)
