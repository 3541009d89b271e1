"""Event payloads and the emitters wired to conversations' signals.

- ``interaction.enriched``: ``data`` = the interaction as the API shows it (scores, provenance, transcript).
- ``conversation.closed``: ``data`` = ``{"conversation": {...}, "customer": {"id", "display_name"},
  "interactions": [... enriched, oldest first]}``. It waits until every interaction of the conversation is
  enriched (each ``interaction.enriched`` re-checks), or :data:`ENRICHMENT_WAIT` after the close at the latest
  (:func:`conversation_closed_sweep`), so receivers get the scores. One message per conversation (dedupe key).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, TextField, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from conversations.models import Conversation, Interaction
from conversations.webhooks.models import WebhookEndpoint, WebhookEventType, WebhookMessage
from conversations.webhooks.services import webhook_event_emit

ENRICHMENT_WAIT = timedelta(minutes=10)
SWEEP_HORIZON = timedelta(days=1)


def _subscribed(tenant_id, event_type: str) -> bool:
    return WebhookEndpoint.objects.filter(tenant_id=tenant_id, is_active=True, events__contains=[event_type]).exists()


def interaction_data(interaction: Interaction) -> dict:
    """The ``data`` of ``interaction.enriched`` (the API's interaction shape)."""
    from conversations.api.serializers import InteractionSerializer

    return dict(InteractionSerializer(interaction).data)


def interaction_enriched_emit(*, interaction_id) -> WebhookMessage | None:
    """Emit ``interaction.enriched`` (once per enrichment run), then re-check its closed conversation."""
    interaction = Interaction.objects.select_related("tenant").filter(pk=interaction_id).first()
    if interaction is None:
        return None
    message = None
    if _subscribed(interaction.tenant_id, WebhookEventType.INTERACTION_ENRICHED):
        stamp = interaction.enriched_at.isoformat() if interaction.enriched_at else "none"
        message = webhook_event_emit(
            tenant=interaction.tenant,
            event_type=WebhookEventType.INTERACTION_ENRICHED,
            payload=interaction_data(interaction),
            dedupe_key=f"interaction.enriched:{interaction.pk}:{stamp}",
        )
    conversation_closed_emit(conversation_id=interaction.conversation_id)
    return message


def conversation_closed_emit(*, conversation_id, force: bool = False) -> WebhookMessage | None:
    """Emit ``conversation.closed`` once the conversation is closed and all its interactions are enriched
    (or ``force``). Idempotent: one message per conversation."""
    conversation = Conversation.objects.select_related("tenant", "customer").filter(pk=conversation_id).first()
    if conversation is None or conversation.status != Conversation.Status.CLOSED:
        return None
    if not _subscribed(conversation.tenant_id, WebhookEventType.CONVERSATION_CLOSED):
        return None
    interactions = list(Interaction.objects.filter(conversation=conversation).order_by("started_at", "id"))
    if not force and any(i.enriched_at is None for i in interactions):
        return None
    payload = {
        "conversation": {
            "id": str(conversation.pk),
            "status": conversation.status,
            "opened_at": conversation.opened_at,
            "closed_at": conversation.closed_at,
            "last_activity_at": conversation.last_activity_at,
        },
        "customer": {"id": str(conversation.customer_id), "display_name": conversation.customer.display_name},
        "interactions": [interaction_data(i) for i in interactions],
    }
    return webhook_event_emit(
        tenant=conversation.tenant,
        event_type=WebhookEventType.CONVERSATION_CLOSED,
        payload=payload,
        dedupe_key=f"conversation.closed:{conversation.pk}",
    )


def conversation_closed_sweep(*, now: datetime | None = None) -> int:
    """Emit ``conversation.closed`` for conversations closed over :data:`ENRICHMENT_WAIT` ago whose enrichment
    never completed (within the last day, subscribed tenants only). Returns how many were emitted."""
    now = now or timezone.now()
    tenants = WebhookEndpoint.objects.filter(is_active=True, events__contains=[WebhookEventType.CONVERSATION_CLOSED])
    sent = WebhookMessage.objects.filter(
        tenant_id=OuterRef("tenant_id"),
        dedupe_key=Concat(Value("conversation.closed:"), Cast(OuterRef("pk"), TextField())),
    )
    overdue = (
        Conversation.objects.filter(
            status=Conversation.Status.CLOSED,
            closed_at__lt=now - ENRICHMENT_WAIT,
            closed_at__gte=now - SWEEP_HORIZON,
            tenant_id__in=tenants.values("tenant_id"),
        )
        .filter(~Exists(sent))
        .values_list("pk", flat=True)[:200]
    )
    return sum(1 for pk in overdue if conversation_closed_emit(conversation_id=pk, force=True))


def customer_erased_emit(*, tenant_id, customer_id) -> WebhookMessage | None:
    """Emit ``customer.erased`` (``data`` = ``{"customer": {"id"}}``, no PII) so receivers delete their copies."""
    from identity.models import Tenant

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    return webhook_event_emit(
        tenant=tenant,
        event_type=WebhookEventType.CUSTOMER_ERASED,
        payload={"customer": {"id": str(customer_id)}},
        dedupe_key=f"customer.erased:{customer_id}",
    )
