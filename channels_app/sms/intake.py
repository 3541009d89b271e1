"""The inbound SMS webhook's fast path: accept in the request, record on a worker.

Twilio does not retry a failed messaging webhook by default, so under a burst of texts the request must answer
fast and never lose what it answered 200 to. :func:`sms_accept` (the request) checks the parameters, lets an
on-call responder's "ACK" be claimed at once, decides the lane with the local triage rules (no network, ~2 ms),
stores the message in :class:`~channels_app.models.InboundSms` (one ``INSERT … ON CONFLICT DO NOTHING``: a
Twilio retry of the same MessageSid adds nothing) and queues :func:`sms_intake`. The intake — the sender resolved,
the message recorded as a turn, STOP/START, the reply queued, the escalation screening on commit — is
:func:`channels_app.sms.services.sms_record`, run on a worker in the same transaction that deletes the row, so a
worker that dies mid-intake leaves the row to be run again, never a half-written message.

Lanes: a message the rules call an emergency or urgent runs its intake (and its reply) on the ``escalation``
queue — its own unniced workers (Procfile) — so a flood of ordinary texts waiting on the niced reply worker never
delays a page or a safety reply; everything else runs on the default queue. :func:`sms_intake_redrive` (beat, in
``inbound_redrive``) re-queues rows whose task was lost or failed (not those waiting in a backlog); after
:data:`MAX_ATTEMPTS` failures, or an hour unrecorded, a row is ``quarantined`` and listed in admin for staff to read
and answer. ``SMS_INTAKE_INLINE`` (settings) records in the request instead
(single-process setups; the test suite).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from channels_app.models import InboundSms
from channels_app.sms.services import Received, sms_check, sms_claimed, sms_record
from conversations.triage import assess_rules
from identity.models import Tenant

logger = logging.getLogger(__name__)

ESCALATION_LANE, DEFAULT_LANE = "escalation", "celery"
URGENT = 4  # triage urgency (1–5) from which the intake takes the escalation lane
MAX_ATTEMPTS = 5  # failed intakes (exceptions) before a text is quarantined
REDRIVE_AFTER = timedelta(seconds=30)  # a text whose task was never queued (or failed) is queued again after this
REQUEUE_AFTER = timedelta(minutes=10)  # a queued task not done by then is taken as lost (a backlog drains sooner)
STALE_AFTER = timedelta(hours=1)  # not recorded by then: quarantined for staff (a late automatic answer harms)
REDRIVE_BATCH = 500


def lane_for(*, tenant: Tenant, body: str) -> str:
    """The queue for this message's intake: :data:`ESCALATION_LANE` when the local triage rules (with the
    tenant's own phrases) rate it urgent or an emergency, else :data:`DEFAULT_LANE`."""
    result = assess_rules(body, phrases=tenant.emergency_phrases or [])
    return ESCALATION_LANE if result.urgency >= URGENT else DEFAULT_LANE


def sms_accept(*, tenant: Tenant, params: Mapping[str, str]) -> InboundSms | None:
    """The webhook's work for one inbound SMS: check it (:class:`~channels_app.sms.services.InvalidSms` for a
    malformed request), let a handler claim it (then None), store it once per MessageSid and queue its intake on
    its lane after commit. Returns the stored row, or None when claimed or already stored (a Twilio retry).
    A broker outage never fails the request: the row is stored and :func:`sms_intake_redrive` queues it."""
    params, sid, _phone = sms_check(tenant=tenant, params=params)
    if sms_claimed(tenant=tenant, params=params):
        return None
    lane = lane_for(tenant=tenant, body=params.get("Body", ""))
    row = InboundSms(tenant=tenant, message_sid=sid, params=params, lane=lane, received_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {InboundSms._meta.db_table} "
            "(tenant_id, message_sid, params, lane, status, attempts, last_error, received_at, queued_at) "
            "VALUES (%s, %s, %s::jsonb, %s, %s, 0, '', %s, %s) "
            "ON CONFLICT (tenant_id, message_sid) DO NOTHING RETURNING id",
            [tenant.pk, sid, json.dumps(params), lane, InboundSms.Status.PENDING, row.received_at, row.received_at],
        )
        inserted = cursor.fetchone()
    if inserted is None:
        logger.info("inbound SMS %s already accepted", sid)
        return None
    row.pk = inserted[0]
    transaction.on_commit(functools.partial(_queue_and_mark, row.pk, lane))
    return row


def _queue(inbound_id: int, lane: str) -> None:
    from channels_app.tasks import sms_intake as sms_intake_task

    sms_intake_task.apply_async((inbound_id,), queue=lane)


def _queue_and_mark(inbound_id: int, lane: str, *, stamp: bool = False) -> bool:
    """Queue the intake and return True; with ``stamp`` record ``queued_at`` (the accept's INSERT already has).
    If the broker is down, empty ``queued_at`` so the redrive queues it as soon as it can, and return False —
    never fail the webhook for it (Twilio would not retry)."""
    try:
        _queue(inbound_id, lane)
    except Exception:
        logger.exception("could not queue inbound SMS intake %s; the redrive will", inbound_id)
        InboundSms.objects.filter(pk=inbound_id).update(queued_at=None)
        return False
    if stamp:
        InboundSms.objects.filter(pk=inbound_id).update(queued_at=timezone.now())
    return True


def sms_intake(*, inbound_id: int) -> Received | None:
    """Record the accepted message ``inbound_id`` (:func:`~channels_app.sms.services.sms_record`) and delete its
    row, in one transaction; None when another worker has it or it is done. The row is locked ``SKIP LOCKED``,
    so a redelivered task never records twice. On an error the transaction is rolled back, the attempt and the
    exception's type are counted, and at :data:`MAX_ATTEMPTS` the row is quarantined (the error is not raised:
    :func:`sms_intake_redrive` is the retry)."""
    try:
        with transaction.atomic():
            row = (
                InboundSms.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("tenant")
                .filter(pk=inbound_id, status=InboundSms.Status.PENDING)
                .first()
            )
            if row is None:
                return None
            params, sid, phone = sms_check(tenant=row.tenant, params=row.params)
            reply_queue = ESCALATION_LANE if row.lane == ESCALATION_LANE else None
            received = sms_record(tenant=row.tenant, params=params, sid=sid, phone=phone, reply_queue=reply_queue)
            row.delete()
            return received
    except Exception as exc:
        logger.exception("inbound SMS intake %s failed", inbound_id)
        _record_failure(inbound_id, type(exc).__name__)
        return None


def _record_failure(inbound_id: int, error: str) -> None:
    """Count a failed attempt and leave the row to the redrive (``queued_at`` emptied: it is queued again after
    :data:`REDRIVE_AFTER`); quarantine it at :data:`MAX_ATTEMPTS`."""
    from django.db.models import Case, F, Value, When

    InboundSms.objects.filter(pk=inbound_id, status=InboundSms.Status.PENDING).update(
        attempts=F("attempts") + 1,
        last_error=error[:200],
        queued_at=None,
        status=Case(
            When(attempts__gte=MAX_ATTEMPTS - 1, then=Value(InboundSms.Status.QUARANTINED)),
            default=Value(InboundSms.Status.PENDING),
        ),
    )


def sms_intake_redrive(*, now: datetime | None = None) -> int:
    """Queue again the accepted texts whose intake is not on its way: never queued or failed (``queued_at``
    empty) :data:`REDRIVE_AFTER` after they arrived, or queued more than :data:`REQUEUE_AFTER` ago (the task lost
    with a worker); oldest first, at most :data:`REDRIVE_BATCH`. A text still pending :data:`STALE_AFTER` after it
    arrived is quarantined instead (listed in admin). A text waiting in a backlog is left alone: its task is
    queued. Returns how many were queued. Safe to run often: the intake locks its row, so a duplicate does
    nothing."""
    from django.db.models import Q

    now = now or timezone.now()
    pending = InboundSms.objects.filter(status=InboundSms.Status.PENDING)
    stale = pending.filter(received_at__lt=now - STALE_AFTER).update(
        status=InboundSms.Status.QUARANTINED, last_error="not recorded within an hour"
    )
    if stale:
        logger.error("%s inbound SMS not recorded within an hour: quarantined for staff", stale)
    due = pending.filter(
        Q(queued_at__isnull=True, received_at__lt=now - REDRIVE_AFTER) | Q(queued_at__lt=now - REQUEUE_AFTER)
    )
    rows = list(due.order_by("received_at").values_list("pk", "lane")[:REDRIVE_BATCH])
    queued = 0
    for pk, lane in rows:
        if not _queue_and_mark(pk, lane, stamp=True):
            break  # the broker is down: the next run tries again
        queued += 1
    return queued


def sms_intake_retry(*, ids: list[int]) -> int:
    """Staff's "record again" (admin): put these rows back to ``pending`` with their attempts reset and queue
    their intake on their lane. ``received_at`` restarts now, so :data:`STALE_AFTER` gives the new attempt its
    hour. Returns how many were queued (the caller scopes ``ids`` to its tenant)."""
    rows = list(InboundSms.objects.filter(pk__in=ids).values_list("pk", "lane"))
    InboundSms.objects.filter(pk__in=[pk for pk, _ in rows]).update(
        status=InboundSms.Status.PENDING, attempts=0, last_error="", received_at=timezone.now(), queued_at=None
    )
    for pk, lane in rows:
        transaction.on_commit(functools.partial(_queue_and_mark, pk, lane, stamp=True))
    return len(rows)
