"""Channel tasks: thin wrappers that load by id and call a service.

Sending tasks are ``acks_late`` + ``reject_on_worker_lost``: a worker killed mid-task (OOM, hard time limit)
puts the message back on the queue instead of acknowledging it, and the claim in :mod:`channels_app.delivery`
makes the redelivery reconcile rather than send twice. :func:`outbound_redrive` (beat) catches the rest;
:func:`inbound_redrive` (beat) does the same for inbound work (SMS replies, voicemails, email triage) whose
task was lost or died.
"""

from celery import shared_task

from channels_app.sms import intake, replies
from channels_app.sms import services as sms
from providers import PROVIDER_RETRY


@shared_task(acks_late=True, reject_on_worker_lost=True, **PROVIDER_RETRY)
def sms_reply(inbound_id: int) -> None:
    """Reply to one inbound SMS (idempotent: one reply per MessageSid, the engine run at most once, row-locked
    send; see :func:`channels_app.sms.replies.sms_reply`)."""
    replies.sms_reply(inbound_id=inbound_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def sms_intake(inbound_id: int) -> None:
    """Record one accepted inbound SMS (idempotent: its row is locked and deleted with the recording; see
    :func:`channels_app.sms.intake.sms_intake`). Queued on the message's lane by the webhook."""
    intake.sms_intake(inbound_id=inbound_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, **PROVIDER_RETRY)
def sms_deliver_task(message_id: int) -> None:
    """Deliver one pending outbound SMS (idempotent: only a pending row is sent)."""
    sms.sms_deliver(message_id=message_id)


@shared_task(ignore_result=True)
def outbound_redrive() -> dict[str, int]:
    """Beat (every 30 s): re-queue outbound SMS / callback calls / emails stuck ``pending`` (a lost task)."""
    from channels_app.delivery import outbound_redrive as redrive

    return redrive()


@shared_task(ignore_result=True)
def inbound_redrive() -> dict[str, int]:
    """Beat (every 30 s): re-queue inbound work whose task was lost — accepted SMS never recorded, replies to
    inbound SMS that never came,
    completed voicemail recordings never filed, and accepted emails never triaged (their task lost, or dead
    after claiming). Returns ``{"sms_intake": n, "sms_replies": n, "voicemails": n, "emails": n}``."""
    from channels_app.email.triage import email_triage_redrive
    from channels_app.voice.voicemail import voicemail_redrive

    return {
        "sms_intake": intake.sms_intake_redrive(),
        "sms_replies": replies.sms_reply_redrive(),
        "voicemails": voicemail_redrive(),
        "emails": email_triage_redrive(),
    }


# Appointment reminders and the no-show sweep (beat), registered with the worker here.
from channels_app.reminders import record_no_shows, send_due_reminders  # noqa: E402,F401
