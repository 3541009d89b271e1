"""identity's Celery tasks (thin: load, call a service)."""

from __future__ import annotations

import logging

from celery import shared_task

from identity.models import Tenant
from identity.retention import retention_purge

logger = logging.getLogger(__name__)


@shared_task
def retention_purge_all() -> dict[str, int]:
    """Daily beat task: apply every tenant's retention periods (:func:`identity.retention.retention_purge`).
    Returns the summed row counts. One tenant's failure is logged and does not stop the others."""
    totals: dict[str, int] = {}
    for tenant in Tenant.objects.order_by("pk").iterator():
        try:
            counts = retention_purge(tenant=tenant)
        except Exception:
            logger.exception("retention purge failed for tenant %s", tenant.pk)
            continue
        for kind, rows in counts.items():
            totals[kind] = totals.get(kind, 0) + rows
    return totals
