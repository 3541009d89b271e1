"""Signal receivers (sent on commit): ``interaction_enriched`` and ``appointment_changed`` add CRM outbox rows."""

from __future__ import annotations

import logging

from django.db import DatabaseError

from conversations.signals import appointment_changed, interaction_enriched

logger = logging.getLogger(__name__)


def _on_interaction_enriched(sender, *, interaction_id, **kwargs) -> None:
    """Write the outbox rows now (one indexed read when the tenant has no CRM); a database error here must not
    fail enrichment, so the rows are then written by a task instead."""
    from crm.services import crm_deliveries_enqueue

    try:
        crm_deliveries_enqueue(interaction_id=interaction_id)
    except DatabaseError:
        logger.exception("crm outbox for interaction %s not written; queuing a task", interaction_id)
        from crm.tasks import crm_enqueue

        crm_enqueue.delay(str(interaction_id))


def _on_appointment_changed(sender, *, appointment_id, version=None, **kwargs) -> None:
    """Write the outbox rows of this appointment version now; on a database error a task writes them."""
    from crm.meetings import crm_appointment_enqueue

    if version is None:
        return
    try:
        crm_appointment_enqueue(appointment_id=appointment_id, version=version)
    except DatabaseError:
        logger.exception("crm outbox for appointment %s v%s not written; queuing a task", appointment_id, version)
        from crm.tasks import crm_enqueue_appointment

        crm_enqueue_appointment.delay(str(appointment_id), version)


def connect() -> None:
    """Connect the receivers (called from ``CrmConfig.ready``)."""
    interaction_enriched.connect(_on_interaction_enriched, dispatch_uid="crm.interaction_enriched", weak=False)
    appointment_changed.connect(_on_appointment_changed, dispatch_uid="crm.appointment_changed", weak=False)
