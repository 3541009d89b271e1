"""Signal receivers: ``interaction_enriched`` (sent on commit by enrichment) adds the CRM outbox rows."""

from __future__ import annotations

import logging

from django.db import DatabaseError

from conversations.signals import interaction_enriched

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


def connect() -> None:
    """Connect the receivers (called from ``CrmConfig.ready``)."""
    interaction_enriched.connect(_on_interaction_enriched, dispatch_uid="crm.interaction_enriched", weak=False)
