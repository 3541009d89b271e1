"""Email tasks: thin wrappers that load by id and call a service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from providers import PROVIDER_RETRY

#: retries of a triage found ``in_progress`` (each waits for the other attempt's lease to end)
TRIAGE_MAX_RETRIES = 3


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=TRIAGE_MAX_RETRIES)
def email_triage_task(self, inbound_id: str) -> None:
    """Run the EmailTriageAgent for one accepted inbound email (idempotent: a committed claim with a lease,
    then ``triaged_at``; see :mod:`channels_app.email.triage`).

    ``reject_on_worker_lost``: a worker killed mid-triage puts the task back on the queue. Its claim is then
    still live, so the redelivery finds the triage ``in_progress`` and retries just after the lease ends; that
    attempt answers (with the fallback, not a second engine run). A duplicate delivery while a healthy attempt
    runs retries the same way and then finds the email triaged.

    No requeue happens when the task fails (a database error such as a deadlock after the claim committed, or
    ``in_progress`` beyond :data:`TRIAGE_MAX_RETRIES`), hits the hard time limit (Celery acknowledges it), or
    never reached the broker: :func:`channels_app.email.triage.email_triage_redrive` (beat, every 30 s)
    queues it again once no claim is live, and that attempt answers with the fallback.
    """
    from channels_app.email.triage import email_triage

    outcome = email_triage(inbound_id=inbound_id)
    if outcome.decision == "in_progress" and outcome.lease_until is not None:
        wait = (outcome.lease_until - timezone.now()).total_seconds()
        raise self.retry(countdown=max(1.0, wait + 1.0))


@shared_task(acks_late=True, reject_on_worker_lost=True, **PROVIDER_RETRY)
def email_deliver_task(message_id: int) -> None:
    """Send one pending outbound email (idempotent: only a pending row is sent, with a fixed Message-ID)."""
    from channels_app.email.outbound import email_deliver

    email_deliver(message_id=message_id)


@shared_task(ignore_result=True)
def email_poll_all() -> int:
    """Beat: queue a poll of every enabled IMAP mailbox; returns how many were queued."""
    from channels_app.models import EmailMailbox

    ids = list(EmailMailbox.objects.filter(enabled=True).exclude(imap_host="").values_list("pk", flat=True))
    for pk in ids:
        email_poll_mailbox.apply_async((pk,), expires=settings.EMAIL_IMAP_POLL_SECONDS * 2)
    return len(ids)


@shared_task(ignore_result=True)
def email_poll_mailbox(mailbox_id: int) -> None:
    """Poll one IMAP mailbox (a lease keeps concurrent polls of one mailbox apart)."""
    from channels_app.email.imap import mailbox_poll

    mailbox_poll(mailbox_id=mailbox_id)


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=5, retry_backoff_max=300, max_retries=8)
def email_quarantine_alert_task(email_id: str) -> None:
    """Tell the admins about one quarantined inbound email (once per row; SMTP errors retry with backoff)."""
    from channels_app.email.quarantine import email_quarantine_alert

    email_quarantine_alert(email_id=email_id)
