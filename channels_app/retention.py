"""channels_app's part of retention (see :mod:`identity.retention`): received emails older than the tenant's
raw-email cutoff lose their subjects and bodies, their original message file and their attachment files; the rows (sender
kept for threading and counts, size, times, status) and the attachment rows (name, type, size, hash) stay. Quarantined
texts never recorded (``InboundSms``) older than the transcripts cutoff are deleted."""

from __future__ import annotations

from functools import partial

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q

from channels_app.models import EmailAttachment, InboundEmail, InboundSms
from identity.models import CustomerIdentifier, IdentifierKind
from identity.retention import Cutoffs, RetentionHandler, in_batches


def _delete_files(paths: list[str]) -> None:
    for path in paths:
        if path and default_storage.exists(path):
            default_storage.delete(path)


def _purge_raw_emails(tenant, cutoff, held) -> dict[str, int]:
    has_content = ~Q(raw_path="") | ~Q(text="") | ~Q(html="") | ~Q(reply_text="") | Q(attachments__storage_path__gt="")
    rows = (
        InboundEmail.objects.filter(tenant=tenant, received_at__lt=cutoff)
        .filter(has_content)
        .exclude(interaction__customer_id__in=held)
        .distinct()
    )
    counts = {"emails": 0, "attachment_files": 0}
    for pks in in_batches(rows):
        with transaction.atomic():
            attachments = EmailAttachment.objects.filter(email_id__in=pks).exclude(storage_path="")
            paths = list(attachments.values_list("storage_path", flat=True))
            raw = list(InboundEmail.objects.filter(pk__in=pks).exclude(raw_path="").values_list("raw_path", flat=True))
            counts["attachment_files"] += attachments.update(storage_path="")
            counts["emails"] += InboundEmail.objects.filter(pk__in=pks).update(
                raw_path="", subject="", text="", html="", reply_text=""
            )
            transaction.on_commit(partial(_delete_files, paths + raw))  # files go once the rows no longer name them
    return counts


def purge(*, tenant, cutoffs: Cutoffs, held) -> dict[str, int]:
    """Retention handler (see :mod:`identity.retention`): empty the bodies, raw files and attachment files of
    ``tenant``'s received emails older than ``cutoffs.raw_emails`` (aware UTC; None: keep forever), and delete its
    quarantined texts older than ``cutoffs.transcripts``, except for the customer ids in ``held`` (legal hold).
    Returns ``{"emails": n, "attachment_files": m, "unrecorded_texts": k}``
    (empty when no period is set; the caller prefixes the app name); files are deleted after commit."""
    counts: dict[str, int] = {}
    if cutoffs.raw_emails is not None:
        counts.update(_purge_raw_emails(tenant, cutoffs.raw_emails, held))
    if cutoffs.transcripts is not None:
        counts["unrecorded_texts"] = _purge_unrecorded_texts(tenant, cutoffs.transcripts, held)
    return counts


def _purge_unrecorded_texts(tenant, cutoff, held) -> int:
    """Delete ``tenant``'s quarantined ``InboundSms`` received before ``cutoff``, except from held patients' phones."""
    held_phones = list(
        CustomerIdentifier.objects.filter(customer_id__in=held, kind=IdentifierKind.PHONE).values_list(
            "value", flat=True
        )
    )
    rows = InboundSms.objects.filter(tenant=tenant, status=InboundSms.Status.QUARANTINED, received_at__lt=cutoff)
    if held_phones:
        rows = rows.exclude(params__From__in=held_phones)
    return rows.delete()[0]


HANDLER = RetentionHandler(name="channels_app", purge=purge)
