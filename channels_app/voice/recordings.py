"""Deleting call and voicemail recordings at the voice provider once an erase or a retention purge unlinked them.

conversations records each in :class:`~conversations.recordings.models.RecordingDeletion` (its transaction)
and, on commit, sends ``recording_deletion_requested``; :func:`on_recording_deletion_requested` queues one
``recording_delete`` task per row. :func:`recording_delete_run` asks the tenant's provider (``VOICE_BACKEND``;
Twilio: ``DELETE …/Recordings/{Sid}.json`` with the tenant's account SID and auth token) and marks the row
deleted — also when the provider answers 404 (already gone). Transient errors (429, 5xx, timeouts) are raised
for the task's retries; a permanent one (401: wrong credentials) is noted on the row. Either way the row stays
pending and :func:`recording_deletions_redrive` (beat) queues it again after ``RECORDING_DELETE_REDRIVE_AFTER``,
up to ``RECORDING_DELETE_MAX_ATTEMPTS`` attempts. The provider is never called under a row lock.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone

from conversations.recordings.models import RecordingDeletion
from providers import ProviderError
from providers.voice import get_voice_backend

logger = logging.getLogger(__name__)

#: a row still pending this long after its last attempt (or its request) is queued again by the sweep
RECORDING_DELETE_REDRIVE_AFTER = timedelta(minutes=15)
#: attempts after which the sweep stops (the row stays pending with its last error, for staff to see)
RECORDING_DELETE_MAX_ATTEMPTS = 20
#: rows queued per sweep run
RECORDING_DELETE_SWEEP_BATCH = 200


def recording_delete_run(*, deletion_id: int) -> bool:
    """Delete one recording at the provider; True once it is gone (now or before), False when there is nothing
    to do (unknown id). Raises ProviderTransientError (retry) and ProviderPermanentError (noted on the row)."""
    deletion = RecordingDeletion.objects.select_related("tenant").filter(pk=deletion_id).first()
    if deletion is None:
        return False
    if deletion.deleted_at is not None:
        return True
    now = timezone.now()
    RecordingDeletion.objects.filter(pk=deletion.pk).update(attempts=F("attempts") + 1, last_attempt_at=now)
    try:
        deleted_here = get_voice_backend().delete_recording(tenant=deletion.tenant, sid=deletion.recording_sid)
    except ProviderError as exc:
        RecordingDeletion.objects.filter(pk=deletion.pk).update(
            last_error=f"{exc.status or ''} {exc.code}".strip()[:300]
        )
        raise
    RecordingDeletion.objects.filter(pk=deletion.pk, deleted_at__isnull=True).update(
        deleted_at=timezone.now(), last_error=""
    )
    logger.info(
        "recording %s deleted at the provider (%s)", deletion.recording_sid, "now" if deleted_here else "was gone"
    )
    return True


def on_recording_deletion_requested(sender, deletion_ids, **kwargs) -> None:
    """Receiver of ``recording_deletion_requested`` (on commit): queue one delete per row. A broker outage is
    logged; the sweep queues those rows later."""
    from channels_app.voice.tasks import recording_delete

    for deletion_id in deletion_ids:
        try:
            recording_delete.delay(deletion_id)
        except Exception:
            logger.exception("could not queue the deletion of recording row %s (the sweep will)", deletion_id)


def recording_deletions_redrive(*, now=None) -> int:
    """Queue again the pending rows whose last attempt (or request) is older than the redrive delay and that
    have attempts left; returns how many were queued."""
    from channels_app.voice.tasks import recording_delete

    now = now or timezone.now()
    stale = now - RECORDING_DELETE_REDRIVE_AFTER
    due = (
        RecordingDeletion.objects.filter(deleted_at__isnull=True, attempts__lt=RECORDING_DELETE_MAX_ATTEMPTS)
        .filter(Q(last_attempt_at__lt=stale) | Q(last_attempt_at__isnull=True, requested_at__lt=stale))
        .order_by("requested_at")
        .values_list("pk", flat=True)[:RECORDING_DELETE_SWEEP_BATCH]
    )
    queued = 0
    for deletion_id in due:
        recording_delete.delay(deletion_id)
        queued += 1
    return queued
