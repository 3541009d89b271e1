"""Exactly-once hand-off of an outbound SMS or call to the provider, without a transaction across the HTTP call.

A send is a claim (:mod:`identity.leases`: claim → send → record, redriven), tracked in
:class:`~channels_app.models.OutboundDelivery`; ``attempts`` is the fencing token. :func:`delivery_claim` locks
the pending ``ChannelMessage`` briefly and claims; when the previous attempt's outcome is unknown (``in_flight``
still set: a 5xx or read timeout after the request may have reached Twilio, or a worker killed mid-request) the
claim carries ``reconcile_since`` and the caller looks the message/call up (``find_recent``) first. Then
:func:`delivery_record_sent` / :func:`delivery_record_failed`, or :func:`delivery_release` after a transient
error. :func:`outbound_redrive` (beat) re-queues rows still ``pending`` a minute after they were created.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from channels_app.models import OutboundDelivery
from conversations.models import Channel, ChannelMessage, Direction
from conversations.services import message_mark_failed, message_mark_sent
from identity import leases
from observability.metrics import OUTBOUND_DELIVERY_FAILURES

logger = logging.getLogger(__name__)

REDRIVE_AFTER = timedelta(seconds=60)
REDRIVE_MAX_AGE = timedelta(hours=1)  # older pending rows are left for staff: a late SMS/call does more harm


def _delivery(message: ChannelMessage):
    return OutboundDelivery.objects.filter(message_id=message.pk)


def _lease() -> timedelta:
    """How long a claimed send keeps other workers off (``settings.OUTBOUND_SEND_LEASE_SECONDS``, longer than
    one provider request can take)."""
    return timedelta(seconds=settings.OUTBOUND_SEND_LEASE_SECONDS)


@dataclass
class Claim:
    """A claimed send: the locked-then-released ``message``, ``reconcile_since`` (aware UTC) when an earlier
    attempt may have reached the provider — look for what it created since then before sending — and
    ``attempt``, this claim's number (``OutboundDelivery.attempts`` as it set it: the fencing token)."""

    message: ChannelMessage
    reconcile_since: datetime | None
    attempt: int


def delivery_claim(*, message_id: int, now: datetime | None = None, skip=None) -> Claim | ChannelMessage:
    """Claim one pending outbound message for a send attempt (commits before returning).

    Returns a :class:`Claim`, or the message itself when there is nothing to send: it is no longer pending,
    another worker's attempt holds a live lease, or ``skip(message)`` returned a reason (e.g. opt-out), in
    which case the message is marked ``suppressed`` with that reason.
    """
    now = now or timezone.now()
    with transaction.atomic():
        message = (
            ChannelMessage.objects.select_for_update(of=("self",))
            .select_related("tenant", "interaction")
            .defer("interaction__transcript")  # a send never reads the transcript; it can be long
            .get(pk=message_id)
        )
        if message.status != ChannelMessage.Status.PENDING:
            return message
        if skip is not None and (reason := skip(message)):
            code, text = reason
            message_mark_failed(
                message=message, status=ChannelMessage.Status.SUPPRESSED, error_code=code, error_message=text
            )
            return message
        if _claim_first(message_id=message.pk, now=now):
            return Claim(message=message, reconcile_since=None, attempt=1)
        delivery = OutboundDelivery.objects.get(message=message)  # an earlier attempt's (we hold the message lock)
        if delivery.in_flight and leases.is_live(delivery.lease_until, now):
            logger.info("outbound %s: attempt %s still running elsewhere", message.pk, delivery.attempts)
            return message
        since = delivery.first_claimed_at - leases.SKEW if delivery.in_flight else None
        delivery.attempts += 1
        delivery.claimed_at, delivery.lease_until, delivery.in_flight = now, now + _lease(), True
        delivery.save(update_fields=["attempts", "claimed_at", "lease_until", "in_flight"])
    return Claim(message=message, reconcile_since=since, attempt=delivery.attempts)


def _claim_first(*, message_id: int, now: datetime) -> bool:
    """Insert the delivery row of a message's first attempt (attempt 1, in flight, leased from ``now``) unless one
    exists: one ``INSERT … ON CONFLICT DO NOTHING`` instead of a read then an insert. True when inserted."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OutboundDelivery._meta.db_table}"
            " (message_id, attempts, first_claimed_at, claimed_at, lease_until, in_flight)"
            " VALUES (%s, 1, %s, %s, %s, true) ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
            [message_id, now, now, now + _lease()],
        )
        return cursor.fetchone() is not None


def known_provider_ids(*, message: ChannelMessage, since: datetime) -> set[str]:
    """Provider ids (SIDs) we already hold for this channel and recipient since ``since``: a reconciliation
    must never adopt one of them (``provider_id_once`` would reject it and the row would stay pending)."""
    return set(
        ChannelMessage.objects.filter(
            tenant_id=message.tenant_id,
            channel=message.channel,
            recipient=message.recipient,
            created_at__gte=since,
        )
        .exclude(provider_id="")
        .values_list("provider_id", flat=True)
    )


def delivery_record_sent(*, message: ChannelMessage, provider_id: str, status: str) -> bool:
    """Store the provider id and first status of a claimed message; clear ``in_flight``. False (nothing
    written) if the row was meanwhile sent or failed by someone else.

    Not fenced by attempt, on purpose: a provider id proves the message went out, whichever attempt sent it,
    so a superseded attempt's late success is recorded if no one recorded first (fencing would drop a real
    send). The guard is the status check: only a ``pending`` row without a provider id is written.
    """
    return message_mark_sent(  # the check, the write, its mirror and in_flight cleared: one statement
        message=message,
        provider_id=provider_id,
        status=status,
        only_unsent=True,
        also=f"UPDATE {OutboundDelivery._meta.db_table} SET in_flight = false WHERE message_id IN (SELECT id FROM m)",
    )


def delivery_record_failed(*, claim: Claim, error_code: str, error_message: str = "") -> bool:
    """Mark the message of ``claim`` ``failed`` (a permanent provider error) with only its code; clear
    ``in_flight``. Returns True if written.

    Fenced by the claim's ``attempt`` (:mod:`identity.leases`), under the message's row lock (the one
    :func:`delivery_claim` takes), and only while the message is ``pending``. ``claim.message`` is refreshed.

    The provider's message text is not stored: Twilio's embeds the phone number ("The 'To' number +1… is not
    valid"), SMTP's the address, and error fields end up in logs and exports. ``error_message`` defaults to
    ``"provider error <code>"``; callers pass only codes and class names in it.
    """
    message = claim.message
    with transaction.atomic():
        locked = ChannelMessage.objects.select_for_update().get(pk=message.pk)
        attempts = OutboundDelivery.objects.filter(message_id=message.pk).values_list("attempts", flat=True).first()
        if attempts != claim.attempt:
            logger.warning(
                "outbound %s: attempt %s was superseded by attempt %s; its permanent error %s is not recorded",
                message.pk,
                claim.attempt,
                attempts,
                error_code or "?",
            )
            written = False
        elif locked.status != ChannelMessage.Status.PENDING:
            written = False
        else:
            message_mark_failed(
                message=locked,
                status=ChannelMessage.Status.FAILED,
                error_code=error_code,
                error_message=error_message or f"provider error {error_code}".strip(),
            )
            leases.record(_delivery(message), claim.attempt, token_field="attempts", in_flight=False)
            written = True
    if written:
        OUTBOUND_DELIVERY_FAILURES.labels(channel=message.channel).inc()
    message.refresh_from_db(fields=["status", "error_code", "error_message", "status_updated_at"])
    return written


def delivery_release(*, claim: Claim, request_sent: bool) -> bool:
    """End the attempt ``claim`` after a transient error, so the task's retry may claim at once.

    ``request_sent`` False (connect refused/timeout, 429: it certainly never reached the provider) clears
    ``in_flight`` — the retry just sends. True (a 5xx, a read timeout) keeps it — the retry reconciles first.
    Fenced by the claim's ``attempt`` (:mod:`identity.leases`): True when released, False when superseded.
    """
    released = leases.record(
        _delivery(claim.message),
        claim.attempt,
        token_field="attempts",
        in_flight=request_sent,
        lease_until=timezone.now(),
    )
    if not released:
        logger.warning(
            "outbound %s: attempt %s was superseded by a newer claim; not released", claim.message.pk, claim.attempt
        )
    return bool(released)


def outbound_redrive(*, now: datetime | None = None) -> dict[str, int]:
    """Re-queue outbound SMS, callback calls and emails still ``pending`` ``REDRIVE_AFTER`` after creation
    (and younger than ``REDRIVE_MAX_AGE``) whose last attempt is not running. Returns counts per channel.

    Safe to run often: every queued task claims the row first, so a message is still sent at most once.
    """
    from channels_app.email.tasks import email_deliver_task
    from channels_app.tasks import sms_deliver_task
    from channels_app.voice.tasks import voice_place_callback

    now = now or timezone.now()
    pending = leases.due(  # no live claim (a pending row's lease ends when its attempt is released)
        ChannelMessage.objects.filter(
            direction=Direction.OUTBOUND,
            status=ChannelMessage.Status.PENDING,
            channel__in=(Channel.SMS, Channel.VOICE, Channel.EMAIL),
            created_at__lt=now - REDRIVE_AFTER,
            created_at__gte=now - REDRIVE_MAX_AGE,
        ),
        now,
        field="delivery__lease_until",
    )
    rows = pending.select_related("interaction").order_by("created_at")[:500]
    counts = {"sms": 0, "voice": 0, "email": 0}
    for message in rows:
        if message.channel == Channel.SMS:
            sms_deliver_task.apply_async((message.pk,), expires=REDRIVE_AFTER.total_seconds())
        elif message.channel == Channel.EMAIL:
            email_deliver_task.apply_async((message.pk,), expires=REDRIVE_AFTER.total_seconds())
        elif request_id := (message.interaction.metadata or {}).get("callback_request_id"):
            voice_place_callback.apply_async((request_id,), expires=REDRIVE_AFTER.total_seconds())
        else:
            continue
        counts[message.channel] += 1
    if any(counts.values()):
        logger.warning("re-queued stuck outbound messages: %s", counts)
    return counts
