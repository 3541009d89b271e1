"""conversations' part of retention (see :mod:`identity.retention`): transcripts and message texts of sessions
that ended before the tenant's transcript cutoff, and links to call and voicemail recordings older than the
recording cutoff (the audio itself is deleted at the provider: see :mod:`conversations.recordings`). Rows stay (times, channel, scores), so dashboards keep their numbers."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from conversations.models import Channel, ChannelMessage, Interaction
from conversations.recordings.models import RecordingDeletion
from conversations.recordings.services import recording_deletions_request, recording_sids
from identity.retention import Cutoffs, RetentionHandler, in_batches

_RECORDED = (Channel.VOICE, Channel.VOICEMAIL)


def _purge_transcripts(tenant, cutoff, held) -> dict[str, int]:
    rows = Interaction.objects.filter(tenant=tenant, ended_at__lt=cutoff).exclude(customer_id__in=held)
    with_text = rows.filter(~Q(transcript=[]) | Q(messages__body__gt=""))
    counts = {"transcripts": 0, "message_texts": 0}
    for pks in in_batches(with_text.distinct()):
        with transaction.atomic():
            counts["transcripts"] += (
                Interaction.objects.filter(pk__in=pks)
                .exclude(transcript=[])
                .update(transcript=[], updated_at=timezone.now())  # the warehouse's next increment carries it
            )
            counts["message_texts"] += (
                ChannelMessage.objects.filter(interaction_id__in=pks).exclude(body="").update(body="")
            )
    return counts


def _recording_without_links(recording: dict, now) -> dict:
    kept = {k: v for k, v in recording.items() if k == "duration_seconds" and isinstance(v, int | float)}
    return {**kept, "status": "purged", "purged_at": now.isoformat()}


def _purge_recordings(tenant, cutoff, held) -> int:
    linked = Q(metadata__recording__has_key="url") | Q(metadata__has_key="recording_url")
    rows = (
        Interaction.objects.filter(tenant=tenant, channel__in=_RECORDED, started_at__lt=cutoff)
        .filter(linked)
        .exclude(customer_id__in=held)
    )
    now, done = timezone.now(), 0
    for pks in in_batches(rows):
        with transaction.atomic():
            sids: set[str] = set()
            for row in Interaction.objects.select_for_update().filter(pk__in=pks).only("pk", "metadata"):
                sids |= recording_sids(row.metadata)
                metadata = dict(row.metadata or {})
                if isinstance(metadata.get("recording"), dict):
                    metadata["recording"] = _recording_without_links(metadata["recording"], now)
                metadata.pop("recording_url", None)
                done += Interaction.objects.filter(pk=row.pk).update(metadata=metadata, updated_at=now)
            # the provider keeps the audio until told: channels_app deletes it there once this commits
            recording_deletions_request(tenant_id=tenant.pk, sids=sids, reason=RecordingDeletion.Reason.RETENTION)
    return done


def purge(*, tenant, cutoffs: Cutoffs, held) -> dict[str, int]:
    """Retention handler (see :mod:`identity.retention`): empty the transcripts and message texts of ``tenant``'s
    interactions that ended before ``cutoffs.transcripts`` and unlink recordings older than ``cutoffs.recordings``
    (aware UTC; None: keep forever), except for the customer ids in ``held`` (legal hold). Rows and their numbers
    stay. Returns ``{"transcripts", "message_texts", "recordings"}`` counts (those whose period is set)."""
    counts: dict[str, int] = {}
    if cutoffs.transcripts is not None:
        counts.update(_purge_transcripts(tenant, cutoffs.transcripts, held))
    if cutoffs.recordings is not None:
        counts["recordings"] = _purge_recordings(tenant, cutoffs.recordings, held)
    return counts


HANDLER = RetentionHandler(name="conversations", purge=purge)
