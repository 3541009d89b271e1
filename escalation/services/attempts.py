"""Sending one notification attempt through the SMS or voice provider, exactly once, and tracking its status.

Lifecycle: ``pending`` → (claim) ``sending`` → ``sent`` → ``delivered`` | ``failed``; ``cancelled`` when the
incident was acknowledged before the send. A claim is a short transaction holding the incident row and then
the attempt row (always in that order, like the ladder and the acknowledgement, so they serialise), so an
acknowledgement either happens before the claim (the attempt is cancelled) or after it (the send goes out).

Provider faults (``providers``): permanent errors (21211 invalid number, 21610 opted out, 21614
not SMS-capable, other 4xx) fail the attempt at once and let the ladder fall through; transient ones (429,
5xx, timeouts) are retried with exponential backoff up to :data:`MAX_TRIES`. When a request may have reached
Twilio (5xx, read timeout, a worker killed mid-request) the attempt is marked ``ambiguous`` and the next try
first looks the message or call up (``fetch`` by SID, else ``find_recent``) and only sends if nothing is found.

Page calls are placed with ``Url`` = our prompt webhook (:func:`~escalation.services.messages.call_url`) and
``MachineDetection=Enable`` (https://www.twilio.com/docs/voice/answering-machine-detection): Twilio requests the
prompt once it knows who answered (``AnsweredBy`` human / machine_start / fax / unknown). A machine or fax
gets a bare hang-up and fails the attempt (:func:`attempt_answered_by_machine`), so the ladder falls through
as for an unanswered call instead of waiting out the step with nobody reached; ``unknown`` is a person. A
verdict that comes before the call's SID did is held by its CallSid and fails the attempt only if that call is
the one :func:`_mark_sent` records (an earlier try presumed dead may have a call of its own still live).

Once the incident is acknowledged, the other page calls still ringing or talking are hung up by
:mod:`~escalation.services.hangups` (queued by the acknowledgement, and by :func:`_mark_sent` for a call whose
SID only came back after it).
"""

from __future__ import annotations

import logging
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from conversations.twilio_statuses import CALL_TERMINAL, DELIVERED, NOT_DELIVERED
from escalation.models import EscalationSettings, Incident, NotificationAttempt
from escalation.services.incidents import incident_fall_through
from escalation.services.messages import attempt_sms_body, call_url
from escalation.services.timeline import attempt_mirror_update
from identity import leases
from observability.metrics import OUTBOUND_DELIVERY_FAILURES
from providers import ProviderPermanentError, ProviderTransientError
from providers.sms import get_sms_backend
from providers.voice import get_voice_backend

logger = logging.getLogger(__name__)

MAX_TRIES = 5
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 8.0
STATUS_CALLBACK_NAME = "escalation-status"
Status = NotificationAttempt.Status

# Forward-only rank of Twilio statuses (messages: https://www.twilio.com/docs/messaging/api/message-resource
# #message-status-values; calls: https://www.twilio.com/docs/voice/api/call-resource#call-status-values).
PROVIDER_RANK = {
    "": 0,
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "initiated": 2,
    "sending": 2,
    "ringing": 3,
    "sent": 3,
    "in-progress": 4,
    "answered": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "read": 6,
    "completed": 6,
    "busy": 6,
    "no-answer": 6,
    "canceled": 6,
}
FAILED_PROVIDER_STATUSES = NOT_DELIVERED
#: Twilio call statuses after which the call rings nobody and talks to nobody.
FINAL_CALL_STATUSES = CALL_TERMINAL
DELIVERED_PROVIDER_STATUSES = DELIVERED
#: ``MachineDetection`` of page calls: ``Enable`` answers ``AnsweredBy`` as soon as the callee is identified
#: (``DetectMessageEnd`` would wait for the greeting's end, only useful to leave a voicemail, which we never do).
MACHINE_DETECTION = "Enable"
#: ``error_code`` of a call answered by an answering machine or a fax (Twilio has no error code for it).
ANSWERING_MACHINE = "answering-machine"


def _status_from_provider(status: str, provider_status: str) -> str:
    """Our status after the provider reported ``provider_status`` (forward only: sent → delivered | failed)."""
    if status == Status.SENT and provider_status in DELIVERED_PROVIDER_STATUSES:
        return Status.DELIVERED
    if status == Status.SENT and provider_status in FAILED_PROVIDER_STATUSES:
        return Status.FAILED
    return status


def stale_after() -> timedelta:
    """How long a claim may stay ``sending`` before it is presumed dead: the lease of one provider request
    (:func:`identity.leases.request_lease` of ``TWILIO_TIMEOUT_SECONDS``; 30 s by default). Were a live try
    still presumed dead, its SID is kept in ``extra_sids``."""
    return leases.request_lease(settings.TWILIO_TIMEOUT_SECONDS)


def backoff_seconds(tries: int) -> float:
    """Delay before try ``tries + 1``: 1, 2, 4, 8, 8… seconds (±20 % jitter)."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, tries - 1)) * random.uniform(0.8, 1.2)


@dataclass
class Outbound:
    """One provider request, fully prepared while its attempt was claimed, so sending needs no database.

    ``attempt`` is claimed (``sending``, ``tries`` counted) with ``tenant`` loaded; ``content`` is the SMS
    body or the absolute URL the call fetches its TwiML from once answered; ``callback`` the absolute
    status-callback URL.
    """

    attempt: NotificationAttempt
    content: str
    callback: str
    ring_timeout: int = 30


def outbound_prepare(*, attempt: NotificationAttempt, config: EscalationSettings | None) -> Outbound:
    """Render what a claimed attempt sends (the SMS needs its ack token to exist)."""
    content = attempt_sms_body(attempt, config) if attempt.channel == "sms" else call_url(attempt.pk)
    return Outbound(
        attempt=attempt,
        content=content,
        callback=settings.PUBLIC_BASE_URL + _status_path(attempt.pk),
        ring_timeout=config.ring_timeout_seconds if config else 30,
    )


_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()
#: Sender threads per worker process (started lazily). Enough for a step paging a few people on two
#: channels at once; a bigger team step queues the rest behind them.
POOL_THREADS = 12


def _sender_pool() -> ThreadPoolExecutor:
    """This process's sender threads, created lazily (after a prefork worker forked) and kept. Each thread
    closes its database connections after every page (``connections.close_all()``), so idle threads hold no
    connection whatever ``CONN_MAX_AGE`` says (the worker's main thread keeps its own)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="page"), os.getpid()
        return _pool


def attempts_dispatch(*, outbound: list[Outbound]) -> None:
    """Send several prepared attempts at the same moment, one thread each, and wait for all: the voice and SMS
    requests never wait on each other nor on the database (each thread records its result afterwards)."""
    if len(outbound) == 1:
        attempt_deliver(outbound=outbound[0])
        return

    def run(item: Outbound) -> None:
        try:
            attempt_deliver(outbound=item)
        except Exception:
            logger.exception("sending attempt %s failed unexpectedly", item.attempt.pk)
        finally:
            connections.close_all()  # this thread's own connections; a kept one would idle per thread

    futures = [_sender_pool().submit(run, item) for item in outbound]
    for future in futures:
        future.result()


def _claim(attempt_id: int, now: datetime) -> tuple[NotificationAttempt, bool] | None:
    """Move the attempt to ``sending`` for this try; return it and whether a (re)send is allowed."""
    with transaction.atomic():
        incident_id = NotificationAttempt.objects.filter(pk=attempt_id).values_list("incident_id", flat=True).first()
        if incident_id is None:
            return None
        incident = Incident.objects.select_for_update().get(pk=incident_id)
        attempt = (
            NotificationAttempt.objects.select_for_update(of=("self",))
            .select_related("tenant", "responder")
            .get(pk=attempt_id)
        )
        paging = incident.status == Incident.Status.TRIGGERED
        if attempt.status == Status.PENDING:
            if not paging and not attempt.ambiguous:  # an ambiguous one is looked up first, to record the truth
                attempt.status, attempt.status_updated_at = Status.CANCELLED, now
                attempt.save(update_fields=["status", "status_updated_at"])
                return None
            if paging and attempt.next_try_at and attempt.next_try_at > now:
                return None  # a retry is scheduled later; this run is early or a duplicate
        elif attempt.status == Status.SENDING:
            if leases.live_since(attempt.claimed_at, stale_after(), now):
                return None  # another worker holds a live claim
            attempt.ambiguous = True  # its worker died mid-request: look before sending again
        else:
            return None
        attempt.status, attempt.claimed_at, attempt.tries = Status.SENDING, now, attempt.tries + 1
        attempt.next_try_at = None
        attempt.save(update_fields=["status", "claimed_at", "tries", "next_try_at", "ambiguous"])
    attempt.incident = incident
    return attempt, paging


def attempt_send(*, attempt_id: int, now: datetime | None = None) -> NotificationAttempt | None:
    """Send one attempt if it is due and unclaimed; reconcile first if an earlier try may have gone out.

    Returns the attempt after this try, or None when there was nothing to do (already sent, claimed by a live
    worker, cancelled, not yet due). Never raises provider errors: they become a retry or a failure.
    """
    now = now or timezone.now()
    claimed = _claim(attempt_id, now)
    if claimed is None:
        return None
    attempt, paging = claimed
    config = EscalationSettings.objects.filter(tenant_id=attempt.tenant_id).first()
    if attempt.ambiguous:
        try:
            found = _reconcile(attempt, config)
        except ProviderTransientError as exc:
            return _retry_later(attempt, exc)
        if found is not None:
            logger.info("attempt %s reconciled: provider already has %s", attempt.pk, found[0])
            return _mark_sent(attempt, sid=found[0], provider_status=found[1])
        if not paging:  # acknowledged meanwhile and nothing went out: never send now
            return _finish(attempt, Status.CANCELLED)
    return attempt_deliver(outbound=outbound_prepare(attempt=attempt, config=config))


def attempt_deliver(*, outbound: Outbound) -> NotificationAttempt:
    """Make the provider request of a claimed attempt and record the outcome: sent (SID), a scheduled retry
    (transient error), or failed (permanent error, or out of tries) with the ladder falling through."""
    attempt = outbound.attempt
    try:
        sid, provider_status = _send(outbound)
    except ProviderPermanentError as exc:
        logger.warning("attempt %s failed permanently: %s %s", attempt.pk, exc.code, exc)
        _finish(attempt, Status.FAILED, code=exc.code or str(exc.status or ""), message=str(exc))
        incident_fall_through(incident_id=attempt.incident_id, step_index=attempt.step_index, repeat=attempt.repeat)
        return attempt
    except ProviderTransientError as exc:
        return _retry_later(attempt, exc)
    return _mark_sent(attempt, sid=sid, provider_status=provider_status)


def _send(outbound: Outbound) -> tuple[str, str]:
    attempt = outbound.attempt
    if attempt.channel == "sms":
        sent = get_sms_backend().send(
            tenant=attempt.tenant,
            from_=attempt.from_number,
            to=attempt.to_number,
            body=outbound.content,
            status_callback=outbound.callback,
        )
        return sent.sid, sent.status
    placed = get_voice_backend().place_call(
        tenant=attempt.tenant,
        from_=attempt.from_number,
        to=attempt.to_number,
        url=outbound.content,
        machine_detection=MACHINE_DETECTION,
        status_callback=outbound.callback,
        ring_timeout=outbound.ring_timeout,
    )
    return placed.sid, placed.status


def _status_path(attempt_id: int) -> str:
    from django.urls import reverse

    return reverse(STATUS_CALLBACK_NAME, args=[attempt_id])


def _reconcile(attempt: NotificationAttempt, config) -> tuple[str, str] | None:
    """Look up what the provider has for this attempt: ``(sid, status)`` or None if it has nothing.

    Without a SID the lookup only considers what was created since the attempt's first try (``created_at``,
    when it was claimed) less :data:`identity.leases.SKEW`, and never a call already recorded on another attempt.
    """
    tenant = attempt.tenant
    since = attempt.created_at - leases.SKEW
    try:
        if attempt.provider_sid:
            backend = get_sms_backend() if attempt.channel == "sms" else get_voice_backend()
            found = backend.fetch(tenant=tenant, sid=attempt.provider_sid)
        elif attempt.channel == "sms":
            found = get_sms_backend().find_recent(
                tenant=tenant,
                from_=attempt.from_number,
                to=attempt.to_number,
                body=attempt_sms_body(attempt, config),
                since=since,
            )
        else:
            found = get_voice_backend().find_recent(
                tenant=tenant,
                from_=attempt.from_number,
                to=attempt.to_number,
                since=since,
                exclude=_known_call_sids(attempt, since),
            )
    except LookupError:
        found = None
    return (found.sid, found.status) if found is not None else None


def _known_call_sids(attempt: NotificationAttempt, since: datetime) -> set[str]:
    """SIDs of calls that other attempts of the last hour (same tenant and numbers; their retries may have
    placed calls after ``since``) recorded: pages of the same person by another step or incident."""
    rows = (
        NotificationAttempt.objects.filter(
            tenant_id=attempt.tenant_id,
            channel="voice",
            to_number=attempt.to_number,
            from_number=attempt.from_number,
            created_at__gte=since - timedelta(hours=1),
        )
        .exclude(pk=attempt.pk)
        .values_list("provider_sid", "extra_sids")
    )
    return {sid for primary, extra in rows for sid in (primary, *extra) if sid}


def _mark_sent(attempt: NotificationAttempt, *, sid: str, provider_status: str) -> NotificationAttempt:
    """Record the SID the provider returned. Holds the incident row first (the acknowledgement's order), so a
    call whose SID arrives after an acknowledgement is seen by it or hangs itself up here. A machine verdict
    that arrived before the SID (held in ``machine_verdicts`` by CallSid) fails it now, but only if it came
    from this very call: a verdict of another try's call (an ``extra_sids`` duplicate) changes nothing."""
    now = timezone.now()
    fall_through = False
    with transaction.atomic():
        incident_status = (
            Incident.objects.select_for_update().filter(pk=attempt.incident_id).values_list("status", flat=True).first()
        )
        row = NotificationAttempt.objects.select_for_update(of=("self",)).select_related("responder").get(pk=attempt.pk)
        if (
            incident_status == Incident.Status.ACKNOWLEDGED
            and row.channel == "voice"
            and sid
            and row.acknowledged_at is None
        ):
            from escalation.services.hangups import incident_end_calls_on_commit

            incident_end_calls_on_commit(row.incident_id)
        if row.tries != attempt.tries or (row.provider_sid and sid != row.provider_sid):
            # a try presumed dead went out after all (or a later try won): keep its SID so the responder's
            # keypress and Twilio's webhooks for that message/call are still accepted as this attempt's
            if sid and sid != row.provider_sid and sid not in row.extra_sids:
                row.extra_sids = [*row.extra_sids, sid]
                row.save(update_fields=["extra_sids"])
                logger.warning(
                    "attempt %s: try %s went out as %s after a later try was claimed", attempt.pk, attempt.tries, sid
                )
        elif row.status == Status.SENDING:
            row.status = Status.SENT
            row.provider_sid = sid
            row.extra_sids = [s for s in row.extra_sids if s != sid]  # reconciled onto an earlier try's SID
            if PROVIDER_RANK.get(provider_status, 0) > PROVIDER_RANK.get(row.provider_status, 0):
                row.provider_status = provider_status
            # the prompt webhook was faster than this SID: its verdict counts only if it was for this call
            answered_by = row.machine_verdicts.get(sid) if row.channel == "voice" and sid else None
            machine = answered_by is not None
            # a callback may have won
            row.status = Status.FAILED if machine else _status_from_provider(Status.SENT, row.provider_status)
            fall_through = row.status == Status.FAILED
            row.sent_at = row.status_updated_at = now
            if machine:
                row.error_code, row.error_message = ANSWERING_MACHINE, _machine_message(answered_by)
                logger.warning("attempt %s: call %s %s; not a page delivered", row.pk, sid, row.error_message)
            else:
                row.error_code = row.provider_status if fall_through else ""
                row.error_message = ""
            row.save(
                update_fields=[
                    "status",
                    "provider_sid",
                    "extra_sids",
                    "provider_status",
                    "sent_at",
                    "status_updated_at",
                    "error_code",
                    "error_message",
                ]
            )
            attempt_mirror_update(attempt=row)
    if fall_through:
        incident_fall_through(incident_id=row.incident_id, step_index=row.step_index, repeat=row.repeat)
    return row


def _sending(attempt: NotificationAttempt):
    return NotificationAttempt.objects.filter(pk=attempt.pk, status=Status.SENDING)


def _finish(attempt: NotificationAttempt, status: str, *, code: str = "", message: str = "") -> NotificationAttempt:
    now = timezone.now()
    written = leases.record(  # fenced by the try number: a superseded try changes nothing
        _sending(attempt),
        attempt.tries,
        token_field="tries",
        status=status,
        error_code=str(code)[:20],
        error_message=message[:500],
        status_updated_at=now,
    )
    if written and status == Status.FAILED:  # a page that could not be sent (label: escalation_sms / _call)
        OUTBOUND_DELIVERY_FAILURES.labels(channel=f"escalation_{attempt.channel}").inc()
    attempt.refresh_from_db()
    attempt_mirror_update(attempt=attempt)
    return attempt


def _retry_later(attempt: NotificationAttempt, exc: ProviderTransientError) -> NotificationAttempt:
    """Back to ``pending`` with ``next_try_at`` and a queued retry; after :data:`MAX_TRIES`, failed."""
    ambiguous = attempt.ambiguous or exc.request_sent
    if attempt.tries >= MAX_TRIES:
        logger.error("attempt %s: giving up after %s tries (%s)", attempt.pk, attempt.tries, exc)
        NotificationAttempt.objects.filter(pk=attempt.pk).update(ambiguous=ambiguous)
        _finish(attempt, Status.FAILED, code=exc.code or str(exc.status or "transient"), message=f"gave up: {exc}")
        incident_fall_through(incident_id=attempt.incident_id, step_index=attempt.step_index, repeat=attempt.repeat)
        return attempt
    delay = backoff_seconds(attempt.tries)
    now = timezone.now()
    with transaction.atomic():
        updated = leases.record(
            _sending(attempt),
            attempt.tries,
            token_field="tries",
            status=Status.PENDING,
            next_try_at=now + timedelta(seconds=delay),
            ambiguous=ambiguous,
            error_code=str(exc.code or exc.status or "")[:20],
            error_message=str(exc)[:500],
        )
        if updated:
            from escalation.tasks import attempt_send_task

            attempt_id = attempt.pk
            transaction.on_commit(lambda: attempt_send_task.apply_async((attempt_id,), countdown=delay), robust=True)
    logger.warning(
        "attempt %s: transient error (%s), retry %s in %.1fs%s",
        attempt.pk,
        exc,
        attempt.tries + 1,
        delay,
        " after reconciling" if ambiguous else "",
    )
    attempt.refresh_from_db()
    return attempt


def attempt_status_update(
    *, attempt: NotificationAttempt, provider_status: str, sid: str = "", error_code: str = ""
) -> bool:
    """Apply a Twilio status callback: forward only (by :data:`PROVIDER_RANK`), never out of a final state.

    ``delivered`` (SMS) or an answered call moves ``sent`` → ``delivered``; ``failed`` / ``undelivered`` /
    ``busy`` / ``no-answer`` / ``canceled`` → ``failed`` and may let the ladder fall through — except a call we
    hung up unanswered after the acknowledgement (its SID in ``hangup_sids`` or ``hangup_claims``), which ends
    ``cancelled``.
    Returns True if anything changed. ``sid`` must match the attempt's SID when the attempt has one; the statuses of its
    ``extra_sids`` (a duplicate try) are not the attempt's and are ignored.
    """
    now = timezone.now()
    fall_through = False
    with transaction.atomic():
        row = NotificationAttempt.objects.select_for_update(of=("self",)).select_related("responder").get(pk=attempt.pk)
        if sid and row.provider_sid and sid != row.provider_sid:
            return False
        if sid and not row.provider_sid and sid in row.extra_sids:
            return False
        if PROVIDER_RANK.get(provider_status, -1) <= PROVIDER_RANK.get(row.provider_status, 0):
            return False
        row.provider_status = provider_status
        row.status_updated_at = now
        fields = ["provider_status", "status_updated_at"]
        # while still ``sending`` only provider_status moves; _mark_sent derives the status from it
        if row.status in (Status.SENT, Status.DELIVERED):
            new = _status_from_provider(row.status, provider_status)
            if (
                row.status == Status.SENT
                and provider_status in ("canceled", "completed")
                and (sid or row.provider_sid) in {*row.hangup_sids, *row.hangup_claims}
            ):
                new = Status.CANCELLED  # never answered; we hung it up because someone else acknowledged
            if new != row.status:
                fall_through = new == Status.FAILED
                row.status = new
                fields.append("status")
                if fall_through:
                    row.error_code = str(error_code or provider_status)[:20]
                    fields.append("error_code")
        row.save(update_fields=fields)
        attempt_mirror_update(attempt=row)
    if fall_through:
        incident_fall_through(incident_id=row.incident_id, step_index=row.step_index, repeat=row.repeat)
    return True


def _machine_message(answered_by: str) -> str:
    """``error_message`` of an attempt failed by an answering-machine verdict (Twilio ``AnsweredBy``)."""
    return f"answered by {answered_by or 'machine'}"[:500]


def attempt_answered_by_machine(*, attempt: NotificationAttempt, sid: str = "", answered_by: str = "") -> bool:
    """A page call was answered by an answering machine or a fax (Twilio ``AnsweredBy`` ``machine_*`` /
    ``fax``): nobody was reached, so the attempt ends ``failed`` (``error_code`` :data:`ANSWERING_MACHINE`)
    even if an ``in-progress`` callback already made it ``delivered``, and the ladder may fall through like
    after any failed page. Returns True if the attempt changed.

    ``sid`` is the answered CallSid: a duplicate try's call (in ``extra_sids``) changes nothing, the attempt's
    own call may still reach the responder. While the attempt has no SID yet (``sending``, or ``pending``
    between tries of an ambiguous send) the verdict may come from any try's call, e.g. a try presumed dead
    whose call is still live: it is held in ``machine_verdicts`` as ``{CallSid: AnsweredBy}`` and
    :func:`_mark_sent` fails the attempt only if the SID it records is that CallSid. A verdict without a
    CallSid cannot be tied to a call then and is ignored.
    """
    now = timezone.now()
    with transaction.atomic():
        row = NotificationAttempt.objects.select_for_update(of=("self",)).select_related("responder").get(pk=attempt.pk)
        message = _machine_message(answered_by)
        if row.status in (Status.PENDING, Status.SENDING):
            # held whatever ``extra_sids`` says: a reconciling try may yet record that call as the attempt's
            if not sid:
                logger.warning(
                    "attempt %s: %s without a CallSid before the call's SID came back; ignored", row.pk, message
                )
                return False
            if row.machine_verdicts.get(sid) == answered_by:
                return False  # Twilio retried the request
            row.machine_verdicts = {**row.machine_verdicts, sid: answered_by}
            row.save(update_fields=["machine_verdicts"])
            return True
        if sid and (sid in row.extra_sids or (row.provider_sid and sid != row.provider_sid)):
            return False
        if row.status not in (Status.SENT, Status.DELIVERED):
            return False
        row.status, row.status_updated_at = Status.FAILED, now
        row.error_code, row.error_message = ANSWERING_MACHINE, message
        row.save(update_fields=["status", "status_updated_at", "error_code", "error_message"])
        attempt_mirror_update(attempt=row)
    logger.warning("attempt %s: call %s %s; not a page delivered", row.pk, sid or row.provider_sid, message)
    incident_fall_through(incident_id=row.incident_id, step_index=row.step_index, repeat=row.repeat)
    return True
