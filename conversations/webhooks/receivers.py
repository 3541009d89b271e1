"""Signal receivers: conversations' signals (sent on commit) queue the webhook emit tasks."""

from __future__ import annotations

from conversations.signals import conversation_closed, interaction_enriched
from identity.privacy import customer_erased


def _on_conversation_closed(sender, *, conversation_id, **kwargs) -> None:
    from conversations.webhooks.tasks import webhook_conversation_closed

    webhook_conversation_closed.delay(str(conversation_id))


def _on_interaction_enriched(sender, *, interaction_id, **kwargs) -> None:
    from conversations.webhooks.tasks import webhook_interaction_enriched

    webhook_interaction_enriched.delay(str(interaction_id))


def _on_customer_erased(sender, *, tenant_id, customer_id, **kwargs) -> None:
    from conversations.webhooks.events import customer_erased_emit

    customer_erased_emit(tenant_id=tenant_id, customer_id=customer_id)


def connect() -> None:
    """Connect the receivers (called from ``ConversationsConfig.ready``)."""
    conversation_closed.connect(_on_conversation_closed, dispatch_uid="webhooks.conversation_closed", weak=False)
    interaction_enriched.connect(_on_interaction_enriched, dispatch_uid="webhooks.interaction_enriched", weak=False)
    customer_erased.connect(_on_customer_erased, dispatch_uid="webhooks.customer_erased", weak=False)
