"""Hanging up the other page calls once an incident is acknowledged, each CallSid at most once at a time.

A hang-up is ``POST …/Calls/{Sid}.json Status=completed`` (``VoiceBackend.end_call``), under a claim
(:mod:`identity.leases`) kept in the attempt's ``hangup_claims`` (``{sid: ISO 8601 UTC claim time}``, the claim
time is its fencing token; the lease is :func:`~escalation.services.attempts.stale_after`). Once the provider
answered (ended, already over or unknown, or a permanent refusal) the SID moves to ``hangup_sids`` and is never
asked again. The task is ``reject_on_worker_lost``, and the auditor re-queues the hang-up of a recently
acknowledged incident whose calls have an SID neither ended nor under a live claim
(:func:`incidents_with_unclaimed_hangups`). Asking twice for a call that did end is harmless: Twilio answers
21220 (invalid call state) and the backend counts that as ended.

A transient error (429, 5xx, timeout) re-dates the claim :data:`RETRY_HOLD` ahead, as a *hold* for the task's
own retry: the retry takes it over at once, and nobody else presumes it dead until ``stale_after`` past its
date, so the auditor does not re-queue the hang-up beside the retrying task and hammer a throttled Twilio.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from escalation.models import Incident, NotificationAttempt
from escalation.services.attempts import FINAL_CALL_STATUSES, stale_after
from identity import leases
from providers import PROVIDER_RETRY, ProviderPermanentError, ProviderTransientError
from providers.voice import get_voice_backend

logger = logging.getLogger(__name__)

#: How far ahead a transient error re-dates the SID's claim (the hold for the task's retry): the longest
#: Celery's exponential backoff puts a retry of ``incident_end_calls_task`` off (``retry_backoff_max`` of
#: ``PROVIDER_RETRY``, seconds; its full jitter only shortens it). A retry that comes later than that finds a
#: claim it takes for a live request and leaves the SID to the auditor, ``stale_after`` later.
RETRY_HOLD = timedelta(seconds=PROVIDER_RETRY["retry_backoff_max"])


def incident_end_calls_on_commit(incident_id) -> None:
    """Call inside the transaction that acknowledged (or saw acknowledged) the incident: after commit, queue
    :func:`incident_end_calls` on the escalation queue. Never raises (a broker outage is logged; the auditor
    re-queues it, and meanwhile the calls ring out their ring timeout)."""
    from escalation.tasks import incident_end_calls_task

    incident_id = str(incident_id)
    transaction.on_commit(lambda: incident_end_calls_task.delay(incident_id), robust=True)


def _may_still_ring() -> Q:
    """Voice attempts with a call that may still ring or talk: a CallSid whose last known Twilio status is not
    final, or a duplicate try's SID (``extra_sids``); never the attempt the acknowledgement came through
    (``acknowledged_at`` set: its own TwiML ends that call)."""
    return Q(channel="voice", acknowledged_at__isnull=True) & (
        (~Q(provider_sid="") & ~Q(provider_status__in=FINAL_CALL_STATUSES)) | ~Q(extra_sids=[])
    )


def calls_to_end(*, incident_id) -> list[NotificationAttempt]:
    """The incident's voice attempts (``tenant`` loaded) with a CallSid that may still ring or talk and whose
    hang-up the provider has not answered yet (a live claim included: see :func:`unclaimed_call_sids`)."""
    rows = (
        NotificationAttempt.objects.filter(_may_still_ring(), incident_id=incident_id)
        .select_related("tenant")
        .order_by("pk")
    )
    return [row for row in rows if _live_call_sids(row)]


def _live_call_sids(attempt: NotificationAttempt) -> list[str]:
    """The attempt's CallSids that may still ring or talk and whose hang-up was not answered yet."""
    live = attempt.provider_sid and attempt.provider_status not in FINAL_CALL_STATUSES
    primary = [attempt.provider_sid] if live else []
    return [sid for sid in (*primary, *attempt.extra_sids) if sid not in attempt.hangup_sids]


def _claimed_at(attempt: NotificationAttempt, sid: str) -> datetime | None:
    claimed = attempt.hangup_claims.get(sid)
    return None if claimed is None else datetime.fromisoformat(claimed)


def _claim_live(attempt: NotificationAttempt, sid: str, now: datetime) -> bool:
    """True if a hang-up request for ``sid`` was claimed less than :func:`stale_after` before ``now``, or is
    held for the task's retry (a claim dated in the future) until ``stale_after`` past its date."""
    return leases.live_since(_claimed_at(attempt, sid), stale_after(), now)


def _held_for_retry(attempt: NotificationAttempt, sid: str, now: datetime) -> bool:
    """True if ``sid``'s claim is a hold a transient error left for the task's retry (dated after ``now``)."""
    return leases.is_live(_claimed_at(attempt, sid), now)  # a hold is dated ahead: "live" until that date


def unclaimed_call_sids(attempt: NotificationAttempt, *, now: datetime | None = None) -> list[str]:
    """The attempt's CallSids still to hang up that no live request nor retrying task holds (never claimed, or
    the claim of a worker presumed dead, or a hold whose retry never came)."""
    now = now or timezone.now()
    return [sid for sid in _live_call_sids(attempt) if not _claim_live(attempt, sid, now)]


def incidents_with_unclaimed_hangups(
    *, acknowledged_from: datetime, acknowledged_to: datetime, now: datetime | None = None, limit: int = 500
) -> list:
    """Ids of incidents acknowledged in [``acknowledged_from``, ``acknowledged_to``] with a page call still to
    hang up that no live request nor retrying task holds (what a lost hang-up task leaves behind); at most
    ``limit``."""
    now = now or timezone.now()
    rows = (
        NotificationAttempt.objects.filter(
            _may_still_ring(),
            incident__status=Incident.Status.ACKNOWLEDGED,
            incident__acknowledged_at__gte=acknowledged_from,
            incident__acknowledged_at__lte=acknowledged_to,
        )
        .only("incident_id", "provider_sid", "provider_status", "extra_sids", "hangup_sids", "hangup_claims")
        .order_by("incident_id", "pk")
    )
    found: list = []
    for row in rows.iterator():
        if row.incident_id not in found and unclaimed_call_sids(row, now=now):
            found.append(row.incident_id)
            if len(found) >= limit:
                break
    return found


def incident_end_calls(*, incident_id) -> int:
    """Hang up the other page calls of an acknowledged incident (:func:`calls_to_end`), each CallSid at most
    once at a time. Returns the number of hang-up requests made (0 when the incident is not acknowledged).

    A call Twilio no longer has or that is already over counts as ended (the backend says so). A permanent
    error is logged and not retried. A transient one (429, 5xx, timeout) keeps that SID's claim as a hold for
    the retry (:data:`RETRY_HOLD`), the other calls are still hung up, and the first such error is raised at
    the end for the task's retry (``PROVIDER_RETRY``), which takes the holds over and asks only for the SIDs
    not yet ended.
    """
    if not Incident.objects.filter(pk=incident_id, status=Incident.Status.ACKNOWLEDGED).exists():
        return 0
    requested, transient = 0, None
    for attempt in calls_to_end(incident_id=incident_id):
        try:
            requested += attempt_end_call(attempt=attempt)
        except ProviderTransientError as exc:
            transient = transient or exc
    if transient is not None:
        raise transient
    return requested


def attempt_end_call(*, attempt: NotificationAttempt) -> int:
    """Hang up every call of one attempt that may still ring (``tenant`` loaded); returns the requests made.

    Each SID is claimed in ``hangup_claims`` before its request (a concurrent or later run skips it while the
    claim is live) and moved to ``hangup_sids`` once the provider answered; ``hung_up_at`` is set when it
    confirmed. Raises ProviderTransientError after turning the claim into a hold for the task's retry."""
    requested = 0
    for sid in _live_call_sids(attempt):
        token = _hangup_claim(attempt.pk, sid)
        if token is None:
            continue  # another run holds a live claim on this call, or it was answered already
        try:
            get_voice_backend().end_call(tenant=attempt.tenant, sid=sid)
        except ProviderTransientError as exc:
            _hangup_hold(attempt.pk, sid, token)
            logger.warning("attempt %s: hanging up %s failed (%s); will retry", attempt.pk, sid, exc)
            raise
        except ProviderPermanentError as exc:
            requested += 1
            _hangup_done(attempt.pk, sid, confirmed=False)
            logger.error("attempt %s: provider refused to hang up %s: %s %s", attempt.pk, sid, exc.code, exc)
            continue
        requested += 1
        _hangup_done(attempt.pk, sid, confirmed=True)
        logger.info("attempt %s: call %s hung up (incident acknowledged)", attempt.pk, sid)
    return requested


def _hangup_claim(attempt_id: int, sid: str) -> str | None:
    """Claim the hang-up of ``sid`` (``hangup_claims[sid]`` = now, returned as the fencing token; None if not) unless it was answered already
    (``hangup_sids``), another run holds a live claim, or the call is the acknowledging attempt's own. A hold
    left for the task's retry (:func:`_hangup_hold`) is taken over: this run is that retry (or a redelivery of
    the task, which does the same work); the claim it leaves is an ordinary one, so only one run takes it."""
    now = timezone.now()
    with transaction.atomic():
        row = NotificationAttempt.objects.select_for_update().filter(pk=attempt_id).first()
        if row is None or row.acknowledged_at is not None or sid in row.hangup_sids:
            return None
        if _held_for_retry(row, sid, now):
            logger.info("attempt %s: retrying the hang-up of %s", row.pk, sid)
        elif _claim_live(row, sid, now):
            return None
        elif sid in row.hangup_claims:
            logger.warning("attempt %s: hang-up claim on %s expired (its worker died?); asking again", row.pk, sid)
        token = now.isoformat()
        row.hangup_claims = {**row.hangup_claims, sid: token}
        row.save(update_fields=["hangup_claims"])
    return token


def _hangup_done(attempt_id: int, sid: str, *, confirmed: bool) -> None:
    """The provider answered the hang-up of ``sid``: move it from ``hangup_claims`` to ``hangup_sids``;
    ``confirmed`` (ended, or already over) also stamps ``hung_up_at``."""
    with transaction.atomic():
        row = NotificationAttempt.objects.select_for_update().get(pk=attempt_id)
        row.hangup_claims = {s: at for s, at in row.hangup_claims.items() if s != sid}
        fields = ["hangup_claims"]
        if sid not in row.hangup_sids:
            row.hangup_sids = [*row.hangup_sids, sid]
            fields.append("hangup_sids")
        if confirmed:
            row.hung_up_at = timezone.now()
            fields.append("hung_up_at")
        row.save(update_fields=fields)


def _hangup_hold(attempt_id: int, sid: str, token: str) -> None:
    """A transient error: keep the claim on ``sid`` as a hold for the task's retry, dated :data:`RETRY_HOLD`
    ahead (UTC). The retry takes it over at once (:func:`_hangup_claim`); the auditor leaves it alone until
    ``stale_after`` past that date, so it re-queues the hang-up only when the retrying task died. Fenced: a
    claim taken over meanwhile (ours had lapsed) is left alone."""
    held = timezone.now() + RETRY_HOLD
    with transaction.atomic():
        row = NotificationAttempt.objects.select_for_update().get(pk=attempt_id)
        if sid in row.hangup_sids or row.hangup_claims.get(sid) != token:
            return  # answered or re-claimed meanwhile (a concurrent run after our claim lapsed)
        row.hangup_claims = {**row.hangup_claims, sid: held.isoformat()}
        row.save(update_fields=["hangup_claims"])
