"""Escalation tasks (routed to the ``escalation`` queue by ``CELERY_TASK_ROUTES``). Thin: load by id, call a
service. All are idempotent (fence, claims, constraints), hence ``acks_late``: a worker killed mid-task has
the message redelivered, and the redelivery does nothing that already happened."""

from datetime import datetime
from smtplib import SMTPException

from celery import shared_task
from django.utils import timezone

from escalation import services
from escalation.models import PipelineHeartbeat
from escalation.services import heartbeat
from escalation.services.hangups import incident_end_calls
from escalation.services.incidents import ALERT_RETRY_SECONDS
from providers import PROVIDER_RETRY


@shared_task(acks_late=True, ignore_result=True)
def incident_step(incident_id: str, fence: int) -> None:
    """Fire the incident's due step if ``fence`` is still current (else nothing); sends go out in parallel."""
    services.incident_run_step(incident_id=incident_id, fence=fence)


@shared_task(acks_late=True, ignore_result=True)
def attempt_send_task(attempt_id: int) -> None:
    """Send (or retry, or reconcile) one notification attempt; a no-op unless it is due and unclaimed."""
    services.attempt_send(attempt_id=attempt_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True, **PROVIDER_RETRY)
def incident_end_calls_task(incident_id: str) -> None:
    """Hang up the other page calls of an acknowledged incident, each CallSid at most once at a time; a
    transient provider error is retried (``PROVIDER_RETRY``) for the calls not yet ended. A worker lost
    mid-task has the message requeued (``reject_on_worker_lost``); its expired claims are then free again,
    and the auditor re-queues whatever is still left (a second request for an ended call is harmless)."""
    incident_end_calls(incident_id=incident_id)


@shared_task(ignore_result=True, expires=10)
def escalation_audit() -> None:
    """Beat, every few seconds: re-drive overdue steps, lost sends, stale claims, unsent admin alerts and
    lost hang-ups of recently acknowledged incidents. Then the proof of life (``services.heartbeat``): the
    ``auditor`` heartbeat, and a canary queued on the ``escalation`` queue."""
    services.escalation_audit()
    heartbeat.heartbeat_record(source=PipelineHeartbeat.Source.AUDITOR)
    heartbeat.pipeline_canary_queue()


@shared_task(ignore_result=True)
def escalation_canary(sent_at: str) -> None:
    """Record the ``canary`` heartbeat and how long it waited in the ``escalation`` queue (seconds)."""
    now = timezone.now()
    lag = (now - datetime.fromisoformat(sent_at)).total_seconds()
    heartbeat.heartbeat_record(source=PipelineHeartbeat.Source.CANARY, at=now, lag_seconds=lag)


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(SMTPException, OSError),
    max_retries=5,
    default_retry_delay=ALERT_RETRY_SECONDS,
)
def incident_alert_admins(incident_id: str) -> None:
    """Email the tenant's admins that an incident was never acknowledged. An SMTP error is retried every
    ``ALERT_RETRY_SECONDS`` (5 times); beyond that, or if the worker dies, the auditor re-drives it."""
    services.incident_alert_admins(incident_id=incident_id)


@shared_task(acks_late=True, ignore_result=True)
def incident_notify_acknowledged_task(incident_id: str) -> None:
    """Text the paged colleagues "acknowledged by …" and the patient a holding message (each at most once)."""
    from escalation.services.notices import incident_notify_acknowledged

    incident_notify_acknowledged(incident_id=incident_id)


@shared_task(ignore_result=True)
def responder_contact_followup_task(contact_id: int) -> None:
    """Answer a responder's SMS (and place the bridge call for a "2"), at most once."""
    from escalation.services.responders import responder_contact_followup

    responder_contact_followup(contact_id=contact_id)


@shared_task(acks_late=True, ignore_result=True, autoretry_for=(Exception,), retry_backoff=1, max_retries=5)
def incident_screen_message(message_id: int) -> None:
    """Fallback when screening an inbound message in the web process failed: screen it again here."""
    from escalation.hooks import screen_message

    screen_message(message_id=message_id)


@shared_task(acks_late=True, ignore_result=True)
def staff_alert_send_task(notification_id: int) -> None:
    """Text the on-duty line and email staff about an emergency in opening hours (at most once)."""
    from escalation.services.staff_alerts import staff_alert_send

    staff_alert_send(notification_id=notification_id)
