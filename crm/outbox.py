"""Queue CRM outbox rows for delivery (one ``crm_deliver`` task per row; duplicates are no-ops there)."""

from __future__ import annotations


def queue_deliveries(delivery_ids: list[int], countdown: float = 0) -> None:
    """Send one ``crm_deliver`` task per ``CrmDelivery`` id, ``countdown`` seconds from now (≥ 0). Callers run
    it on commit, so the worker always finds the row."""
    from crm.tasks import crm_deliver

    for pk in delivery_ids:
        crm_deliver.apply_async(args=[pk], countdown=max(0, countdown))
