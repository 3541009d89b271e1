"""Enrichment tasks (idempotent, so ``acks_late``: a worker killed mid-task has it redelivered)."""

from celery import shared_task

from enrichment.services import interaction_enrich


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def enrich_interaction(interaction_id: str) -> None:
    """Score one closed ``call_logs`` row."""
    interaction_enrich(interaction_id=interaction_id)
