"""Channel tasks: thin wrappers that load by id and call a service.

Sending tasks are ``acks_late`` + ``reject_on_worker_lost``: a worker killed mid-task (OOM, hard time limit)
puts the message back on the queue instead of acknowledging it, and the claim in :mod:`channels_app.delivery`
makes the redelivery reconcile rather than send twice. :func:`outbound_redrive` (beat) catches the rest.
"""

from celery import shared_task

from channels_app.providers import PROVIDER_RETRY
from channels_app.sms import services as sms



@shared_task(acks_late=True, reject_on_worker_lost=True, **PROVIDER_RETRY)
def sms_reply(inbound_id: int) -> None:
    """Reply to one inbound SMS (idempotent: one reply per MessageSid, row-locked send)."""
    sms.sms_reply(inbound_id=inbound_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, **PROVIDER_RETRY)
def sms_deliver_task(message_id: int) -> None:
    """Deliver one pending outbound SMS (idempotent: only a pending row is sent)."""
    sms.sms_deliver(message_id=message_id)


@shared_task(ignore_result=True)
def outbound_redrive() -> dict[str, int]:
    """Beat (every 30 s): re-queue outbound SMS / callback calls / emails stuck ``pending`` (a lost task)."""
    from channels_app.delivery import outbound_redrive as redrive

    return redrive()
