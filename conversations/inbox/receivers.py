"""The inbox reacts to patient messages on any channel (``customer_message_received``)."""

from __future__ import annotations

import logging

from conversations.inbox.services import conversation_customer_message
from conversations.models import Interaction
from conversations.signals import customer_message_received

logger = logging.getLogger(__name__)


def on_customer_message(sender, *, interaction_id, conversation_id=None, tenant_id=None, **kwargs) -> None:
    """Mark the message's conversation (:func:`conversation_customer_message`); the conversation and tenant come
    from the signal when the sender passed them, otherwise from the ``call_logs`` row (one read)."""
    if conversation_id is None or tenant_id is None:
        row = Interaction.objects.filter(pk=interaction_id).values_list("conversation_id", "tenant_id").first()
        if row is None:
            return
        conversation_id, tenant_id = row
    if conversation_id is None:
        return
    try:
        conversation_customer_message(conversation_id=conversation_id, tenant_id=tenant_id)
    except Exception:  # the inbox mark must never cost the patient's message its other receivers
        logger.exception("inbox: could not mark conversation %s", conversation_id)


def connect() -> None:
    customer_message_received.connect(on_customer_message, dispatch_uid="conversations.inbox.customer_message")
