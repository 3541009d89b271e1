"""Incident writes: raise, fire a step of the ladder, fall through, acknowledge, give up.

The ladder (Grafana OnCall's design, made sub-minute): the incident row carries ``position`` (the next step
to fire), ``next_step_at`` (when) and ``fence`` (a fencing token). A step fires only in a transaction that
holds the incident row (``select_for_update``) and presents the current fence; every transition increments
the fence, so a redelivered, duplicated or stale task is a no-op. Tasks are queued on commit; a beat auditor
(:func:`escalation.services.audit.escalation_audit`) re-drives any step that is overdue, so a lost task (a
killed worker, a broker outage, a delayed task held past Redis's ``visibility_timeout``) costs seconds, never
a page. Attempts are unique per (incident, step, repeat, responder, channel).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.models import Interaction
from conversations.services import interaction_mark_escalated
from conversations.webhooks.services import webhook_event_emit
from escalation import selectors
from escalation.models import (
    EscalationPolicy,
    EscalationSettings,
    Incident,
    NotificationAttempt,
    Responder,
)
from escalation.services.messages import ack_token_create, tenant_number
from escalation.services.timeline import attempt_mirrors_create
from identity import leases
from observability.metrics import ESCALATION_STEP_LATENESS

logger = logging.getLogger(__name__)

#: Longest countdown given to a delayed Celery task (seconds). Redis redelivers unacked messages after
#: ``visibility_timeout`` (settings: 3600 s), so a delayed task must stay far below it; a step further out is
#: re-queued when the early task runs, and the auditor covers lost ones.
MAX_COUNTDOWN = 300
#: SLA target without tenant settings: 5 minutes from raise to acknowledgement (EscalationSettings.sla_ack_seconds).
DEFAULT_SLA_SECONDS = 300
FINISHED = (NotificationAttempt.Status.FAILED, NotificationAttempt.Status.SKIPPED, NotificationAttempt.Status.CANCELLED)


def policy_snapshot(policy: EscalationPolicy | None) -> dict:
    """The policy frozen as JSON (see ``Incident.policy_snapshot``); an empty ladder for ``None``."""
    if policy is None:
        return {"policy_id": None, "name": "", "repeat_count": 0, "steps": []}
    return {
        "policy_id": policy.pk,
        "name": policy.name,
        "repeat_count": policy.repeat_count,
        "steps": [
            {
                "target": s.target,
                "schedule_id": s.schedule_id,
                "responder_id": s.responder_id,
                "team_id": s.team_id,
                "channels": list(s.channels),
                "wait_seconds": s.wait_seconds,
            }
            for s in policy.steps.order_by("order")
        ],
    }


def incident_should_raise(*, config: EscalationSettings | None, urgency: int, at: datetime) -> bool:
    """True if the tenant's settings say a message of ``urgency`` at ``at`` pages someone: escalation enabled,
    urgency ≥ ``urgency_threshold``, and outside business hours unless ``escalate_in_business_hours``."""
    if config is None or not config.enabled or urgency < config.urgency_threshold:
        return False
    if config.escalate_in_business_hours:
        return True
    return not selectors.is_business_hours(tenant=config.tenant, config=config, at=at)


def incident_raise(
    *, interaction: Interaction, urgency: int, reason: str, at: datetime | None = None
) -> tuple[Incident, bool]:
    """Raise the incident of ``interaction`` (once: a unique constraint) and start its ladder on commit.

    Freezes the tenant's default policy onto the incident, marks the interaction escalated, and queues the
    first step. Returns ``(incident, created)``; a second call for the same interaction returns the first
    incident with ``created=False``. ``urgency`` is 1–5; ``reason`` a short non-PHI label.
    """
    at = at or timezone.now()
    if existing := Incident.objects.filter(interaction=interaction).first():
        return existing, False
    config = EscalationSettings.objects.filter(tenant_id=interaction.tenant_id).select_related("default_policy").first()
    snapshot = policy_snapshot(config.default_policy if config else None)
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                tenant_id=interaction.tenant_id,
                interaction=interaction,
                customer_id=interaction.customer_id,
                urgency=max(1, min(5, int(urgency))),
                reason=(reason or "urgent")[:80],
                policy_snapshot=snapshot,
                position=0,
                fence=1,
                next_step_at=at,
                raised_at=at,
                sla_due_at=at + timedelta(seconds=config.sla_ack_seconds if config else DEFAULT_SLA_SECONDS),
            )
            interaction_mark_escalated(interaction=interaction)
            _queue_step_on_commit(incident.pk, incident.fence, at)
    except IntegrityError:
        return Incident.objects.get(interaction=interaction), False
    logger.info("incident %s raised (urgency %s, %s)", incident.pk, incident.urgency, incident.reason)
    return incident, True


@dataclass
class StepOutcome:
    """What :func:`incident_run_step` did: ``fired`` a step (``attempt_ids`` to dispatch), ``exhausted`` the
    ladder, or nothing (stale fence / not due / not paging)."""

    fired: bool = False
    exhausted: bool = False
    attempt_ids: list[int] = field(default_factory=list)
    outbound: list = field(default_factory=list)  # escalation.services.attempts.Outbound


def incident_run_step(*, incident_id, fence: int, now: datetime | None = None, dispatch: bool = True) -> StepOutcome:
    """Fire the incident's due step if ``fence`` is current; queue the next step and the sends on commit.

    Creates one ``NotificationAttempt`` per (target, channel) of the frozen step, claimed for its first try —
    ``skipped`` for a responder in quiet hours when the urgency is below the tenant's bypass — and its
    timeline row; on commit the provider requests go out in parallel (unless ``dispatch=False``: the caller
    sends ``outcome.outbound`` itself, e.g. in tests). Then it moves
    ``position`` on, increments ``fence`` and sets ``next_step_at`` to now + the step's wait (now, when nobody
    could be paged). Past the last step of the last repeat the incident becomes ``unacknowledged`` and the
    tenant's admins are alerted. Safe to call any number of times: only the holder of the current fence acts.
    """
    now = now or timezone.now()
    with transaction.atomic():
        incident = (
            Incident.objects.select_for_update(of=("self",))
            .select_related("tenant", "interaction")
            .filter(pk=incident_id)
            .first()
        )
        if incident is None or incident.status != Incident.Status.TRIGGERED or incident.fence != fence:
            return StepOutcome()
        if incident.next_step_at and incident.next_step_at > now:  # an early (capped-countdown) task
            _queue_step_on_commit(incident.pk, fence, incident.next_step_at)
            return StepOutcome()
        steps = incident.policy_snapshot.get("steps", [])
        total = len(steps) * (int(incident.policy_snapshot.get("repeat_count", 0)) + 1)
        if incident.position >= total:
            _exhaust(incident, now)
            return StepOutcome(exhausted=True)
        step_index, repeat = incident.position % len(steps), incident.position // len(steps)
        step = steps[step_index]
        lateness = (now - incident.next_step_at).total_seconds() if incident.next_step_at else 0.0
        attempts, outbound = _create_attempts(incident, step, step_index, repeat, now)
        live = [o.attempt.pk for o in outbound]
        incident.position += 1
        incident.fence += 1
        wait = step["wait_seconds"] if live else 0
        incident.next_step_at = now + timedelta(seconds=wait)
        incident.save(update_fields=["position", "fence", "next_step_at"])
        _queue_step_on_commit(incident.pk, incident.fence, incident.next_step_at)
        if outbound and dispatch:
            _dispatch_on_commit(outbound)
    logger.info("incident %s step %s repeat %s fired: %s attempts", incident.pk, step_index, repeat, len(live))
    ESCALATION_STEP_LATENESS.observe(max(0.0, lateness))  # after commit: a rolled-back step never fired
    return StepOutcome(fired=True, attempt_ids=live, outbound=outbound)


def _create_attempts(
    incident: Incident, step: dict, step_index: int, repeat: int, now: datetime
) -> tuple[list[NotificationAttempt], list]:
    """Create the step's attempts already claimed for their first try (``sending``; quiet hours → ``skipped``),
    their ack tokens and timeline rows; return them and the prepared provider requests.

    A plain INSERT: the ``attempt_once`` constraint can only be hit if this step had already fired, which the
    fence rules out — were it ever violated the transaction fails loudly instead of paging anyone twice.
    """
    from escalation.services.attempts import outbound_prepare

    tenant = incident.tenant
    config = EscalationSettings.objects.filter(tenant=tenant).first()
    bypass = config.quiet_hours_bypass_urgency if config else 5
    ttl = config.ack_link_ttl_seconds if config else 4 * 3600
    try:
        sender = tenant_number(tenant)
    except ValueError:
        logger.error("incident %s: tenant %s has no phone number to page from", incident.pk, tenant.slug)
        return [], []  # nobody can be paged: the ladder runs out and the admins are alerted
    due = incident.next_step_at or now
    rows = []
    for responder in selectors.step_targets(tenant=tenant, step=step, at=now):
        quiet = incident.urgency < bypass and selectors.in_quiet_hours(responder=responder, at=now)
        for channel in step["channels"]:
            if channel not in responder.channels:
                continue
            rows.append(
                NotificationAttempt(
                    tenant=tenant,
                    incident=incident,
                    step_index=step_index,
                    repeat=repeat,
                    responder=responder,
                    channel=channel,
                    to_number=responder.phone,
                    from_number=sender,
                    step_due_at=due,
                    created_at=now,
                    status=NotificationAttempt.Status.SKIPPED if quiet else NotificationAttempt.Status.SENDING,
                    tries=0 if quiet else 1,
                    claimed_at=None if quiet else now,
                    error_message="quiet hours (responder's time zone)" if quiet else "",
                )
            )
    live = [a for a in rows if a.status == NotificationAttempt.Status.SENDING]
    if incident.interaction_id and live:
        attempt_mirrors_create(attempts=live, incident=incident)  # sets attempt.log_interaction
    attempts = NotificationAttempt.objects.bulk_create(rows)
    for attempt in live:
        if attempt.channel == "sms":
            ack_token_create(attempt=attempt, ttl_seconds=ttl, at=now)
    return attempts, [outbound_prepare(attempt=a, config=config) for a in live]


def incident_fall_through(*, incident_id, step_index: int, repeat: int, now: datetime | None = None) -> bool:
    """Fire the next step now if every attempt of the latest step has failed (or was skipped/cancelled).

    A permanent provider error (21211, 21610, 21614) or a failed/busy/unanswered call must not make the
    ladder wait out a timer nobody can answer. Returns True if the next step was pulled forward.
    """
    now = now or timezone.now()
    with transaction.atomic():
        incident = Incident.objects.select_for_update().filter(pk=incident_id).first()
        if incident is None or incident.status != Incident.Status.TRIGGERED:
            return False
        n = len(incident.policy_snapshot.get("steps", [])) or 1
        if incident.position != repeat * n + step_index + 1:
            return False  # not the latest step any more
        attempts = NotificationAttempt.objects.filter(incident=incident, step_index=step_index, repeat=repeat)
        if attempts.exclude(status__in=FINISHED).exists():
            return False
        if incident.next_step_at and incident.next_step_at <= now:
            return False  # already due; its task or the auditor is on it
        incident.fence += 1
        incident.next_step_at = now
        incident.save(update_fields=["fence", "next_step_at"])
        _queue_step_on_commit(incident.pk, incident.fence, now)
    logger.warning("incident %s: every attempt of step %s failed; falling through", incident_id, step_index)
    return True


def incident_acknowledge(
    *,
    incident: Incident,
    responder: Responder | None,
    via: str,
    attempt: NotificationAttempt | None = None,
    at: datetime | None = None,
) -> bool:
    """Acknowledge: stop the ladder (fence moves on, no next step), cancel every pending attempt at once, and
    on commit hang up the other page calls still queued, ringing or in progress (a Celery task on the
    ``escalation`` queue: :func:`~escalation.services.hangups.incident_end_calls`). ``attempt`` is the one
    the acknowledgement came through (its ``acknowledged_at`` is set); a keypress's own call is never hung up.

    Returns True if this call acknowledged it; False if it was no longer paging (already acknowledged or
    exhausted) — acknowledging twice is a no-op. ``via`` is an ``Incident.AckVia`` value.
    """
    at = at or timezone.now()
    with transaction.atomic():
        row = Incident.objects.select_for_update().get(pk=incident.pk)
        if row.status != Incident.Status.TRIGGERED:
            return False
        row.status = Incident.Status.ACKNOWLEDGED
        row.acknowledged_at, row.acknowledged_by, row.ack_via = at, responder, via
        row.fence += 1
        row.next_step_at = None
        row.sla_breached = row.sla_breached or bool(row.sla_due_at and at > row.sla_due_at)
        row.save(
            update_fields=[
                "status",
                "acknowledged_at",
                "acknowledged_by",
                "ack_via",
                "fence",
                "next_step_at",
                "sla_breached",
            ]
        )
        # retries not yet sent stop now; one whose earlier try may have reached Twilio (ambiguous) stays pending
        # until its task looks it up, so the audit records whether it went out
        NotificationAttempt.objects.filter(
            incident=row, status=NotificationAttempt.Status.PENDING, ambiguous=False
        ).update(status=NotificationAttempt.Status.CANCELLED, status_updated_at=at, next_try_at=None)
        if attempt is not None:
            NotificationAttempt.objects.filter(pk=attempt.pk, acknowledged_at__isnull=True).update(acknowledged_at=at)
        _emit_acknowledged(row)
        _end_other_calls_on_commit(row)
        _notify_on_commit(row.pk)
    for name in ("status", "acknowledged_at", "acknowledged_by", "ack_via", "fence", "next_step_at", "sla_breached"):
        setattr(incident, name, getattr(row, name))
    logger.info("incident %s acknowledged via %s by %s", incident.pk, via, responder)
    return True


def _notify_on_commit(incident_id) -> None:
    """Queue the texts that follow an acknowledgement (colleagues, the patient: ``services.notices``)."""
    from escalation.tasks import incident_notify_acknowledged_task

    incident_id = str(incident_id)
    transaction.on_commit(lambda: incident_notify_acknowledged_task.delay(incident_id), robust=True)


#: Longest resolution note kept (characters); it is clinic-internal and never texted.
MAX_NOTE = 2000


def incident_resolve(
    *,
    incident: Incident,
    note: str,
    via: str,
    responder: Responder | None = None,
    at: datetime | None = None,
) -> bool:
    """Close the loop: mark the incident resolved with ``note`` (once; True if this call resolved it). An
    incident still paging is acknowledged first by the same person and channel (everything pending stops).
    ``via`` is an ``Incident.AckVia`` value (``sms`` for a responder's "RESOLVED …", ``admin``)."""
    at = at or timezone.now()
    if incident.status == Incident.Status.TRIGGERED:
        incident_acknowledge(incident=incident, responder=responder, via=via, at=at)
    with transaction.atomic():
        row = Incident.objects.select_for_update().get(pk=incident.pk)
        if row.resolved_at is not None:
            return False
        row.resolved_at, row.resolved_by, row.resolved_via = at, responder, via
        row.resolution_note = (note or "").strip()[:MAX_NOTE]
        row.save(update_fields=["resolved_at", "resolved_by", "resolved_via", "resolution_note"])
    for name in ("resolved_at", "resolved_by", "resolved_via", "resolution_note", "status"):
        setattr(incident, name, getattr(row, name))
    logger.info("incident %s resolved via %s by %s", incident.pk, via, responder)
    return True


def _end_other_calls_on_commit(incident: Incident) -> None:
    """Queue the hang-up of the incident's other live page calls, if it has any (a call whose SID comes back
    later queues it itself: ``attempts._mark_sent`` holds the incident row like this transaction does)."""
    from escalation.services.hangups import calls_to_end, incident_end_calls_on_commit

    if calls_to_end(incident_id=incident.pk):
        incident_end_calls_on_commit(incident.pk)


def _emit_acknowledged(incident: Incident) -> None:
    """The ``incident.acknowledged`` outbound webhook (once per incident; no PHI: ids, times and channel)."""
    webhook_event_emit(
        tenant=incident.tenant,
        event_type="incident.acknowledged",
        dedupe_key=f"incident.acknowledged:{incident.pk}",
        payload={
            "incident_id": str(incident.pk),
            "interaction_id": str(incident.interaction_id or "") or None,
            "customer_id": str(incident.customer_id or "") or None,
            "urgency": incident.urgency,
            "reason": incident.reason,
            "raised_at": incident.raised_at.isoformat(),
            "acknowledged_at": incident.acknowledged_at.isoformat(),
            "ack_via": incident.ack_via,
            "acknowledged_by_responder_id": incident.acknowledged_by_id,
            "seconds_to_ack": round((incident.acknowledged_at - incident.raised_at).total_seconds(), 3),
        },
    )


def _exhaust(incident: Incident, now: datetime) -> None:
    incident.status = Incident.Status.UNACKNOWLEDGED
    incident.exhausted_at = now
    incident.next_step_at = None
    incident.fence += 1
    incident.save(update_fields=["status", "exhausted_at", "next_step_at", "fence"])
    logger.error("incident %s: ladder exhausted without acknowledgement; alerting admins", incident.pk)
    from escalation.tasks import incident_alert_admins

    incident_id = str(incident.pk)
    transaction.on_commit(lambda: incident_alert_admins.delay(incident_id), robust=True)


#: How long one admin-alert send may hold the incident: a task's lease (:func:`identity.leases.task_lease`).
ALERT_LEASE = leases.task_lease()
LEASE_FIELD = "admins_alert_lease_until"
#: After a failed send, the retry (the task's ``default_retry_delay``) or the auditor takes over after this.
ALERT_RETRY_SECONDS = 10


def incident_alert_admins(*, incident_id, now: datetime | None = None) -> int:
    """Email the tenant's admins (memberships with role admin) that an incident went unacknowledged.

    At-least-once, a claim (:mod:`identity.leases`) on ``admins_alert_lease_until`` (its value is the fencing
    token); ``admins_alerted_at`` is set only after the mail went out, so a crash or a hung SMTP server leaves it
    NULL and the auditor re-drives it once the lease expires (a duplicate mail is possible, a lost one is not).
    On an SMTP error (``OSError``) our lease is shortened to :data:`ALERT_RETRY_SECONDS` and the error
    re-raised for the task's retry. Returns the number of recipients (0 if already alerted, another sender
    holds the lease, or it is not unacknowledged).
    The mail carries no patient data: clinic, incident id and the admin link.
    """
    from django.core.mail import send_mail

    from identity.models import TenantMembership

    now = now or timezone.now()
    unalerted = Incident.objects.filter(
        pk=incident_id, status=Incident.Status.UNACKNOWLEDGED, admins_alerted_at__isnull=True
    )
    token = now + ALERT_LEASE  # the lease's end is this claim's fencing token
    if not leases.due(unalerted, now, field=LEASE_FIELD).update(admins_alert_lease_until=token):
        return 0
    incident = Incident.objects.select_related("tenant").get(pk=incident_id)
    emails = list(
        TenantMembership.objects.filter(tenant=incident.tenant, role=TenantMembership.Role.ADMIN, user__is_active=True)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if emails:
        link = f"{settings.PUBLIC_BASE_URL}/admin/escalation/incident/{incident.pk}/change/"
        try:
            send_mail(
                f"[{incident.tenant.short_name}] URGENT incident not acknowledged",
                f"No on-call responder acknowledged urgent incident {str(incident.pk)[:8]} "
                f"(raised {incident.raised_at:%Y-%m-%d %H:%M} UTC). Please follow up now: {link}",
                None,
                emails,
            )
        except OSError:  # smtplib.SMTPException is an OSError; so are socket timeouts and refusals
            leases.record(
                Incident.objects.filter(pk=incident_id, admins_alerted_at__isnull=True),
                token,
                token_field=LEASE_FIELD,
                admins_alert_lease_until=timezone.now() + timedelta(seconds=ALERT_RETRY_SECONDS),
            )
            logger.warning("incident %s: admin alert mail failed; retrying", incident_id, exc_info=True)
            raise
    else:
        logger.error(
            "incident %s unacknowledged and tenant %s has no admin with an email address",
            incident_id,
            incident.tenant.slug,
        )
    Incident.objects.filter(pk=incident_id).update(admins_alerted_at=timezone.now(), admins_alert_lease_until=None)
    return len(emails)


def _queue_step_on_commit(incident_id, fence: int, due: datetime) -> None:
    """After commit, queue the step task for ``due`` (an absolute time, so the time the transaction took is
    not added to the wait), at most :data:`MAX_COUNTDOWN` ahead. Never raises: the auditor covers a failure."""
    from escalation.tasks import incident_step

    incident_id = str(incident_id)

    def queue():
        now = timezone.now()
        options = {"eta": min(due, now + timedelta(seconds=MAX_COUNTDOWN))} if due > now else {}
        incident_step.apply_async((incident_id, fence), task_id=f"esc-step-{incident_id}-{fence}", **options)

    transaction.on_commit(queue, robust=True)  # a broker outage is logged; the auditor re-drives


def _dispatch_on_commit(outbound: list) -> None:
    from escalation.services.attempts import attempts_dispatch

    transaction.on_commit(lambda: attempts_dispatch(outbound=outbound), robust=True)
