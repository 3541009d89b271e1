"""Thin Celery tasks of the CRM connectors (load by id, call a service)."""

from __future__ import annotations

from celery import shared_task

# A delivery makes up to ~8 HTTP calls of at most CRM_TIMEOUT_SECONDS read each. The lease of a claimed row
# (services.LEASE) is the hard limit + identity.leases.SKEW, so a killed task's row is redriven only after it is gone.
SOFT_TIME_LIMIT = 120
HARD_TIME_LIMIT = 150


@shared_task(acks_late=True, soft_time_limit=SOFT_TIME_LIMIT, time_limit=HARD_TIME_LIMIT)
def crm_deliver(delivery_id: int) -> str:
    """Attempt one CRM delivery if due (a duplicate run is a no-op: row lock, lease, fencing token)."""
    from crm.services import crm_delivery_attempt

    return crm_delivery_attempt(delivery_id=delivery_id)


@shared_task(acks_late=True)
def crm_enqueue(interaction_id: str) -> int:
    """Add the outbox rows of one enriched interaction (one per active connection); returns how many are new."""
    from crm.services import crm_deliveries_enqueue

    return len(crm_deliveries_enqueue(interaction_id=interaction_id))


@shared_task(acks_late=True)
def crm_enqueue_appointment(appointment_id: str, version: int) -> int:
    """Add the outbox rows of one appointment version (one per active connection); returns how many are new."""
    from crm.meetings import crm_appointment_enqueue

    return len(crm_appointment_enqueue(appointment_id=appointment_id, version=version))


@shared_task
def crm_redrive() -> dict:
    """Beat (every 30 s): add outbox rows whose enrichment signal was lost, then queue due retries and deliveries
    whose worker died (expired lease)."""
    from crm.services import crm_enqueue_missed
    from crm.services import crm_redrive as queue_due

    return {"missed": crm_enqueue_missed(), "queued": queue_due()}
