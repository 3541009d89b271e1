"""Enrichment tasks (idempotent, so ``acks_late``: a worker killed mid-task has it redelivered)."""

from celery import shared_task

from enrichment.services import enrichment_redrive, interaction_enrich


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def enrich_interaction(interaction_id: str) -> None:
    """Score one closed ``call_logs`` row."""
    interaction_enrich(interaction_id=interaction_id)


@shared_task(ignore_result=True, expires=60)
def enrichment_redrive_task() -> None:
    """Beat, every minute: re-queue enrichments that were lost (see ``enrichment_redrive``)."""
    enrichment_redrive()
