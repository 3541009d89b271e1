"""Thin Celery tasks of outbound webhooks (load by id, call a service)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

# The lease of a claimed attempt (services.LEASE) is the hard limit plus identity.leases.SKEW. The soft limit is
# above WEBHOOK_TOTAL_TIMEOUT so the per-attempt deadline normally fires first; it is caught in delivery.send.
SOFT_TIME_LIMIT = settings.WEBHOOK_TASK_SOFT_TIME_LIMIT
HARD_TIME_LIMIT = SOFT_TIME_LIMIT + 15


@shared_task(acks_late=True, soft_time_limit=SOFT_TIME_LIMIT, time_limit=HARD_TIME_LIMIT)
def webhook_deliver(delivery_id: int) -> str:
    """Attempt one delivery if due (a duplicate run is a no-op: row lock + lease)."""
    from conversations.webhooks.services import webhook_delivery_attempt

    return webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task
def webhook_retry_due() -> dict:
    """Beat (every 5 s): queue due retries; emit overdue ``conversation.closed`` events."""
    from conversations.webhooks.events import conversation_closed_sweep
    from conversations.webhooks.services import webhook_retry_due as queue_due

    return {"queued": queue_due(), "conversation_closed": conversation_closed_sweep()}


@shared_task(acks_late=True)
def webhook_conversation_closed(conversation_id: str) -> bool:
    """Emit ``conversation.closed`` (with the enriched interactions) for one conversation; idempotent by
    dedupe key. Returns True when at least one endpoint wanted it."""
    from conversations.webhooks.events import conversation_closed_emit

    return conversation_closed_emit(conversation_id=conversation_id) is not None


@shared_task(acks_late=True)
def webhook_interaction_enriched(interaction_id: str) -> bool:
    """Emit ``interaction.enriched`` for one ``call_logs`` row; idempotent by dedupe key. Returns True when
    at least one endpoint wanted it."""
    from conversations.webhooks.events import interaction_enriched_emit

    return interaction_enriched_emit(interaction_id=interaction_id) is not None
