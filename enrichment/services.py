"""Writing enrichment scores onto ``call_logs`` rows, with provenance."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from conversations.models import Interaction
from conversations.signals import interaction_enriched
from enrichment.backends import EnrichmentInput, LocalBackend, Scores, get_backend
from identity.models import CustomerIdentifier, IdentifierKind

logger = logging.getLogger(__name__)


def _input_for(interaction: Interaction) -> EnrichmentInput:
    tenant = interaction.tenant
    contactable = CustomerIdentifier.objects.filter(
        customer_id=interaction.customer_id, verified=True, kind__in=[IdentifierKind.PHONE, IdentifierKind.EMAIL]
    ).exists()
    return EnrichmentInput(
        channel=interaction.channel,
        turns=list(interaction.transcript),
        intents=tenant.intents or {},
        emergency_phrases=tenant.emergency_phrases or [],
        lead_intents=tenant.lead_intents or [],
        contactable=contactable,
        escalated=interaction.escalated,
    )


def interaction_enrich(*, interaction_id, backend=None) -> Interaction:
    """Score one interaction and write sentiment, intent, lead score, satisfaction, urgency and provenance.

    Idempotent: running it again overwrites with the same (local) or a fresh (LLM) answer. If the LLM
    backend fails, the local backend scores instead and the provenance says so. A tenant with ``llm_forbidden``
    is always scored by the local backend, whatever ``backend`` is given. ``urgency`` is never lowered
    below what live triage stored; ``escalated`` is only ever set (urgency 5), never cleared. Emits
    ``interaction_enriched`` on commit.
    """
    interaction = Interaction.objects.select_related("tenant").get(pk=interaction_id)
    data = _input_for(interaction)
    if interaction.tenant.llm_forbidden:  # the clinic forbids sending patients' words to an LLM: score locally
        backend = LocalBackend()
    backend = backend or get_backend()
    try:
        scores: Scores = backend.score(data)
    except Exception as exc:
        if isinstance(backend, LocalBackend):
            raise
        logger.warning("enrichment backend %s failed (%s); using local", backend.name, exc)
        scores = LocalBackend().score(data)
    with transaction.atomic():
        row = Interaction.objects.select_for_update().get(pk=interaction_id)
        row.sentiment = Decimal(str(scores.sentiment)) if scores.sentiment is not None else None
        row.intent = scores.intent
        row.lead_score = scores.lead_score
        if row.satisfaction_source != "survey":  # the patient's own answer beats a guess from sentiment
            row.satisfaction = scores.satisfaction
            row.satisfaction_source = "inferred" if scores.satisfaction is not None else ""
        # live triage (every channel, before the reply) is the floor: enrichment may raise urgency, never lower it
        row.urgency = max(row.urgency or 0, scores.urgency or 0) or None
        row.escalated = row.escalated or (row.urgency or 0) >= 5
        row.enrichment_backend, row.enrichment_model = scores.backend, scores.model
        row.enrichment_version, row.enriched_at = scores.version, timezone.now()
        row.save(
            update_fields=[
                "sentiment",
                "intent",
                "lead_score",
                "satisfaction",
                "satisfaction_source",
                "urgency",
                "escalated",
                "enrichment_backend",
                "enrichment_model",
                "enrichment_version",
                "enriched_at",
                "updated_at",
            ]
        )
        transaction.on_commit(lambda: interaction_enriched.send(sender=Interaction, interaction_id=row.pk))
    return row


#: A closed row not enriched this long after it closed has lost its task (a broker outage, a dead worker).
REDRIVE_AFTER = timedelta(minutes=2)
#: Most rows re-queued per run (oldest first); the rest wait for the next run.
REDRIVE_BATCH = 500


def enrichment_redrive(*, now=None) -> int:
    """Re-queue the enrichment of closed interactions whose task was lost: ``ended_at`` older than
    :data:`REDRIVE_AFTER` and ``enriched_at`` NULL (partial index ``call_logs_unenriched``), oldest first, at most
    :data:`REDRIVE_BATCH`. Enrichment is idempotent, so a row queued twice is scored twice, never wrongly.
    Returns the number queued."""
    from enrichment.tasks import enrich_interaction

    now = now or timezone.now()
    ids = list(
        Interaction.objects.filter(enriched_at__isnull=True, ended_at__isnull=False, ended_at__lt=now - REDRIVE_AFTER)
        .order_by("ended_at")
        .values_list("pk", flat=True)[:REDRIVE_BATCH]
    )
    for pk in ids:
        enrich_interaction.apply_async(args=[str(pk)], expires=60)
    if ids:
        logger.warning("re-queued %d interactions whose enrichment was lost", len(ids))
    return len(ids)
