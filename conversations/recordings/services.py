"""Requesting recordings' deletion at the voice provider (the provider call itself lives in channels_app).

:func:`recording_sids` finds the recording SIDs a ``call_logs`` row's metadata names (call rows:
``metadata["recording"]["sid"]``; voicemail rows: ``metadata["recording_sid"]``; either may only carry the
recording URL ``…/Recordings/RE….``). :func:`recording_deletions_request` records them in
:class:`~conversations.recordings.models.RecordingDeletion` inside the caller's transaction and, on commit, sends
``recording_deletion_requested(deletion_ids)``; channels_app queues one provider DELETE per id from it, and its
beat sweep re-queues rows still pending (a lost task, a broker outage, retries used up).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import django.dispatch
from django.db import transaction
from django.utils import timezone

from conversations.recordings.models import RecordingDeletion

#: Sent on commit with ``deletion_ids`` (RecordingDeletion primary keys, ints) newly requested.
recording_deletion_requested = django.dispatch.Signal()

_SID = re.compile(r"^RE[0-9a-zA-Z]{1,62}$")
_SID_IN_URL = re.compile(r"/Recordings/(RE[0-9a-zA-Z]{1,62})(?:\.\w+)?/?$")


def _sid(value) -> str | None:
    if not isinstance(value, str):
        return None
    if _SID.match(value):
        return value
    found = _SID_IN_URL.search(value)
    return found.group(1) if found else None


def recording_sids(metadata: dict | None) -> set[str]:
    """Recording SIDs (``RE…``; Twilio: ``RE`` + 32 hex) named by one ``call_logs`` row's ``metadata``; empty when none."""
    metadata = metadata or {}
    found = metadata.get("recording")
    recording: dict = found if isinstance(found, dict) else {}
    candidates = [
        recording.get("sid"),
        recording.get("url"),
        metadata.get("recording_sid"),
        metadata.get("recording_url"),
    ]
    return {sid for sid in map(_sid, candidates) if sid}


def recording_deletions_request(*, tenant_id, sids: Iterable[str], reason: str) -> int:
    """Record that ``tenant_id``'s recordings ``sids`` must be deleted at the provider (``reason``: a
    :class:`RecordingDeletion.Reason`); returns how many of them are still to delete. Idempotent (unique on tenant and SID).
    Must run inside the transaction that unlinks them; the provider calls are queued on its commit."""
    sids = sorted(set(sids))
    if not sids:
        return 0
    now = timezone.now()
    RecordingDeletion.objects.bulk_create(
        [RecordingDeletion(tenant_id=tenant_id, recording_sid=sid, reason=reason, requested_at=now) for sid in sids],
        ignore_conflicts=True,
    )
    pending = list(
        RecordingDeletion.objects.filter(
            tenant_id=tenant_id, recording_sid__in=sids, deleted_at__isnull=True
        ).values_list("pk", flat=True)
    )
    if pending:
        transaction.on_commit(
            lambda: recording_deletion_requested.send(sender=RecordingDeletion, deletion_ids=pending), robust=True
        )
    return len(pending)
