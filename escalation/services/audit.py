"""The auditor: a sub-minute beat task that re-drives whatever a lost task left behind.

Celery delayed tasks live in the worker that reserved them; if it dies, Redis gives the message back only
after ``visibility_timeout`` (an hour). The auditor makes that a matter of seconds: every few seconds it
re-queues overdue steps (the fence makes duplicates harmless), pending attempts whose send or retry never
ran, attempts stuck in ``sending`` past the provider timeout (they are reconciled before any resend),
admin alerts of exhausted incidents that were never sent (once their lease expired), and the hang-up of the
other page calls of an incident acknowledged in the last :data:`HANGUP_WINDOW` when a call is still to end
and no live claim holds it (its task was lost, or its worker died between claim and request). A hang-up that
failed transiently (Twilio 429/5xx) is held for its task's retry (``hangups.RETRY_HOLD``), so the auditor
does not add requests to a throttled Twilio while that task backs off; it steps in if the retry never came.

Every re-drive carries ``expires`` (:data:`REDRIVE_EXPIRES`): the auditor queues the same work again on its
next run, so a copy that waited longer than that in the queue (a backlog after an outage) is discarded by
the worker instead of piling up; and a deterministic ``task_id`` naming the work (``esc-step-<incident>-
<fence>``, ``esc-send-<attempt>-<tries>``, ``esc-alert-<incident>``, ``esc-hangup-<incident>``) so
duplicates are visible in logs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from escalation.models import Incident, NotificationAttempt
from escalation.services.attempts import stale_after
from escalation.services.hangups import incidents_with_unclaimed_hangups
from identity import leases

logger = logging.getLogger(__name__)

#: How overdue something must be before the auditor steps in (its own task normally fires on time).
GRACE = timedelta(seconds=1)
#: A pending attempt without a retry time is sent right after its step commits; give that this long.
PENDING_GRACE = timedelta(seconds=3)
BATCH = 500
#: Seconds a re-driven task may wait in the queue before a worker drops it (the auditor runs every ~5 s).
REDRIVE_EXPIRES = 10.0
#: How long after an acknowledgement the auditor still re-drives lost hang-ups (a page call rings for its ring
#: timeout, 30 s by default; this bounds the scan, which the partial index ``incident_acknowledged`` serves).
HANGUP_WINDOW = timedelta(minutes=10)


def escalation_audit(*, now: datetime | None = None) -> dict[str, int]:
    """Queue tasks for everything overdue; returns counts ``{"steps", "attempts", "stale", "alerts",
    "hangups"}``."""
    from escalation.tasks import attempt_send_task, incident_alert_admins, incident_end_calls_task, incident_step

    now = now or timezone.now()
    counts = {"steps": 0, "attempts": 0, "stale": 0, "alerts": 0, "hangups": 0}
    due = Incident.objects.filter(status=Incident.Status.TRIGGERED, next_step_at__lte=now - GRACE).values_list(
        "pk", "fence"
    )[:BATCH]
    for incident_id, fence in due:
        incident_step.apply_async(
            (str(incident_id), fence), task_id=f"esc-step-{incident_id}-{fence}", expires=REDRIVE_EXPIRES
        )
        counts["steps"] += 1
    open_attempts = NotificationAttempt.objects.filter(incident__status=Incident.Status.TRIGGERED)
    pending = open_attempts.filter(
        status=NotificationAttempt.Status.PENDING, next_try_at__lte=now - GRACE
    ) | open_attempts.filter(
        status=NotificationAttempt.Status.PENDING, next_try_at__isnull=True, created_at__lte=now - PENDING_GRACE
    )
    for attempt_id, tries in pending.values_list("pk", "tries")[:BATCH]:
        _send(attempt_send_task, attempt_id, tries)
        counts["attempts"] += 1
    # a retry left pending on an incident that stopped paging (its task lost): never sent now; if an earlier
    # try may have reached Twilio it is looked up first (attempt_send), so the audit says what really happened
    stopped = NotificationAttempt.objects.filter(status=NotificationAttempt.Status.PENDING).exclude(
        incident__status=Incident.Status.TRIGGERED
    )
    stopped.filter(ambiguous=False).update(
        status=NotificationAttempt.Status.CANCELLED, next_try_at=None, status_updated_at=now
    )
    stopped_ambiguous = stopped.filter(ambiguous=True, next_try_at__lte=now - GRACE)
    for attempt_id, tries in stopped_ambiguous.values_list("pk", "tries")[:BATCH]:
        _send(attempt_send_task, attempt_id, tries)
        counts["attempts"] += 1
    stale = leases.due_since(
        NotificationAttempt.objects.filter(status=NotificationAttempt.Status.SENDING), now, stale_after()
    )
    for attempt_id, tries in stale.values_list("pk", "tries")[:BATCH]:
        _send(attempt_send_task, attempt_id, tries)
        counts["stale"] += 1
    # the partial index incident_unalerted serves this; a held lease means a sender (or its retry) is on it
    unalerted = leases.due(
        Incident.objects.filter(
            status=Incident.Status.UNACKNOWLEDGED, admins_alerted_at__isnull=True, exhausted_at__lte=now - PENDING_GRACE
        ),
        now,
        field="admins_alert_lease_until",
    )
    for incident_id in unalerted.values_list("pk", flat=True)[:BATCH]:
        incident_alert_admins.apply_async(
            (str(incident_id),), task_id=f"esc-alert-{incident_id}", expires=REDRIVE_EXPIRES
        )
        counts["alerts"] += 1
    # the acknowledgement queues the hang-up itself: give that task PENDING_GRACE before re-driving it; a live
    # claim (a request under way, or a hold for the retry of a transiently failed one) is left to its task
    for incident_id in incidents_with_unclaimed_hangups(
        acknowledged_from=now - HANGUP_WINDOW, acknowledged_to=now - PENDING_GRACE, now=now, limit=BATCH
    ):
        incident_end_calls_task.apply_async(
            (str(incident_id),), task_id=f"esc-hangup-{incident_id}", expires=REDRIVE_EXPIRES
        )
        counts["hangups"] += 1
    # SLA: still not acknowledged past its target (an acknowledgement sets the flag itself, on time or late)
    Incident.objects.filter(
        status__in=(Incident.Status.TRIGGERED, Incident.Status.UNACKNOWLEDGED),
        sla_breached=False,
        sla_due_at__lte=now,
    ).update(sla_breached=True)
    if any(counts.values()):
        logger.warning("escalation auditor re-drove %s", counts)
    return counts


def _send(task, attempt_id: int, tries: int) -> None:
    task.apply_async((attempt_id,), task_id=f"esc-send-{attempt_id}-{tries}", expires=REDRIVE_EXPIRES)
